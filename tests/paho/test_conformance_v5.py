"""MQTT 5.0 server statements, end to end against `strata serve`.

Raw-socket clients (rawmqtt) drive the sequences whose exact bytes matter;
paho probes play the ordinary publishers and watchers. Absence is proven with
barriers: a PINGREQ answered on the same connection, a marker message that
must arrive after anything the broker would have sent wrongly, or (for
timers) a control event that is due later than the forbidden one.
"""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest

import rawmqtt as rm
from mqttprobe import unique
from rawmqtt import (
    CONNACK,
    DISCONNECT,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    UNSUBACK,
    Will,
    sub_options,
)

V5 = mqtt.MQTTv5
SESSION_EXPIRY = 300

# Reason codes used below.
SUCCESS = 0x00
NO_SUBSCRIPTION_EXISTED = 0x11
UNSPECIFIED_ERROR = 0x80
PROTOCOL_ERROR = 0x82
BAD_AUTHENTICATION_METHOD = 0x8C
SESSION_TAKEN_OVER = 0x8E
TOPIC_ALIAS_INVALID = 0x94
RETAIN_NOT_SUPPORTED = 0x9A
QOS_NOT_SUPPORTED = 0x9B


# --- helpers -------------------------------------------------------------------


def online(raw, client_id: str | None = None, clean: bool = True, port: int | None = None, **kwargs) -> rm.RawClient:
    """A raw 5.0 client connected and accepted (reason code 0x00)."""
    client = raw(rm.V5, port=port)
    connack = client.connect(client_id if client_id is not None else unique("raw5"), clean=clean, **kwargs)
    assert connack.reason_code == SUCCESS, connack
    return client


def persistent(raw, client_id: str, clean: bool = True, **kwargs) -> rm.RawClient:
    """A raw 5.0 client whose session outlives the connection."""
    return online(raw, client_id, clean=clean, properties={"SessionExpiryInterval": SESSION_EXPIRY}, **kwargs)


def subscribed(client: rm.RawClient, filters: list[tuple[str, int]], packet_id: int = 1, properties=None) -> list[int]:
    """Subscribes (options bytes as given) and returns the SUBACK codes."""
    client.send(rm.subscribe(packet_id, filters, properties=properties, version=rm.V5))
    suback = client.expect(SUBACK)
    assert suback.packet_id == packet_id
    return suback.reason_codes


def publish5(topic, payload=b"", **kwargs) -> bytes:
    return rm.publish(topic, payload, version=rm.V5, **kwargs)


def puback5(packet_id, reason=None) -> bytes:
    return rm.puback(packet_id, reason, version=rm.V5)


def pubrec5(packet_id, reason=None) -> bytes:
    return rm.pubrec(packet_id, reason, version=rm.V5)


def pubrel5(packet_id) -> bytes:
    return rm.pubrel(packet_id, version=rm.V5)


def pubcomp5(packet_id) -> bytes:
    return rm.pubcomp(packet_id, version=rm.V5)


def until_marker(client: rm.RawClient, marker_topic: str) -> list[rm.Packet]:
    """Reads up to the PUBLISH on `marker_topic`; returns what came before."""
    before = []
    while True:
        pkt = client.read()
        if pkt.type == PUBLISH and pkt.topic == marker_topic:
            if pkt.qos:
                client.send(puback5(pkt.packet_id) if pkt.qos == 1 else pubrec5(pkt.packet_id))
            return before
        before.append(pkt)


def assert_server_disconnect(got: list[rm.Packet], reason: int | None = None) -> rm.Packet:
    """`got` (everything read up to the close) ends with the server's
    DISCONNECT: [MQTT-3.14.4-1] nothing follows it, and [MQTT-3.14.2-2] it
    carries no Session Expiry Interval."""
    assert got, "closed without a DISCONNECT"
    last = got[-1]
    assert last.type == DISCONNECT, f"last packet before the close is not DISCONNECT: {got}"
    assert [p.type for p in got].count(DISCONNECT) == 1, got
    assert last.reason_code >= 0x80, last
    if reason is not None:
        assert last.reason_code == reason, last
    assert "SessionExpiryInterval" not in last.properties, last
    return last


# --- 3.1 CONNECT -------------------------------------------------------------------


def test_clean_start_discards_existing_session(probes):
    """[MQTT-3.1.2-4] Clean Start 1 discards the existing session: no Session
    Present, no queued messages, no old subscriptions."""
    base = unique("clean5")
    sleeper = probes(V5, "sleeper")
    assert sleeper.connect(clean=True, session_expiry=SESSION_EXPIRY).session_present is False
    sleeper.subscribe(f"{base}/old", 1)
    sleeper.disconnect()
    pub = probes(V5, "pub")
    pub.connect()
    pub.publish(f"{base}/old", b"queued while offline", qos=1)

    connack = sleeper.connect(clean=True, session_expiry=SESSION_EXPIRY)
    assert connack.session_present is False
    sleeper.subscribe(f"{base}/marker", 1)
    pub.publish(f"{base}/old", b"after the clean start", qos=1)
    pub.publish(f"{base}/marker", b"marker", qos=1)
    first = sleeper.expect("the marker")
    assert (first.topic, first.payload) == (f"{base}/marker", b"marker")
    sleeper.assert_inbox_empty()


def test_client_id_boundaries_accepted(raw):
    """[MQTT-3.1.3-5] 1-byte and 23-byte ClientIDs of 0-9a-zA-Z are accepted
    as given (no Assigned Client Identifier)."""
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    clients = []
    for client_id in ["q", alphabet[:23], alphabet[-23:]]:
        client = online(raw, client_id)
        assert "AssignedClientIdentifier" not in client.connack.properties, client.connack
        clients.append(client)
    for client in clients:
        assert client.barrier() == []


def test_empty_client_id_gets_unique_assigned_identifier(raw):
    """[MQTT-3.1.3-6] an empty ClientID is accepted and the server assigns a
    unique one, returned as Assigned Client Identifier; [MQTT-3.2.2-16] not
    used by any other session: two such clients get different identifiers
    and coexist, and neither equals an existing session's id."""
    existing = online(raw, "strata-0")
    first = online(raw, "")
    second = online(raw, "")
    ids = [c.connack.properties.get("AssignedClientIdentifier") for c in (first, second)]
    assert all(ids), [first.connack, second.connack]
    assert ids[0] != ids[1]
    assert "strata-0" not in ids
    # Nobody was taken over.
    for client in (existing, first, second):
        assert client.barrier() == []
    base = unique("anon5")
    assert subscribed(second, [(f"{base}/t", 1)]) == [1]
    first.send(publish5(f"{base}/t", b"hello", qos=1, packet_id=1))
    assert first.expect(PUBACK).packet_id == 1
    assert second.expect(PUBLISH).payload == b"hello"


def test_reconnect_within_will_delay_suppresses_will(raw, probes):
    """[MQTT-3.1.3-9] a new connection to the session before the Will Delay
    Interval has passed means the will is never sent. Control: a second client
    dropped at the same moment with a longer delay and no reconnect; its will
    arrives after the first one's delay has passed."""
    base = unique("willdelay")
    watcher = probes(V5, "watch")
    watcher.connect()
    watcher.subscribe(f"{base}/#", 1)

    def with_will(client_id: str, delay: int) -> rm.RawClient:
        will = Will(f"{base}/{client_id}", f"{client_id} gone".encode(), 1, False, {"WillDelayInterval": delay})
        return online(raw, client_id, will=will, properties={"SessionExpiryInterval": 10})

    returning = with_will("returning", 2)
    control = with_will("control", 3)
    returning.close()
    control.close()
    back = raw(rm.V5)
    connack = back.connect("returning", clean=False, properties={"SessionExpiryInterval": 10})
    assert (connack.reason_code, connack.session_present) == (SUCCESS, True)

    # The control will is due 1 s after the returning client's would be.
    will = watcher.expect("the control client's will")
    assert (will.topic, will.payload) == (f"{base}/control", b"control gone")
    marker = probes(V5, "marker")
    marker.connect()
    marker.publish(f"{base}/marker", b"marker", qos=1)
    assert watcher.expect("the marker").topic == f"{base}/marker"
    watcher.assert_inbox_empty()


def test_will_user_properties_keep_their_order(raw):
    """[MQTT-3.1.3-10] the will is published with its User Properties in the
    order they were given (repeated and unsorted names included)."""
    topic = f"{unique('willprops')}/status"
    watcher = online(raw)
    assert subscribed(watcher, [(topic, 1)]) == [1]
    pairs = [("zeta", "1"), ("alpha", "2"), ("zeta", "3"), ("mid", "\u00e9"), ("alpha", "0")]
    doomed = online(raw, will=Will(topic, b"gone", 1, False, {"UserProperty": pairs, "ContentType": "text/plain"}))
    doomed.close()
    will = watcher.expect(PUBLISH)
    assert (will.topic, will.payload) == (topic, b"gone")
    assert will.properties.get("UserProperty") == pairs
    assert will.properties.get("ContentType") == "text/plain"


def test_takeover_sends_disconnect_0x8e_then_closes(raw):
    """[MQTT-3.1.4-3] a CONNECT with a connected ClientID: the existing
    connection gets DISCONNECT 0x8E (Session taken over) and is closed;
    [MQTT-3.14.4-1] nothing after the DISCONNECT; [MQTT-3.14.2-2] no Session
    Expiry Interval in it."""
    client_id = unique("taken")
    old = online(raw, client_id)
    new = online(raw, client_id)
    assert_server_disconnect(old.read_until_closed(), SESSION_TAKEN_OVER)
    assert new.barrier() == []


@pytest.mark.parametrize(
    "refusal",
    ["unknown_auth_method", "receive_maximum_zero", "unsupported_protocol_level"],
)
def test_refused_connect_processes_nothing_after(raw, probes, refusal):
    """[MQTT-3.1.4-6] after refusing a CONNECT the server processes none of
    the data that followed it (here in the same write: a retained QoS 1
    PUBLISH, a QoS 0 PUBLISH, a SUBSCRIBE, a PINGREQ): it sends the refusing
    CONNACK and closes."""
    base = unique("refused5")
    watcher = probes(V5, "watch")
    watcher.connect()
    watcher.subscribe(f"{base}/#", 1)

    kwargs: dict = {"version": rm.V5}
    expected_code = PROTOCOL_ERROR
    reader_version = rm.V5
    if refusal == "unknown_auth_method":
        kwargs["properties"] = {"AuthenticationMethod": "NO-SUCH-METHOD"}
        expected_code = BAD_AUTHENTICATION_METHOD
    elif refusal == "receive_maximum_zero":
        kwargs["properties"] = {"ReceiveMaximum": 0}
    else:
        # Level 6 does not exist: the refusal is a 3.1.1-format CONNACK 0x01
        # [MQTT-3.1.2-2], which a client of any version can read.
        kwargs["protocol_level"] = 6
        expected_code = 0x01
        reader_version = rm.V311
    client = raw(reader_version)
    client.send(
        rm.connect(unique("refused"), **kwargs),
        publish5(f"{base}/leak", b"after refused CONNECT", qos=1, packet_id=1, retain=True),
        publish5(f"{base}/leak0", b"qos 0 after refused CONNECT"),
        rm.subscribe(2, [(f"{base}/#", 1)], version=rm.V5),
        rm.pingreq(),
    )
    got = client.read_until_closed()
    assert [p.type for p in got] == [CONNACK], got
    assert (got[0].reason_code, got[0].session_present) == (expected_code, False)

    marker = probes(V5, "marker")
    marker.connect()
    marker.publish(f"{base}/marker", b"marker", qos=1)
    assert watcher.expect("the marker").topic == f"{base}/marker"
    watcher.assert_inbox_empty()
    late = probes(V5, "late")
    late.connect()
    late.subscribe(f"{base}/#", 1)
    marker.publish(f"{base}/marker", b"marker 2", qos=1)
    assert late.expect("the second marker").payload == b"marker 2"
    late.assert_inbox_empty()


# --- 3.2 CONNACK ---------------------------------------------------------------------


def test_second_connect_gets_no_second_connack(raw):
    """[MQTT-3.2.0-2] at most one CONNACK per connection: a second CONNECT
    gets DISCONNECT 0x82 and the close, never a CONNACK; [MQTT-3.14.4-1]
    nothing after the DISCONNECT (not even the PINGRESP for a PINGREQ sent
    after the second CONNECT); [MQTT-3.14.2-2] no Session Expiry Interval."""
    client_id = unique("twice")
    client = online(raw, client_id)
    client.send(rm.connect(client_id, version=rm.V5), rm.pingreq())
    got = client.read_until_closed()
    assert CONNACK not in [p.type for p in got], got
    assert_server_disconnect(got, PROTOCOL_ERROR)


def test_will_qos_above_maximum_qos_refused_and_closed(configured_broker, raw):
    """[MQTT-3.2.2-12] with Maximum QoS 1, a CONNECT whose will has QoS 2 is
    refused (CONNACK 0x9B) and the connection closed."""
    port = configured_broker("[limits]\nmaximum_qos = 1\n")
    control = online(raw, port=port)
    assert control.connack.properties.get("MaximumQoS") == 1
    client = raw(rm.V5, port=port)
    client.send(rm.connect(unique("will2"), version=rm.V5, will=Will("w/t", b"x", qos=2)))
    got = client.read_until_closed()
    assert [(p.name, p.reason_code) for p in got] == [("CONNACK", QOS_NOT_SUPPORTED)], got


def test_will_retain_without_retain_support_refused_and_closed(configured_broker, raw):
    """[MQTT-3.2.2-13] with Retain Available 0, a CONNECT whose will has Will
    Retain 1 is refused (CONNACK 0x9A) and the connection closed."""
    port = configured_broker("[limits]\nretain_available = false\n")
    control = online(raw, port=port)
    assert control.connack.properties.get("RetainAvailable") == 0
    client = raw(rm.V5, port=port)
    client.send(rm.connect(unique("willr"), version=rm.V5, will=Will("w/t", b"x", qos=1, retain=True)))
    got = client.read_until_closed()
    assert [(p.name, p.reason_code) for p in got] == [("CONNACK", RETAIN_NOT_SUPPORTED)], got


# --- 3.3 PUBLISH ----------------------------------------------------------------------


def test_incoming_dup_flag_not_forwarded(raw):
    """[MQTT-3.3.1-3] the outgoing DUP flag reflects only the server's own
    retransmission: a PUBLISH received with DUP 1 goes out with DUP 0."""
    base = unique("dup5")
    sub = online(raw)
    assert subscribed(sub, [(f"{base}/#", 2)]) == [2]
    pub = online(raw)
    pub.send(publish5(f"{base}/q1", b"one", qos=1, packet_id=3, dup=True))
    assert pub.expect(PUBACK).packet_id == 3
    pub.send(publish5(f"{base}/q2", b"two", qos=2, packet_id=4, dup=True))
    assert pub.expect(PUBREC).packet_id == 4
    pub.send(pubrel5(4))
    assert pub.expect(PUBCOMP).packet_id == 4
    one, two = sub.publishes(2)
    assert (one.payload, one.qos, one.dup) == (b"one", 1, False)
    assert (two.payload, two.qos, two.dup) == (b"two", 2, False)


def test_retain_zero_publish_leaves_retained_message(raw):
    """[MQTT-3.3.1-8] a RETAIN 0 PUBLISH neither stores nor removes nor
    replaces the retained message, even with an empty payload."""
    topic = f"{unique('r0v5')}/t"
    pub = online(raw)
    pub.send(
        publish5(topic, b"kept", qos=1, packet_id=1, retain=True),
        publish5(topic, b"live qos 1", qos=1, packet_id=2),
        publish5(topic, b"live qos 0"),
        publish5(topic, b"", qos=1, packet_id=3),
    )
    # The broker acknowledges QoS 1 once done with the message.
    assert [pub.expect(PUBACK).packet_id for _ in range(3)] == [1, 2, 3]
    late = online(raw)
    assert subscribed(late, [(topic, 1)]) == [1]
    got = late.barrier()
    assert [(p.payload, p.retain) for p in got] == [(b"kept", True)], got


def test_retain_handling_1_only_for_new_subscriptions(raw, probes):
    """[MQTT-3.3.1-10] Retain Handling 1: retained messages are sent when
    the subscription is new, not when it already existed."""
    base = unique("rh1")
    keeper = probes(V5, "keeper")
    keeper.connect()
    keeper.publish(f"{base}/t", b"retained", qos=1, retain=True)
    client = online(raw)
    opts = sub_options(1, retain_handling=1)
    assert subscribed(client, [(f"{base}/t", opts)]) == [1]
    first = client.expect(PUBLISH)
    assert (first.payload, first.retain) == (b"retained", True)
    client.send(puback5(first.packet_id))

    assert subscribed(client, [(f"{base}/t", opts)], packet_id=2) == [1]
    assert client.barrier() == [], "retained message re-sent for an existing subscription"

    # A different filter is a new subscription again.
    assert subscribed(client, [(f"{base}/+", opts)], packet_id=3) == [1]
    again = client.expect(PUBLISH)
    assert (again.topic, again.payload, again.retain) == (f"{base}/t", b"retained", True)


def test_retain_handling_2_never_sends_retained(raw, probes):
    """[MQTT-3.3.1-11] Retain Handling 2: no retained messages, neither for a
    new nor for a repeated subscription. Control: Retain Handling 0 gets it."""
    topic = f"{unique('rh2')}/t"
    keeper = probes(V5, "keeper")
    keeper.connect()
    keeper.publish(topic, b"retained", qos=1, retain=True)
    client = online(raw)
    opts = sub_options(1, retain_handling=2)
    assert subscribed(client, [(topic, opts)]) == [1]
    assert client.barrier() == []
    assert subscribed(client, [(topic, opts)], packet_id=2) == [1]
    assert client.barrier() == []
    control = online(raw)
    assert subscribed(control, [(topic, sub_options(1))]) == [1]
    assert control.expect(PUBLISH).payload == b"retained"


def test_retain_as_published(raw, probes):
    """[MQTT-3.3.1-13] Retain As Published 1: the RETAIN flag of a live
    forward equals the received one; with 0 it is cleared."""
    topic = f"{unique('rap')}/t"
    keep = online(raw)
    clear = online(raw)
    assert subscribed(keep, [(topic, sub_options(1, retain_as_published=True))]) == [1]
    assert subscribed(clear, [(topic, sub_options(1))]) == [1]
    pub = probes(V5, "pub")
    pub.connect()
    pub.publish(topic, b"retained", qos=1, retain=True)
    pub.publish(topic, b"plain", qos=1, retain=False)
    assert [(p.payload, p.retain) for p in keep.publishes(2)] == [(b"retained", True), (b"plain", False)]
    assert [(p.payload, p.retain) for p in clear.publishes(2)] == [(b"retained", False), (b"plain", False)]


def test_topic_alias_not_carried_to_new_connection(raw, probes):
    """[MQTT-3.3.2-7] topic alias mappings end with the connection, even
    when the session is resumed: an alias set on the first connection is
    unknown on the next, so using it is a Protocol Error (DISCONNECT 0x82)
    and the message is not delivered."""
    topic = f"{unique('alias')}/t"
    watcher = probes(V5, "watch")
    watcher.connect()
    watcher.subscribe(topic, 1)
    client_id = unique("aliaser")
    first = persistent(raw, client_id)
    assert first.connack.properties.get("TopicAliasMaximum", 0) >= 1, first.connack
    first.send(
        publish5(topic, b"set", qos=1, packet_id=1, properties={"TopicAlias": 1}),
        publish5("", b"used", qos=1, packet_id=2, properties={"TopicAlias": 1}),
    )
    assert [first.expect(PUBACK).packet_id for _ in range(2)] == [1, 2]
    assert [(m.topic, m.payload) for m in (watcher.expect("set"), watcher.expect("used"))] == [
        (topic, b"set"),
        (topic, b"used"),
    ]
    first.close()

    second = persistent(raw, client_id, clean=False)
    assert second.connack.session_present is True
    second.send(publish5("", b"stale alias", qos=1, packet_id=3, properties={"TopicAlias": 1}), rm.pingreq())
    assert_server_disconnect(second.read_until_closed(), PROTOCOL_ERROR)

    marker = probes(V5, "marker")
    marker.connect()
    marker.publish(topic, b"marker", qos=1)
    assert watcher.expect("the marker").payload == b"marker"
    watcher.assert_inbox_empty()


def test_full_receive_window_does_not_delay_other_packets(raw, probes):
    """[MQTT-3.3.4-10] with Receive Maximum PUBLISH packets unacknowledged,
    the server still sends everything else at once; [MQTT-4.9.0-3] with its
    send quota at zero it keeps handling the client's packets (PINGREQ,
    SUBSCRIBE, UNSUBSCRIBE, QoS 1 and 2 PUBLISH)."""
    base = unique("window")
    client = online(raw, properties={"ReceiveMaximum": 1})
    assert subscribed(client, [(f"{base}/t", 1)]) == [1]
    pub = probes(V5, "pub")
    pub.connect()
    for n in range(3):
        pub.publish(f"{base}/t", f"m{n}".encode(), qos=1)
    first = client.expect(PUBLISH)
    assert first.payload == b"m0"

    client.send(
        rm.pingreq(),
        rm.subscribe(2, [(f"{base}/other", sub_options(1))], version=rm.V5),
        rm.unsubscribe(3, [f"{base}/never"], version=rm.V5),
        publish5(f"{base}/nobody", b"x", qos=1, packet_id=4),
        publish5(f"{base}/nobody", b"y", qos=2, packet_id=5),
    )
    got = [client.read() for _ in range(5)]
    assert [(p.name, p.packet_id) for p in got] == [
        ("PINGRESP", None),
        ("SUBACK", 2),
        ("UNSUBACK", 3),
        ("PUBACK", 4),
        ("PUBREC", 5),
    ], got
    client.send(pubrel5(5))
    assert client.expect(PUBCOMP).packet_id == 5
    assert client.barrier() == [], "a PUBLISH beyond Receive Maximum 1"

    # The window reopens one message at a time.
    client.send(puback5(first.packet_id))
    second = client.expect(PUBLISH)
    assert second.payload == b"m1"
    assert client.barrier() == []
    client.send(puback5(second.packet_id))
    assert client.expect(PUBLISH).payload == b"m2"


# --- 3.8 - 3.11 SUBSCRIBE / UNSUBSCRIBE -------------------------------------------------


def test_resubscribe_resends_retained_without_losing_messages(raw, probes):
    """[MQTT-3.8.4-4] replacing a subscription with Retain Handling 0
    re-sends the retained messages, and no message is lost around the
    replacement."""
    topic = f"{unique('resub5')}/t"
    keeper = probes(V5, "keeper")
    keeper.connect()
    keeper.publish(topic, b"retained", qos=1, retain=True)
    client = online(raw)
    assert subscribed(client, [(topic, sub_options(1))]) == [1]
    first = client.expect(PUBLISH)
    assert (first.payload, first.retain) == (b"retained", True)
    client.send(puback5(first.packet_id))

    client.send(
        publish5(topic, b"before", qos=1, packet_id=10),
        rm.subscribe(11, [(topic, sub_options(1))], version=rm.V5),
        publish5(topic, b"after", qos=1, packet_id=12),
    )
    got = [client.read() for _ in range(6)]
    acks = [(p.name, p.packet_id) for p in got if p.type != PUBLISH]
    assert acks == [("PUBACK", 10), ("SUBACK", 11), ("PUBACK", 12)], got
    delivered = sorted((p.payload, p.retain) for p in got if p.type == PUBLISH)
    assert delivered == [(b"after", False), (b"before", False), (b"retained", True)], got


def test_multi_filter_subscribe_codes_in_order(raw, probes):
    """[MQTT-3.9.3-1] the SUBACK reason codes follow the order of the
    SUBSCRIBE's filters (one SUBACK; each filter works at its QoS)."""
    base = unique("multi5")
    client = online(raw)
    filters = [(f"{base}/two", 2), (f"{base}/zero", 0), (f"{base}/one", 1), (f"$share/g/{base}/shared", 1)]
    client.send(rm.subscribe(40, [(f, sub_options(q)) for f, q in filters], version=rm.V5))
    suback = client.expect(SUBACK)
    assert (suback.packet_id, suback.reason_codes) == (40, [2, 0, 1, 1])
    assert client.barrier() == [], "more than one SUBACK"
    pub = probes(V5, "pub")
    pub.connect()
    for name in ("two", "zero", "one", "shared"):
        pub.publish(f"{base}/{name}", name.encode(), qos=2)
    got = client.publishes(4)
    assert [(p.payload, p.qos) for p in got] == [(b"two", 2), (b"zero", 0), (b"one", 1), (b"shared", 1)]


def test_multi_filter_unsubscribe_one_unsuback_codes_in_order(raw, probes):
    """[MQTT-3.10.4-6] a multi-filter UNSUBSCRIBE acts as several, with one
    UNSUBACK; [MQTT-3.11.3-1] its codes follow the filter order (0x00, 0x11,
    0x00); [MQTT-3.10.4-5] an UNSUBACK (0x11) also when nothing is removed."""
    base = unique("unsub5")
    a, b, c = (f"{base}/{n}" for n in "abc")
    client = online(raw)
    assert subscribed(client, [(t, sub_options(1)) for t in (a, b, c)]) == [1, 1, 1]
    client.send(rm.unsubscribe(5, [a, f"{base}/never", c], version=rm.V5))
    ack = client.expect(UNSUBACK)
    assert (ack.packet_id, ack.reason_codes) == (5, [SUCCESS, NO_SUBSCRIPTION_EXISTED, SUCCESS])
    assert client.barrier() == [], "more than one UNSUBACK"
    client.send(rm.unsubscribe(6, [a], version=rm.V5))
    ack = client.expect(UNSUBACK)
    assert (ack.packet_id, ack.reason_codes) == (6, [NO_SUBSCRIPTION_EXISTED])

    pub = probes(V5, "pub")
    pub.connect()
    for topic in (a, c, b):
        pub.publish(topic, topic.encode(), qos=1)
    got = client.expect(PUBLISH)
    assert got.topic == b, got
    client.send(puback5(got.packet_id))
    assert client.barrier() == []


def test_unsubscribe_completes_inflight_deliveries(raw, probes):
    """[MQTT-3.10.4-3] QoS 1 and QoS 2 deliveries begun before UNSUBSCRIBE
    are completed: PUBACK accepted, PUBREC answered with PUBREL (0x00)."""
    base = unique("unsubflight5")
    client = online(raw)
    assert subscribed(client, [(f"{base}/q1", sub_options(1)), (f"{base}/q2", sub_options(2))]) == [1, 2]
    pub = probes(V5, "pub")
    pub.connect()
    pub.publish(f"{base}/q1", b"one", qos=1)
    pub.publish(f"{base}/q2", b"two", qos=2)
    one, two = client.publishes(2)
    client.send(rm.unsubscribe(3, [f"{base}/q1", f"{base}/q2"], version=rm.V5))
    assert client.expect(UNSUBACK).reason_codes == [SUCCESS, SUCCESS]
    client.send(puback5(one.packet_id), pubrec5(two.packet_id))
    rel = client.expect(PUBREL)
    assert (rel.packet_id, rel.reason_code) == (two.packet_id, SUCCESS)
    client.send(pubcomp5(two.packet_id))
    assert client.barrier() == []


# --- 3.14 DISCONNECT ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "violation,reason",
    [
        ("subscription_identifier_in_publish", PROTOCOL_ERROR),
        ("topic_alias_zero", TOPIC_ALIAS_INVALID),
        ("unknown_alias", PROTOCOL_ERROR),
        ("pubrel_bad_flags", None),
        ("keep_alive_expiry", 0x8D),
    ],
)
def test_server_disconnect_is_final_and_has_no_session_expiry(raw, violation, reason):
    """[MQTT-3.14.2-2] a DISCONNECT from the server never carries a Session
    Expiry Interval; [MQTT-3.14.4-1] nothing follows it on the connection: not
    the message the client published to itself just before the violation,
    nor a PINGRESP for the PINGREQ just after it."""
    topic = f"{unique('final')}/t"
    keep_alive = 1 if violation == "keep_alive_expiry" else 60
    client = online(raw, keep_alive=keep_alive, properties={"SessionExpiryInterval": SESSION_EXPIRY})
    assert subscribed(client, [(topic, sub_options(0))]) == [0]
    bad = {
        "subscription_identifier_in_publish": publish5(topic, b"bad", properties={"SubscriptionIdentifier": 5}),
        "topic_alias_zero": publish5(topic, b"bad", properties={"TopicAlias": 0}),
        "unknown_alias": publish5("", b"bad", properties={"TopicAlias": 1}),
        "pubrel_bad_flags": rm.packet(PUBREL, 0, b"\x00\x01"),
        "keep_alive_expiry": b"",
    }[violation]
    if violation == "keep_alive_expiry":
        client.send(publish5(topic, b"to myself"))
        assert client.expect(PUBLISH).payload == b"to myself"
    else:
        client.send(publish5(topic, b"to myself"), bad, rm.pingreq())
    got = client.read_until_closed()
    assert_server_disconnect(got, reason)
    assert all(p.type != PINGRESP for p in got), got


# --- 4.3 / 4.4 QoS flows and redelivery ----------------------------------------------------


def test_inbound_qos1_packet_id_reuse_is_a_new_message(raw, probes):
    """[MQTT-4.3.2-5] after its PUBACK, a PUBLISH with the same packet id is
    a new message, whatever its DUP flag."""
    topic = f"{unique('reuse5')}/t"
    watcher = probes(V5, "watch")
    watcher.connect()
    watcher.subscribe(topic, 1)
    client = online(raw)
    for payload, dup in ((b"one", False), (b"two", True), (b"three", False)):
        client.send(publish5(topic, payload, qos=1, packet_id=5, dup=dup))
        ack = client.expect(PUBACK)
        assert (ack.packet_id, ack.reason_code) == (5, SUCCESS)
    assert [watcher.expect(f"message {n}").payload for n in range(3)] == [b"one", b"two", b"three"]


def test_outbound_qos2_first_send(raw, probes):
    """[MQTT-4.3.3-2] the server sends a QoS 2 message as a PUBLISH with an
    unused non-zero packet id, QoS 2 and DUP 0 (and, once PUBREC came, only
    PUBREL follows)."""
    topic = f"{unique('out2v5')}/t"
    client = online(raw)
    assert subscribed(client, [(topic, sub_options(2))]) == [2]
    pub = probes(V5, "pub")
    pub.connect()
    pub.publish(topic, b"first", qos=2)
    pub.publish(topic, b"second", qos=2)
    first, second = client.publishes(2)
    for msg in (first, second):
        assert (msg.qos, msg.dup) == (2, False)
        assert msg.packet_id not in (None, 0)
    assert first.packet_id != second.packet_id
    client.send(pubrec5(first.packet_id), pubrec5(second.packet_id))
    rels = [client.expect(PUBREL) for _ in range(2)]
    assert [r.packet_id for r in rels] == [first.packet_id, second.packet_id]
    client.send(pubcomp5(first.packet_id), pubcomp5(second.packet_id))
    assert client.barrier() == []


def test_error_ack_ends_flow_without_retransmission(raw, probes):
    """[MQTT-4.4.0-2] a PUBACK or PUBREC with a reason code >= 0x80 ends the
    flow: no PUBREL follows the failed PUBREC and nothing is re-sent, not even
    when the session resumes on a new connection."""
    base = unique("errack")
    client_id = unique("refuser")
    client = persistent(raw, client_id)
    assert subscribed(client, [(f"{base}/q1", sub_options(1)), (f"{base}/q2", sub_options(2))]) == [1, 2]
    pub = probes(V5, "pub")
    pub.connect()
    pub.publish(f"{base}/q1", b"refused 1", qos=1)
    pub.publish(f"{base}/q2", b"refused 2", qos=2)
    one, two = client.publishes(2)
    client.send(puback5(one.packet_id, UNSPECIFIED_ERROR), pubrec5(two.packet_id, UNSPECIFIED_ERROR))
    assert client.barrier() == [], "the server went on after an error acknowledgement"
    client.close()

    again = persistent(raw, client_id, clean=False)
    assert again.connack.session_present is True
    assert again.barrier() == [], "a refused message was re-sent on resume"
    assert subscribed(again, [(f"{base}/marker", sub_options(1))], packet_id=9) == [1]
    pub.publish(f"{base}/marker", b"marker", qos=1)
    assert until_marker(again, f"{base}/marker") == [], "a refused message was re-sent"


# --- 4.8 shared subscriptions -------------------------------------------------------------


def test_shared_qos2_delivery_completes_to_same_member(raw, probes):
    """[MQTT-4.8.2-4] a QoS 2 delivery to a shared-subscription member that
    breaks off is completed to that member when it reconnects (PUBREL for the
    flow past PUBREC, the PUBLISH again with DUP 1 for the other), never sent
    to another member."""
    base = unique("share4")
    shared = f"$share/g/{base}/t"
    member_id = unique("member")
    member = persistent(raw, member_id)
    assert subscribed(member, [(shared, sub_options(2))]) == [2]
    pub = probes(V5, "pub")
    pub.connect()
    pub.publish(f"{base}/t", b"past pubrec", qos=2)
    pub.publish(f"{base}/t", b"unreceived", qos=2)
    got, lost = member.publishes(2)
    assert (got.payload, lost.payload) == (b"past pubrec", b"unreceived")
    member.send(pubrec5(got.packet_id))
    assert member.expect(PUBREL).packet_id == got.packet_id

    other = online(raw)
    assert subscribed(other, [(shared, sub_options(2)), (f"{base}/marker", sub_options(1))]) == [2, 1]
    member.close()
    back = persistent(raw, member_id, clean=False)
    assert back.connack.session_present is True
    resent = back.barrier()
    assert sorted((p.name, p.packet_id, p.dup, p.payload) for p in resent) == sorted(
        [("PUBREL", got.packet_id, False, None), ("PUBLISH", lost.packet_id, True, b"unreceived")]
    ), resent
    back.send(pubcomp5(got.packet_id), pubrec5(lost.packet_id))
    assert back.expect(PUBREL).packet_id == lost.packet_id
    back.send(pubcomp5(lost.packet_id))
    assert back.barrier() == []

    pub.publish(f"{base}/marker", b"marker", qos=1)
    assert until_marker(other, f"{base}/marker") == [], "the message went to another member"


def test_shared_message_not_redirected_when_member_session_ends(raw, probes):
    """[MQTT-4.8.2-5] if the member's session ends before it reconnects, the
    message it was being sent is not sent to any other member. The member's
    will (delay longer than its 1 s session) marks the end of the session."""
    base = unique("share5")
    shared = f"$share/g/{base}/t"
    will = Will(f"{base}/will", b"session over", 1, False, {"WillDelayInterval": 2})
    member = online(raw, will=will, properties={"SessionExpiryInterval": 1})
    assert subscribed(member, [(shared, sub_options(2))]) == [2]
    pub = probes(V5, "pub")
    pub.connect()
    pub.publish(f"{base}/t", b"in flight", qos=2)
    assert member.expect(PUBLISH).payload == b"in flight"

    other = online(raw)
    assert subscribed(other, [(shared, sub_options(2)), (f"{base}/will", sub_options(1))]) == [2, 1]
    member.close()
    before_will = until_marker(other, f"{base}/will")
    assert before_will == [], "the message went to another member"
    assert subscribed(other, [(f"{base}/marker", sub_options(1))], packet_id=2) == [1]
    pub.publish(f"{base}/marker", b"marker", qos=1)
    assert until_marker(other, f"{base}/marker") == [], "the message went to another member"


def test_shared_error_ack_discards_message(raw, probes):
    """[MQTT-4.8.2-6] a member answering PUBACK or PUBREC >= 0x80: the
    message is discarded, not sent to another member."""
    base = unique("share6")
    shared = f"$share/g/{base}/q/#"
    member = online(raw)
    assert subscribed(member, [(shared, sub_options(2))]) == [2]
    pub = probes(V5, "pub")
    pub.connect()
    pub.publish(f"{base}/q/1", b"refused 1", qos=1)
    pub.publish(f"{base}/q/2", b"refused 2", qos=2)
    one, two = member.publishes(2)
    assert (one.qos, two.qos) == (1, 2)

    other = online(raw)
    assert subscribed(other, [(shared, sub_options(2)), (f"{base}/marker", sub_options(1))]) == [2, 1]
    member.send(puback5(one.packet_id, UNSPECIFIED_ERROR), pubrec5(two.packet_id, UNSPECIFIED_ERROR))
    assert member.barrier() == []
    pub.publish(f"{base}/marker", b"marker", qos=1)
    assert until_marker(other, f"{base}/marker") == [], "the message went to another member"


# --- 4.12 enhanced authentication -----------------------------------------------------------


def test_unknown_authentication_method_refused_and_closed(raw):
    """[MQTT-4.12.0-1] an unsupported Authentication Method: CONNACK 0x8C
    and the connection is closed, with nothing else sent."""
    client = raw(rm.V5)
    client.send(
        rm.connect(
            unique("auth"),
            version=rm.V5,
            properties={"AuthenticationMethod": "SCRAM-SHA-256", "AuthenticationData": b"n,,n=user,r=abc"},
        )
    )
    got = client.read_until_closed()
    assert [(p.name, p.reason_code) for p in got] == [("CONNACK", BAD_AUTHENTICATION_METHOD)], got
    assert got[0].session_present is False


def test_no_authentication_method_without_one_in_connect(raw):
    """[MQTT-4.12.0-6] no Authentication Method in CONNECT: the CONNACK has
    none (nor Authentication Data) and no AUTH packet is sent."""
    client = online(raw)
    assert "AuthenticationMethod" not in client.connack.properties, client.connack
    assert "AuthenticationData" not in client.connack.properties, client.connack
    assert client.barrier() == []
