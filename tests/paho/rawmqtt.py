"""A minimal raw-socket MQTT 3.1.1 / 5.0 client for byte-exact conformance tests.

paho-mqtt hides the wire: it picks packet identifiers, answers PUBLISH on its
own and refuses to send illegal sequences. The tests that need to control or
observe exact packets use this module instead:

- `connect()`, `publish()`, `puback()`, ... build the bytes of one packet;
- `RawClient` sends any number of them in a single write and reads the
  server's packets back, one `Packet` at a time, with a bounded wait.

The decoder is deliberately strict about what the server sends (reserved
fixed-header flags, property types, duplicated single-valued properties,
trailing bytes), so a test that merely reads a malformed server packet fails.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Iterable

# Seconds to wait for something the broker must send (same as mqttprobe).
TIMEOUT = 10.0

V311 = 4
V5 = 5

# --- packet types -----------------------------------------------------------

CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14
AUTH = 15

TYPE_NAMES = {
    CONNECT: "CONNECT",
    CONNACK: "CONNACK",
    PUBLISH: "PUBLISH",
    PUBACK: "PUBACK",
    PUBREC: "PUBREC",
    PUBREL: "PUBREL",
    PUBCOMP: "PUBCOMP",
    SUBSCRIBE: "SUBSCRIBE",
    SUBACK: "SUBACK",
    UNSUBSCRIBE: "UNSUBSCRIBE",
    UNSUBACK: "UNSUBACK",
    PINGREQ: "PINGREQ",
    PINGRESP: "PINGRESP",
    DISCONNECT: "DISCONNECT",
    AUTH: "AUTH",
}

# Fixed-header flags every packet but PUBLISH must carry (section 2.2.2).
_FIXED_FLAGS = {t: 0 for t in TYPE_NAMES}
_FIXED_FLAGS.update({PUBREL: 0x2, SUBSCRIBE: 0x2, UNSUBSCRIBE: 0x2})

# --- 5.0 properties: identifier -> (name, wire type) --------------------------

_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = "byte", "u16", "u32", "varint", "str", "bin", "pair"

PROPERTIES = {
    0x01: ("PayloadFormatIndicator", _BYTE),
    0x02: ("MessageExpiryInterval", _U32),
    0x03: ("ContentType", _STR),
    0x08: ("ResponseTopic", _STR),
    0x09: ("CorrelationData", _BIN),
    0x0B: ("SubscriptionIdentifier", _VARINT),
    0x11: ("SessionExpiryInterval", _U32),
    0x12: ("AssignedClientIdentifier", _STR),
    0x13: ("ServerKeepAlive", _U16),
    0x15: ("AuthenticationMethod", _STR),
    0x16: ("AuthenticationData", _BIN),
    0x17: ("RequestProblemInformation", _BYTE),
    0x18: ("WillDelayInterval", _U32),
    0x19: ("RequestResponseInformation", _BYTE),
    0x1A: ("ResponseInformation", _STR),
    0x1C: ("ServerReference", _STR),
    0x1F: ("ReasonString", _STR),
    0x21: ("ReceiveMaximum", _U16),
    0x22: ("TopicAliasMaximum", _U16),
    0x23: ("TopicAlias", _U16),
    0x24: ("MaximumQoS", _BYTE),
    0x25: ("RetainAvailable", _BYTE),
    0x26: ("UserProperty", _PAIR),
    0x27: ("MaximumPacketSize", _U32),
    0x28: ("WildcardSubscriptionAvailable", _BYTE),
    0x29: ("SubscriptionIdentifierAvailable", _BYTE),
    0x2A: ("SharedSubscriptionAvailable", _BYTE),
}
_PROPERTY_IDS = {name: (ident, kind) for ident, (name, kind) in PROPERTIES.items()}
# The only properties that may appear more than once; decoded as lists.
_REPEATABLE = {"UserProperty", "SubscriptionIdentifier"}


class Closed(Exception):
    """The server closed the network connection."""


class NoPacket(AssertionError):
    """Nothing (complete) arrived within the wait."""


class MalformedPacket(AssertionError):
    """The server sent bytes that are not a well-formed MQTT packet."""


# --- primitive encoders -------------------------------------------------------


def varint(value: int) -> bytes:
    """Variable Byte Integer (section 1.5.5 / 2.2.3)."""
    if not 0 <= value <= 268_435_455:
        raise ValueError(f"variable byte integer out of range: {value}")
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def binary(data: bytes) -> bytes:
    """Two-byte length followed by the bytes (Binary Data)."""
    if len(data) > 0xFFFF:
        raise ValueError("binary data longer than 65535 bytes")
    return struct.pack("!H", len(data)) + data


def string(text: str | bytes) -> bytes:
    """UTF-8 Encoded String; bytes are written as given (to send bad UTF-8)."""
    return binary(text.encode("utf-8") if isinstance(text, str) else text)


def encode_properties(props: dict | None) -> bytes:
    """A 5.0 property block: length, then each property in dict order.

    Values of UserProperty are lists of (name, value) pairs and of
    SubscriptionIdentifier lists of ints (or a single int); both are written
    in list order.
    """
    body = bytearray()
    for name, value in (props or {}).items():
        ident, kind = _PROPERTY_IDS[name]
        values = value if name in _REPEATABLE and isinstance(value, (list, tuple)) else [value]
        for item in values:
            body += varint(ident)
            if kind == _BYTE:
                body += struct.pack("!B", item)
            elif kind == _U16:
                body += struct.pack("!H", item)
            elif kind == _U32:
                body += struct.pack("!I", item)
            elif kind == _VARINT:
                body += varint(item)
            elif kind == _STR:
                body += string(item)
            elif kind == _BIN:
                body += binary(item)
            else:  # _PAIR
                body += string(item[0]) + string(item[1])
    return varint(len(body)) + bytes(body)


def packet(packet_type: int, flags: int, body: bytes) -> bytes:
    """Fixed header (type, flags, Remaining Length) plus the body."""
    return bytes([(packet_type << 4) | flags]) + varint(len(body)) + body


# --- packet builders ------------------------------------------------------------


@dataclass
class Will:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: dict | None = None  # 5.0 Will Properties


def connect(
    client_id: str,
    version: int = V311,
    clean: bool = True,
    keep_alive: int = 60,
    will: Will | None = None,
    username: str | None = None,
    password: bytes | None = None,
    properties: dict | None = None,
    protocol_name: str = "MQTT",
    protocol_level: int | None = None,
) -> bytes:
    """CONNECT. `clean` is Clean Session (3.1.1) / Clean Start (5.0);
    `protocol_level` overrides the level byte written for `version`."""
    flags = 0
    if clean:
        flags |= 0x02
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
    if password is not None:
        flags |= 0x40
    if username is not None:
        flags |= 0x80
    body = bytearray(string(protocol_name))
    body += bytes([version if protocol_level is None else protocol_level, flags])
    body += struct.pack("!H", keep_alive)
    if version == V5:
        body += encode_properties(properties)
    body += string(client_id)
    if will is not None:
        if version == V5:
            body += encode_properties(will.properties)
        body += string(will.topic) + binary(will.payload)
    if username is not None:
        body += string(username)
    if password is not None:
        body += binary(password)
    return packet(CONNECT, 0, bytes(body))


def publish(
    topic: str | bytes,
    payload: bytes = b"",
    qos: int = 0,
    packet_id: int | None = None,
    dup: bool = False,
    retain: bool = False,
    properties: dict | None = None,
    version: int = V311,
) -> bytes:
    """PUBLISH with any flags; `packet_id` is required for QoS > 0."""
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = bytearray(string(topic))
    if qos > 0:
        if packet_id is None:
            raise ValueError("a QoS > 0 PUBLISH needs a packet identifier")
        body += struct.pack("!H", packet_id)
    if version == V5:
        body += encode_properties(properties)
    body += payload
    return packet(PUBLISH, flags, bytes(body))


def _pub_response(
    packet_type: int, packet_id: int, reason: int | None, properties: dict | None, version: int
) -> bytes:
    body = struct.pack("!H", packet_id)
    if version == V5 and (reason is not None or properties):
        body += bytes([reason or 0])
        if properties:
            body += encode_properties(properties)
    return packet(packet_type, _FIXED_FLAGS[packet_type], body)


def puback(packet_id: int, reason: int | None = None, properties: dict | None = None, version: int = V311) -> bytes:
    return _pub_response(PUBACK, packet_id, reason, properties, version)


def pubrec(packet_id: int, reason: int | None = None, properties: dict | None = None, version: int = V311) -> bytes:
    return _pub_response(PUBREC, packet_id, reason, properties, version)


def pubrel(packet_id: int, reason: int | None = None, properties: dict | None = None, version: int = V311) -> bytes:
    return _pub_response(PUBREL, packet_id, reason, properties, version)


def pubcomp(packet_id: int, reason: int | None = None, properties: dict | None = None, version: int = V311) -> bytes:
    return _pub_response(PUBCOMP, packet_id, reason, properties, version)


def sub_options(qos: int, no_local: bool = False, retain_as_published: bool = False, retain_handling: int = 0) -> int:
    """The Subscription Options byte (5.0); for 3.1.1 only `qos` is legal."""
    return qos | (0x04 if no_local else 0) | (0x08 if retain_as_published else 0) | (retain_handling << 4)


def subscribe(
    packet_id: int,
    filters: Iterable[tuple[str, int]],
    properties: dict | None = None,
    version: int = V311,
) -> bytes:
    """SUBSCRIBE; each filter comes with its options byte (the QoS in 3.1.1,
    see `sub_options` for 5.0)."""
    body = bytearray(struct.pack("!H", packet_id))
    if version == V5:
        body += encode_properties(properties)
    for topic_filter, options in filters:
        body += string(topic_filter) + bytes([options])
    return packet(SUBSCRIBE, 0x2, bytes(body))


def unsubscribe(packet_id: int, filters: Iterable[str], properties: dict | None = None, version: int = V311) -> bytes:
    body = bytearray(struct.pack("!H", packet_id))
    if version == V5:
        body += encode_properties(properties)
    for topic_filter in filters:
        body += string(topic_filter)
    return packet(UNSUBSCRIBE, 0x2, bytes(body))


def pingreq() -> bytes:
    return packet(PINGREQ, 0, b"")


def disconnect(reason: int | None = None, properties: dict | None = None, version: int = V311) -> bytes:
    body = b""
    if version == V5 and (reason is not None or properties):
        body = bytes([reason or 0]) + (encode_properties(properties) if properties else b"")
    return packet(DISCONNECT, 0, body)


# --- decoding --------------------------------------------------------------------


@dataclass
class Packet:
    """One packet the server sent, decoded for the client's protocol version.

    `reason_codes` holds the CONNACK return/reason code, the reason code of
    PUBACK/PUBREC/PUBREL/PUBCOMP/DISCONNECT/AUTH (0x00 when omitted), or the
    list of SUBACK/UNSUBACK codes.
    """

    type: int
    flags: int
    raw: bytes
    packet_id: int | None = None
    reason_codes: list[int] = field(default_factory=list)
    properties: dict = field(default_factory=dict)
    topic: str | None = None
    payload: bytes | None = None
    session_present: bool | None = None

    @property
    def name(self) -> str:
        return TYPE_NAMES.get(self.type, f"type {self.type}")

    @property
    def reason_code(self) -> int | None:
        return self.reason_codes[0] if self.reason_codes else None

    @property
    def qos(self) -> int:
        return (self.flags >> 1) & 0x3

    @property
    def dup(self) -> bool:
        return bool(self.flags & 0x08)

    @property
    def retain(self) -> bool:
        return bool(self.flags & 0x01)

    def __repr__(self) -> str:
        parts = [self.name]
        if self.type == PUBLISH:
            parts.append(f"topic={self.topic!r} qos={self.qos} dup={int(self.dup)} retain={int(self.retain)}")
            parts.append(f"payload={self.payload!r}")
        if self.packet_id is not None:
            parts.append(f"id={self.packet_id}")
        if self.session_present is not None:
            parts.append(f"sp={int(self.session_present)}")
        if self.reason_codes:
            parts.append("codes=[" + ", ".join(f"0x{c:02X}" for c in self.reason_codes) + "]")
        if self.properties:
            parts.append(f"props={self.properties}")
        return "<" + " ".join(parts) + ">"


class _Reader:
    """Cursor over one packet body; every read checks the bounds."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MalformedPacket(f"packet body ends early: need {n} bytes at {self.pos} of {len(self.data)}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("!H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("!I", self.take(4))[0]

    def varint(self) -> int:
        value, shift = 0, 0
        for _ in range(4):
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
        raise MalformedPacket("variable byte integer longer than 4 bytes")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def string(self) -> str:
        data = self.binary()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MalformedPacket(f"ill-formed UTF-8 string from the server: {data!r}") from e

    def properties(self) -> dict:
        end = self.varint()
        block = _Reader(self.take(end))
        props: dict = {}
        while block.remaining():
            ident = block.varint()
            if ident not in PROPERTIES:
                raise MalformedPacket(f"unknown property identifier 0x{ident:02X}")
            name, kind = PROPERTIES[ident]
            if kind == _BYTE:
                value = block.byte()
            elif kind == _U16:
                value = block.u16()
            elif kind == _U32:
                value = block.u32()
            elif kind == _VARINT:
                value = block.varint()
            elif kind == _STR:
                value = block.string()
            elif kind == _BIN:
                value = block.binary()
            else:
                value = (block.string(), block.string())
            if name in _REPEATABLE:
                props.setdefault(name, []).append(value)
            elif name in props:
                raise MalformedPacket(f"property {name} appears twice")
            else:
                props[name] = value
        return props


def decode(first: int, body: bytes, version: int) -> Packet:
    """Decodes one server-to-client packet (fixed header byte and body)."""
    packet_type, flags = first >> 4, first & 0x0F
    raw = bytes([first]) + varint(len(body)) + body
    pkt = Packet(type=packet_type, flags=flags, raw=raw)
    if packet_type not in TYPE_NAMES or packet_type in (CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ):
        raise MalformedPacket(f"the server sent a packet of type {packet_type}: {raw!r}")
    if packet_type != PUBLISH and flags != _FIXED_FLAGS[packet_type]:
        raise MalformedPacket(f"{pkt.name} with reserved flags 0x{flags:X}")
    r = _Reader(body)
    v5 = version == V5
    if packet_type == CONNACK:
        ack_flags = r.byte()
        if ack_flags & 0xFE:
            raise MalformedPacket(f"CONNACK acknowledge flags 0x{ack_flags:02X}")
        pkt.session_present = bool(ack_flags & 1)
        pkt.reason_codes = [r.byte()]
        if v5:
            pkt.properties = r.properties()
    elif packet_type == PUBLISH:
        if pkt.qos == 3:
            raise MalformedPacket("PUBLISH with QoS 3")
        pkt.topic = r.string()
        if pkt.qos > 0:
            pkt.packet_id = r.u16()
        if v5:
            pkt.properties = r.properties()
        pkt.payload = r.take(r.remaining())
    elif packet_type in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        pkt.packet_id = r.u16()
        pkt.reason_codes = [0]
        if v5 and r.remaining():
            pkt.reason_codes = [r.byte()]
            if r.remaining():
                pkt.properties = r.properties()
    elif packet_type in (SUBACK, UNSUBACK):
        pkt.packet_id = r.u16()
        if v5:
            pkt.properties = r.properties()
        if packet_type == SUBACK or v5:
            pkt.reason_codes = list(r.take(r.remaining()))
    elif packet_type in (DISCONNECT, AUTH):
        if not v5 and packet_type == DISCONNECT:
            raise MalformedPacket("a 3.1.1 server never sends DISCONNECT")
        if not v5 and packet_type == AUTH:
            raise MalformedPacket("AUTH on a 3.1.1 connection")
        pkt.reason_codes = [r.byte() if r.remaining() else 0]
        if r.remaining():
            pkt.properties = r.properties()
    if r.remaining():
        raise MalformedPacket(f"{r.remaining()} trailing bytes after {pkt!r}")
    return pkt


# --- the client --------------------------------------------------------------------


class RawClient:
    """One TCP connection to the broker, speaking bytes.

    `send` writes any packets in one `sendall`, so the server sees them
    together (usually in one read). `read` returns the next complete packet or
    raises `NoPacket` after the timeout, or `Closed` once the server has closed
    the connection (recv returned b"" or the connection was reset).
    """

    def __init__(self, port: int, version: int = V311, host: str = "127.0.0.1") -> None:
        self.version = version
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        self.closed = False
        self.connack: Packet | None = None  # set by connect()

    # -- writing --

    def send(self, *packets: bytes) -> None:
        self.sock.sendall(b"".join(packets))

    def connect(self, client_id: str, **kwargs) -> Packet:
        """Sends CONNECT (in this client's version) and returns the CONNACK."""
        self.send(connect(client_id, version=self.version, **kwargs))
        self.connack = self.expect(CONNACK)
        return self.connack

    # -- reading --

    def _parse(self) -> Packet | None:
        """Takes one complete packet off the buffer, if there is one."""
        if len(self._buf) < 2:
            return None
        length, shift, i = 0, 0, 1
        while True:
            if i >= len(self._buf):
                return None
            byte = self._buf[i]
            length |= (byte & 0x7F) << shift
            i += 1
            if not byte & 0x80:
                break
            shift += 7
            if i > 4:
                raise MalformedPacket("Remaining Length longer than 4 bytes")
        if len(self._buf) < i + length:
            return None
        first = self._buf[0]
        body = bytes(self._buf[i : i + length])
        del self._buf[: i + length]
        return decode(first, body, self.version)

    def read(self, timeout: float = TIMEOUT) -> Packet:
        """The next packet; `NoPacket` if none within `timeout` seconds,
        `Closed` if the connection ends first (a partial packet left in the
        buffer at close is an error)."""
        deadline = time.monotonic() + timeout
        while True:
            pkt = self._parse()
            if pkt is not None:
                return pkt
            if self.closed:
                if self._buf:
                    raise MalformedPacket(f"connection closed inside a packet: {bytes(self._buf)!r}")
                raise Closed()
            left = deadline - time.monotonic()
            if left <= 0:
                raise NoPacket(f"no complete packet within {timeout} s (buffered {bytes(self._buf)!r})")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                self.closed = True
            else:
                self._buf += chunk

    def publishes(self, count: int) -> list[Packet]:
        """The next `count` packets, each of which must be a PUBLISH."""
        got = [self.read() for _ in range(count)]
        assert all(p.type == PUBLISH for p in got), got
        return got

    def expect(self, packet_type: int, timeout: float = TIMEOUT) -> Packet:
        """The next packet, which must be of `packet_type`."""
        try:
            pkt = self.read(timeout)
        except Closed:
            raise AssertionError(f"connection closed while waiting for {TYPE_NAMES[packet_type]}") from None
        assert pkt.type == packet_type, f"expected {TYPE_NAMES[packet_type]}, got {pkt!r}"
        return pkt

    def read_until(self, packet_type: int, timeout: float = TIMEOUT) -> tuple[list[Packet], Packet]:
        """Reads up to the first packet of `packet_type`; returns the packets
        before it and that packet."""
        deadline = time.monotonic() + timeout
        before = []
        while True:
            try:
                pkt = self.read(max(0.0, deadline - time.monotonic()))
            except Closed:
                raise AssertionError(
                    f"connection closed while waiting for {TYPE_NAMES[packet_type]}; before it: {before}"
                ) from None
            if pkt.type == packet_type:
                return before, pkt
            before.append(pkt)

    def read_until_closed(self, timeout: float = TIMEOUT) -> list[Packet]:
        """Every packet up to the close; fails if the connection is still open
        after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        got = []
        while True:
            try:
                got.append(self.read(max(0.0, deadline - time.monotonic())))
            except Closed:
                return got
            except NoPacket:
                raise AssertionError(f"connection still open after {timeout} s; received {got}") from None

    def barrier(self, timeout: float = TIMEOUT) -> list[Packet]:
        """Sends PINGREQ and returns what arrived before the PINGRESP.

        The server handles a connection's packets in order, so anything it
        sends because of earlier packets of this connection is written before
        the PINGRESP."""
        self.send(pingreq())
        before, _ = self.read_until(PINGRESP, timeout)
        return before

    def close(self) -> None:
        """Closes the socket without DISCONNECT (as a network failure would)."""
        try:
            self.sock.close()
        finally:
            self.closed = True

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
