"""A paho-mqtt client driven synchronously, for interoperability tests.

paho-mqtt runs its network loop in a thread and reports through callbacks;
`Probe` turns each callback into a queue entry so a test can say "expect this
within TIMEOUT seconds". Every wait is bounded: a broker that never answers
fails the test instead of hanging it.
"""

from __future__ import annotations

import itertools
import queue
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

# Seconds to wait for something the broker must send. Generous: CI machines
# are slow and a passing test never waits this long.
TIMEOUT = 10.0

PROTOCOLS = {"v311": mqtt.MQTTv311, "v5": mqtt.MQTTv5}

_ids = itertools.count()


def unique(prefix: str) -> str:
    """A client identifier or topic segment no other probe in this run uses."""
    return f"{prefix}-{next(_ids)}"


def properties(packet_type: int, **values) -> Properties:
    props = Properties(packet_type)
    for name, value in values.items():
        setattr(props, name, value)
    return props


@dataclass
class Received:
    """One PUBLISH delivered to a probe."""

    client_id: str
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Properties | None


@dataclass
class Connack:
    session_present: bool
    reason_code: mqtt.ReasonCode
    properties: Properties | None


@dataclass
class Probe:
    """One paho-mqtt client connected to the broker under test."""

    port: int
    client_id: str
    protocol: int
    # Several probes may share one inbox to see deliveries in arrival order.
    inbox: queue.Queue = field(default_factory=queue.Queue)
    # The transport: "tcp" or "websockets" (with ws_path), and TLS when
    # `tls` holds paho's tls_set arguments; `host` is what TLS verifies.
    host: str = "127.0.0.1"
    transport: str = "tcp"
    ws_path: str = "/mqtt"
    tls: dict | None = None
    # CONNECT's User Name and Password (a token, say).
    username: str | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        self._connacks: queue.Queue = queue.Queue()
        self._subacks: dict[int, queue.Queue] = {}
        self._unsubacks: dict[int, queue.Queue] = {}
        self._disconnects: queue.Queue = queue.Queue()
        self.client: mqtt.Client | None = None
        self.abandoned = False

    @property
    def is_v5(self) -> bool:
        return self.protocol == mqtt.MQTTv5

    # --- connection -------------------------------------------------------

    def connect(
        self,
        clean: bool = True,
        session_expiry: int | None = None,
        will: tuple[str, bytes, int, bool] | None = None,
    ) -> Connack:
        """Connects and waits for a successful CONNACK.

        `clean` is Clean Session (3.1.1) or Clean Start (5.0); `session_expiry`
        is the 5.0 Session Expiry Interval; `will` is (topic, payload, qos,
        retain).
        """
        kwargs = {}
        if not self.is_v5:
            kwargs["clean_session"] = clean
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=self.protocol,
            reconnect_on_failure=False,
            transport=self.transport,
            **kwargs,
        )
        if self.transport == "websockets":
            client.ws_set_options(path=self.ws_path)
        if self.tls is not None:
            client.tls_set(**self.tls)
        if self.username is not None or self.password is not None:
            client.username_pw_set(self.username, self.password)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        client.on_disconnect = self._on_disconnect
        if will is not None:
            topic, payload, qos, retain = will
            client.will_set(topic, payload, qos=qos, retain=retain)
        self.client = client

        connect_kwargs = {}
        if self.is_v5:
            connect_kwargs["clean_start"] = clean
            if session_expiry is not None:
                connect_kwargs["properties"] = properties(
                    PacketTypes.CONNECT, SessionExpiryInterval=session_expiry
                )
        client.connect(self.host, self.port, keepalive=60, **connect_kwargs)
        client.loop_start()
        connack = self._get(self._connacks, "CONNACK")
        assert not connack.reason_code.is_failure, f"CONNACK refused: {connack.reason_code}"
        return connack

    def disconnect(self) -> None:
        """Sends DISCONNECT and waits until paho has closed the connection."""
        assert self.client is not None
        self.client.disconnect()
        self._get(self._disconnects, "disconnect")
        self.client.loop_stop()
        self.client = None

    def drop(self) -> None:
        """Closes the socket without sending DISCONNECT, as a crash would."""
        assert self.client is not None
        # Stopping the loop first keeps paho's thread from touching the
        # closed socket; loop_stop itself sends nothing.
        self.client.loop_stop()
        sock = self.client.socket()
        assert sock is not None
        sock.close()
        self.client = None
        self.abandoned = True

    def close(self) -> None:
        """Teardown: leaves the broker without waiting for anything."""
        if self.client is None:
            return
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
            self.client = None

    # --- requests ---------------------------------------------------------

    def subscribe(
        self,
        topic: str,
        qos: int,
        subscription_id: int | None = None,
    ) -> list[mqtt.ReasonCode]:
        """Subscribes and returns the SUBACK reason codes."""
        assert self.client is not None
        props = None
        if subscription_id is not None:
            props = properties(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=subscription_id)
        result, mid = self.client.subscribe(topic, qos, properties=props)
        assert result == mqtt.MQTT_ERR_SUCCESS, f"subscribe not sent: {result}"
        return self._get(self._ack_queue(self._subacks, mid), f"SUBACK for {topic}")

    def unsubscribe(self, topic: str) -> list[mqtt.ReasonCode]:
        assert self.client is not None
        result, mid = self.client.unsubscribe(topic)
        assert result == mqtt.MQTT_ERR_SUCCESS, f"unsubscribe not sent: {result}"
        return self._get(self._ack_queue(self._unsubacks, mid), f"UNSUBACK for {topic}")

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        props: Properties | None = None,
    ) -> None:
        """Publishes and waits until the QoS flow is complete (written for
        QoS 0, PUBACK for QoS 1, PUBCOMP for QoS 2), so a later publish from
        this probe is known to reach the broker after this one."""
        assert self.client is not None
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        info.wait_for_publish(timeout=TIMEOUT)
        assert info.is_published(), f"publish to {topic} (QoS {qos}) not acknowledged"

    # --- expectations -----------------------------------------------------

    def expect(self, what: str = "a message") -> Received:
        return self._get(self.inbox, what)

    def assert_inbox_empty(self) -> None:
        leftovers = []
        while True:
            try:
                leftovers.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        assert leftovers == [], f"unexpected deliveries: {leftovers}"

    # --- paho callbacks (network thread) ----------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, props) -> None:
        self._connacks.put(Connack(bool(flags.session_present), reason_code, props))

    def _on_message(self, client, userdata, message) -> None:
        self.inbox.put(
            Received(
                client_id=self.client_id,
                topic=message.topic,
                payload=bytes(message.payload),
                qos=message.qos,
                retain=bool(message.retain),
                properties=getattr(message, "properties", None),
            )
        )

    def _on_subscribe(self, client, userdata, mid, reason_codes, props) -> None:
        self._ack_queue(self._subacks, mid).put(list(reason_codes))

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, props) -> None:
        self._ack_queue(self._unsubacks, mid).put(list(reason_codes))

    def _on_disconnect(self, client, userdata, flags, reason_code, props) -> None:
        self._disconnects.put(reason_code)

    # --- internals --------------------------------------------------------

    @staticmethod
    def _ack_queue(acks: dict[int, queue.Queue], mid: int) -> queue.Queue:
        # setdefault is atomic under the GIL: the ack may arrive on the
        # network thread before subscribe() returns the mid here.
        return acks.setdefault(mid, queue.Queue())

    def _get(self, q: queue.Queue, what: str):
        try:
            return q.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError(
                f"{self.client_id}: no {what} within {TIMEOUT} s"
            ) from None
