"""MQTT 3.1.1 server statements, end to end against `strata serve`.

Raw-socket clients (rawmqtt) drive the sequences whose exact bytes matter;
paho probes play the ordinary publishers and watchers. Absence is proven with
barriers: a PINGREQ answered on the same connection, or a marker message that
must arrive after anything the broker would have sent wrongly.
"""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt

import rawmqtt as rm
from mqttprobe import unique
from rawmqtt import (
    CONNACK,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    UNSUBACK,
    Closed,
    NoPacket,
)

V311 = mqtt.MQTTv311


# --- helpers -------------------------------------------------------------------


def online(raw, client_id: str | None = None, clean: bool = True, **kwargs) -> rm.RawClient:
    """A raw 3.1.1 client connected and accepted (return code 0)."""
    client = raw(rm.V311)
    connack = client.connect(client_id if client_id is not None else unique("raw"), clean=clean, **kwargs)
    assert connack.reason_code == 0, connack
    return client


def subscribed(client: rm.RawClient, filters: list[tuple[str, int]], packet_id: int = 1) -> list[int]:
    """Subscribes and returns the SUBACK return codes."""
    client.send(rm.subscribe(packet_id, filters))
    suback = client.expect(SUBACK)
    assert suback.packet_id == packet_id
    return suback.reason_codes


def settled(client: rm.RawClient, *packets: bytes, ack_id: int = 0xFFFF) -> list[rm.Packet]:
    """Sends `packets` followed by a QoS 1 PUBLISH on a throw-away topic and
    waits for its PUBACK: the broker handles a connection's PUBLISH packets in
    order and acknowledges QoS 1 once it is done with the message, so all of
    `packets` have been acted on when this returns. Returns what the server
    sent before that PUBACK (the acknowledgements of `packets`)."""
    client.send(*packets, rm.publish(f"{unique('settle')}/x", b"", qos=1, packet_id=ack_id))
    got = []
    while True:
        pkt = client.read()
        if pkt.type == PUBACK and pkt.packet_id == ack_id:
            return got
        got.append(pkt)


# --- 2.3.1 packet identifiers ----------------------------------------------------


def test_server_packet_ids_nonzero_and_unique_in_flight(raw, probes):
    """[MQTT-2.3.1-4] QoS > 0 PUBLISH packets the server sends carry non-zero
    packet ids, none reused while its flow is unfinished (QoS 1 unacked, QoS 2
    awaiting PUBREC or PUBCOMP)."""
    base = unique("ids")
    sub = online(raw)
    assert subscribed(sub, [(f"{base}/q1", 1), (f"{base}/q2", 2)]) == [1, 2]
    pub = probes(V311, "pub")
    pub.connect()
    for n in range(4):
        pub.publish(f"{base}/q1", f"a{n}".encode(), qos=1)
        pub.publish(f"{base}/q2", f"b{n}".encode(), qos=2)
    first = sub.publishes(8)
    qos2 = [p for p in first if p.qos == 2]
    assert len(qos2) == 4
    # Half-finish the QoS 2 flows: those ids stay in use until PUBCOMP.
    sub.send(*(rm.pubrec(p.packet_id) for p in qos2))
    rels = [sub.expect(PUBREL) for _ in qos2]
    assert [r.packet_id for r in rels] == [p.packet_id for p in qos2]
    for n in range(4):
        pub.publish(f"{base}/q1", f"c{n}".encode(), qos=1)
    later = sub.publishes(4)

    ids = [p.packet_id for p in first + later]
    assert 0 not in ids, ids
    assert len(set(ids)) == len(ids), f"packet id reused while in flight: {ids}"

    # Finish everything; the flows close cleanly, nothing else comes.
    sub.send(
        *(rm.puback(p.packet_id) for p in first + later if p.qos == 1),
        *(rm.pubcomp(p.packet_id) for p in qos2),
    )
    assert sub.barrier() == []


# --- 3.1 CONNECT -------------------------------------------------------------------


def test_retained_message_outlives_publisher_session(probes):
    """[MQTT-3.1.2.7] retained messages are not session state: they survive
    the end of the publishing client's session."""
    base = unique("outlive")
    # A clean session ends when its connection does.
    clean = probes(V311, "clean-pub")
    clean.connect(clean=True)
    clean.publish(f"{base}/clean", b"from a clean session", qos=1, retain=True)
    clean.disconnect()
    # A persistent session, then discarded by a Clean Session 1 reconnect.
    durable = probes(V311, "durable-pub")
    durable.connect(clean=False)
    durable.publish(f"{base}/durable", b"from a discarded session", qos=1, retain=True)
    durable.disconnect()
    durable.connect(clean=True)
    durable.disconnect()

    late = probes(V311, "late")
    late.connect()
    late.subscribe(f"{base}/#", 1)
    got = {(m.topic, m.payload, m.retain) for m in (late.expect("a retained message") for _ in range(2))}
    assert got == {
        (f"{base}/clean", b"from a clean session", True),
        (f"{base}/durable", b"from a discarded session", True),
    }


def test_no_will_published_without_will_flag(probes):
    """[MQTT-3.1.2-12] a connection with Will Flag 0 that ends abnormally
    publishes no will, even when an earlier connection of that client had
    one (it was discarded by that connection's DISCONNECT)."""
    base = unique("nowill")
    watcher = probes(V311, "watch")
    watcher.connect()
    watcher.subscribe(f"{base}/#", 1)

    quiet = probes(V311, "quiet")
    quiet.connect(clean=False, will=(f"{base}/quiet", b"stale will", 1, False))
    quiet.disconnect()  # normal DISCONNECT: this will is discarded
    quiet.connect(clean=False)  # Will Flag 0
    quiet.drop()

    # Positive control: a client with a will, dropped the same way.
    control = probes(V311, "control")
    control.connect(will=(f"{base}/control", b"control will", 1, False))
    control.drop()
    will = watcher.expect("the control client's will")
    assert (will.topic, will.payload) == (f"{base}/control", b"control will")

    # Reconnecting the quiet client proves its dropped connection is over
    # (ended or taken over); a will would have been published by then.
    assert quiet.connect(clean=False).session_present is True
    marker = probes(V311, "marker")
    marker.connect()
    marker.publish(f"{base}/marker", b"marker", qos=1)
    assert watcher.expect("the marker").topic == f"{base}/marker"
    watcher.assert_inbox_empty()


def test_will_retain_publishes_retained_will(probes):
    """[MQTT-3.1.2-17] Will Retain 1: the will is published as a retained
    message, so a client subscribing later receives it with RETAIN 1."""
    topic = f"{unique('rwill')}/status"
    watcher = probes(V311, "watch")
    watcher.connect()
    watcher.subscribe(topic, 1)
    doomed = probes(V311, "doomed")
    doomed.connect(will=(topic, b"offline", 1, True))
    doomed.drop()
    live = watcher.expect("the will")
    assert (live.topic, live.payload) == (topic, b"offline")

    late = probes(V311, "late")
    late.connect()
    late.subscribe(topic, 1)
    stored = late.expect("the retained will")
    assert (stored.topic, stored.payload, stored.retain, stored.qos) == (topic, b"offline", True, 1)


def test_keep_alive_expiry_disconnects_silent_client(raw):
    """[MQTT-3.1.2-24] Keep Alive 1 s: a client that sends nothing is
    disconnected within 1.5 s (plus scheduling slack); a client that keeps
    pinging over the same period stays connected."""
    keep_alive, slack = 1.0, 1.0
    silent = raw(rm.V311)
    busy = raw(rm.V311)
    assert busy.connect(unique("busy"), keep_alive=1).reason_code == 0
    assert silent.connect(unique("silent"), keep_alive=1).reason_code == 0
    start = time.monotonic()
    closed_at = None
    while closed_at is None or time.monotonic() - start < 1.5 * keep_alive + slack:
        if closed_at is None:
            try:
                unexpected = silent.read(timeout=0.25)
            except NoPacket:
                pass
            except Closed:
                closed_at = time.monotonic() - start
            else:
                raise AssertionError(f"3.1.1 server sent {unexpected!r} to an idle client")
            assert time.monotonic() - start <= 1.5 * keep_alive + slack, "silent client not disconnected"
        else:
            # Pace the control client's pings without sleeping: a bounded
            # read that must see nothing.
            try:
                unexpected = busy.read(timeout=0.25)
            except NoPacket:
                pass
            else:
                raise AssertionError(f"unexpected {unexpected!r}")
        assert busy.barrier(timeout=2.0) == []
    assert keep_alive <= closed_at <= 1.5 * keep_alive + slack, closed_at
    assert busy.barrier() == []


def test_client_id_boundaries_accepted(raw):
    """[MQTT-3.1.3-5] 1-byte and 23-byte ClientIds of 0-9a-zA-Z are
    accepted, with Clean Session 1 and 0."""
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    ids = ["Z", alphabet[:23], alphabet[-23:], alphabet[20:43]]
    assert [len(i) for i in ids] == [1, 23, 23, 23]
    clients = []
    for n, client_id in enumerate(ids):
        client = raw(rm.V311)
        connack = client.connect(client_id, clean=n % 2 == 0)
        assert (connack.reason_code, connack.session_present) == (0, False), (client_id, connack)
        clients.append(client)
    # All stay connected side by side.
    for client in clients:
        assert client.barrier() == []


def test_empty_client_id_with_clean_session_accepted(raw):
    """[MQTT-3.1.3-6] an empty ClientId with Clean Session 1 is accepted and
    handled as a unique client: two such clients coexist, each with its own
    subscriptions."""
    base = unique("anon")
    first = online(raw, "")
    second = online(raw, "")
    # The second did not take the first over.
    assert first.barrier() == []
    assert subscribed(first, [(f"{base}/one", 1)]) == [1]
    assert subscribed(second, [(f"{base}/two", 1)]) == [1]
    first.send(rm.publish(f"{base}/two", b"to second", qos=1, packet_id=7))
    assert first.expect(PUBACK).packet_id == 7
    got = second.expect(PUBLISH)
    assert (got.topic, got.payload) == (f"{base}/two", b"to second")
    second.send(rm.puback(got.packet_id), rm.publish(f"{base}/one", b"to first", qos=1, packet_id=8))
    assert second.expect(PUBACK).packet_id == 8
    got = first.expect(PUBLISH)
    assert (got.topic, got.payload) == (f"{base}/one", b"to first")


def test_rejected_connect_processes_nothing_after(raw, probes):
    """[MQTT-3.1.4-5] after refusing a CONNECT (empty ClientId with Clean
    Session 0: return code 0x02) the server processes none of the bytes that
    followed it in the same write."""
    base = unique("refused")
    watcher = probes(V311, "watch")
    watcher.connect()
    watcher.subscribe(f"{base}/#", 1)

    client = raw(rm.V311)
    client.send(
        rm.connect("", clean=False),
        rm.publish(f"{base}/leak", b"after refused CONNECT", qos=1, packet_id=1, retain=True),
        rm.publish(f"{base}/leak0", b"qos 0 after refused CONNECT"),
        rm.subscribe(2, [(f"{base}/#", 1)]),
        rm.pingreq(),
    )
    got = client.read_until_closed()
    assert [p.type for p in got] == [CONNACK], got
    assert (got[0].reason_code, got[0].session_present) == (0x02, False)

    # Neither PUBLISH reached the subscriber nor the retained store.
    marker = probes(V311, "marker")
    marker.connect()
    marker.publish(f"{base}/marker", b"marker", qos=1)
    assert watcher.expect("the marker").topic == f"{base}/marker"
    watcher.assert_inbox_empty()
    late = probes(V311, "late")
    late.connect()
    late.subscribe(f"{base}/#", 1)
    marker.publish(f"{base}/marker", b"marker 2", qos=1)
    assert late.expect("the second marker").payload == b"marker 2"
    late.assert_inbox_empty()


# --- 3.3 PUBLISH, 4.4 redelivery -----------------------------------------------------


def test_resumed_session_resends_qos1_with_dup_same_ids_in_order(raw, probes):
    """[MQTT-3.3.1-1] a re-delivered PUBLISH has DUP 1; [MQTT-4.4.0-1] on a
    Clean Session 0 reconnect unacknowledged QoS 1 PUBLISH packets are re-sent
    with their original packet ids; [MQTT-4.6.0-1] in the original order."""
    topic = f"{unique('resume1')}/t"
    client_id = unique("sleeper")
    sub = online(raw, client_id, clean=False)
    assert subscribed(sub, [(topic, 1)]) == [1]
    pub = probes(V311, "pub")
    pub.connect()
    sent = [f"m{n}".encode() for n in range(4)]
    for payload in sent:
        pub.publish(topic, payload, qos=1)
    first = sub.publishes(len(sent))
    assert [(p.payload, p.dup) for p in first] == [(m, False) for m in sent]
    sub.close()  # no PUBACK: all four stay unacknowledged

    again = raw(rm.V311)
    connack = again.connect(client_id, clean=False)
    assert (connack.reason_code, connack.session_present) == (0, True)
    resent = again.publishes(len(sent))
    assert [(p.packet_id, p.payload, p.qos, p.dup) for p in resent] == [
        (p.packet_id, p.payload, 1, True) for p in first
    ]
    again.send(*(rm.puback(p.packet_id) for p in resent))
    assert again.barrier() == []


def test_resumed_session_resends_pubrel_and_unreceived_qos2(raw, probes):
    """[MQTT-4.4.0-1] on a Clean Session 0 reconnect the server re-sends the
    PUBREL of a QoS 2 flow that got its PUBREC, and re-sends (DUP 1,
    [MQTT-3.3.1-1]) the QoS 2 PUBLISH that did not, both with their original
    packet ids."""
    topic = f"{unique('resume2')}/t"
    client_id = unique("sleeper")
    sub = online(raw, client_id, clean=False)
    assert subscribed(sub, [(topic, 2)]) == [2]
    pub = probes(V311, "pub")
    pub.connect()
    pub.publish(topic, b"received", qos=2)
    pub.publish(topic, b"unreceived", qos=2)
    got, lost = sub.publishes(2)
    assert (got.payload, lost.payload) == (b"received", b"unreceived")
    sub.send(rm.pubrec(got.packet_id))
    assert sub.expect(PUBREL).packet_id == got.packet_id
    sub.close()  # neither PUBCOMP nor PUBREC for the second

    again = raw(rm.V311)
    assert again.connect(client_id, clean=False).session_present is True
    resent = again.barrier()
    summary = sorted((p.name, p.packet_id, p.dup, p.payload) for p in resent)
    assert summary == sorted(
        [("PUBREL", got.packet_id, False, None), ("PUBLISH", lost.packet_id, True, b"unreceived")]
    ), resent
    again.send(rm.pubcomp(got.packet_id), rm.pubrec(lost.packet_id))
    assert again.expect(PUBREL).packet_id == lost.packet_id
    again.send(rm.pubcomp(lost.packet_id))
    assert again.barrier() == []


def test_incoming_dup_flag_not_forwarded(raw):
    """[MQTT-3.3.1-3] the DUP flag the server sends depends only on its own
    retransmission: a PUBLISH received with DUP 1 is forwarded with DUP 0."""
    base = unique("dup")
    sub = online(raw)
    assert subscribed(sub, [(f"{base}/#", 2)]) == [2]
    pub = online(raw)
    pub.send(rm.publish(f"{base}/q1", b"one", qos=1, packet_id=3, dup=True))
    assert pub.expect(PUBACK).packet_id == 3
    pub.send(rm.publish(f"{base}/q2", b"two", qos=2, packet_id=4, dup=True))
    assert pub.expect(PUBREC).packet_id == 4
    pub.send(rm.pubrel(4))
    assert pub.expect(PUBCOMP).packet_id == 4
    one, two = sub.publishes(2)
    assert (one.payload, one.qos, one.dup) == (b"one", 1, False)
    assert (two.payload, two.qos, two.dup) == (b"two", 2, False)


def test_retained_qos0_replaces_retained_message(raw, probes):
    """[MQTT-3.3.1-7] a retained QoS 0 message replaces the topic's retained
    message (the server may drop it later, but never keeps the old one; Strata
    keeps it)."""
    topic = f"{unique('rq0')}/t"
    pub = online(raw)
    settled(pub, rm.publish(topic, b"old", qos=1, packet_id=1, retain=True))
    settled(pub, rm.publish(topic, b"new", qos=0, retain=True))
    late = online(raw)
    assert subscribed(late, [(topic, 1)]) == [1]
    got = late.barrier()
    assert [(p.topic, p.payload, p.qos, p.retain) for p in got] == [(topic, b"new", 0, True)]


def test_retain_zero_publish_leaves_retained_message(raw):
    """[MQTT-3.3.1-12] a RETAIN 0 PUBLISH neither stores nor removes nor
    replaces the retained message, even with an empty payload."""
    topic = f"{unique('r0')}/t"
    pub = online(raw)
    settled(
        pub,
        rm.publish(topic, b"kept", qos=1, packet_id=1, retain=True),
        rm.publish(topic, b"live qos 1", qos=1, packet_id=2),
        rm.publish(topic, b"live qos 0"),
        rm.publish(topic, b"", qos=1, packet_id=3),
    )
    late = online(raw)
    assert subscribed(late, [(topic, 1)]) == [1]
    got = late.barrier()
    assert [(p.payload, p.retain) for p in got] == [(b"kept", True)]


# --- 3.8 SUBSCRIBE, 3.9 SUBACK ------------------------------------------------------------


def test_resubscribe_resends_retained_without_losing_messages(raw, probes):
    """[MQTT-3.8.4-3] subscribing again to an existing filter re-sends the
    matching retained messages, and publications around the replacement are
    not lost."""
    topic = f"{unique('resub')}/t"
    keeper = probes(V311, "keeper")
    keeper.connect()
    keeper.publish(topic, b"retained", qos=1, retain=True)
    client = online(raw)
    client.send(rm.subscribe(1, [(topic, 1)]))
    first = [client.read() for _ in range(2)]
    assert sorted((p.name, p.payload, p.retain) for p in first) == [
        ("PUBLISH", b"retained", True),
        ("SUBACK", None, False),
    ], first
    client.send(rm.puback(next(p.packet_id for p in first if p.type == PUBLISH)))

    # Live message, re-subscription, live message: all in one write.
    client.send(
        rm.publish(topic, b"before", qos=1, packet_id=10),
        rm.subscribe(11, [(topic, 1)]),
        rm.publish(topic, b"after", qos=1, packet_id=12),
    )
    got = [client.read() for _ in range(6)]
    acks = [(p.name, p.packet_id, p.reason_codes) for p in got if p.type != PUBLISH]
    assert acks == [("PUBACK", 10, [0]), ("SUBACK", 11, [1]), ("PUBACK", 12, [0])], got
    delivered = sorted((p.payload, p.retain) for p in got if p.type == PUBLISH)
    assert delivered == [(b"after", False), (b"before", False), (b"retained", True)], got
    client.send(*(rm.puback(p.packet_id) for p in got if p.type == PUBLISH))
    assert client.barrier() == []


def test_multi_filter_subscribe_one_suback_in_order(raw, probes):
    """[MQTT-3.8.4-4] a SUBSCRIBE with several filters acts as several
    SUBSCRIBEs answered by one SUBACK; [MQTT-3.9.3-1] whose return codes follow
    the filter order."""
    base = unique("multi")
    filters = [(f"{base}/two", 2), (f"{base}/zero", 0), (f"{base}/one", 1), (f"{base}/wild/+", 1)]
    client = online(raw)
    client.send(rm.subscribe(77, filters))
    suback = client.expect(SUBACK)
    assert (suback.packet_id, suback.reason_codes) == (77, [2, 0, 1, 1])
    assert client.barrier() == [], "more than one SUBACK"

    pub = probes(V311, "pub")
    pub.connect()
    for name in ("two", "zero", "one", "wild/x"):
        pub.publish(f"{base}/{name}", name.encode(), qos=2)
    got = client.publishes(4)
    assert [(p.payload, p.qos) for p in got] == [(b"two", 2), (b"zero", 0), (b"one", 1), (b"wild/x", 1)]


# --- 3.10 UNSUBSCRIBE -----------------------------------------------------------------------


def test_unsuback_sent_when_nothing_unsubscribed(raw, probes):
    """[MQTT-3.10.4-5] the server answers UNSUBSCRIBE with UNSUBACK even when
    no subscription is deleted (filters compare literally: `a/b` does not
    remove `a/+`, which keeps working)."""
    base = unique("nounsub")
    client = online(raw)
    assert subscribed(client, [(f"{base}/+", 1)]) == [1]
    client.send(rm.unsubscribe(9, [f"{base}/never"]), rm.unsubscribe(10, [f"{base}/x"]))
    acks = [client.expect(UNSUBACK) for _ in range(2)]
    assert [(a.packet_id, a.reason_codes) for a in acks] == [(9, []), (10, [])]
    pub = probes(V311, "pub")
    pub.connect()
    pub.publish(f"{base}/x", b"still subscribed", qos=1)
    assert client.expect(PUBLISH).payload == b"still subscribed"


def test_multi_filter_unsubscribe_one_unsuback(raw, probes):
    """[MQTT-3.10.4-6] an UNSUBSCRIBE with several filters acts as several
    UNSUBSCRIBEs answered by exactly one UNSUBACK."""
    base = unique("multiunsub")
    client = online(raw)
    topics = [f"{base}/{n}" for n in ("a", "b", "c")]
    assert subscribed(client, [(t, 1) for t in topics]) == [1, 1, 1]
    client.send(rm.unsubscribe(5, [topics[0], f"{base}/never", topics[2]]))
    ack = client.expect(UNSUBACK)
    assert ack.packet_id == 5
    assert client.barrier() == [], "more than one UNSUBACK"

    pub = probes(V311, "pub")
    pub.connect()
    for topic in (topics[0], topics[2], topics[1]):
        pub.publish(topic, topic.encode(), qos=1)
    # Only b is still subscribed; a and c were published before it.
    got = client.expect(PUBLISH)
    assert got.topic == topics[1], got
    client.send(rm.puback(got.packet_id))
    assert client.barrier() == []


def test_unsubscribe_completes_inflight_deliveries(raw, probes):
    """[MQTT-3.10.4-3] QoS 1 and QoS 2 deliveries started before an
    UNSUBSCRIBE are completed: the PUBACK is accepted and the QoS 2 flow
    continues with PUBREL; the connection stays up."""
    base = unique("unsubflight")
    client = online(raw)
    assert subscribed(client, [(f"{base}/q1", 1), (f"{base}/q2", 2)]) == [1, 2]
    pub = probes(V311, "pub")
    pub.connect()
    pub.publish(f"{base}/q1", b"one", qos=1)
    pub.publish(f"{base}/q2", b"two", qos=2)
    one, two = client.publishes(2)
    client.send(rm.unsubscribe(3, [f"{base}/q1", f"{base}/q2"]))
    assert client.expect(UNSUBACK).packet_id == 3

    client.send(rm.puback(one.packet_id), rm.pubrec(two.packet_id))
    rel = client.expect(PUBREL)
    assert rel.packet_id == two.packet_id
    client.send(rm.pubcomp(two.packet_id))
    assert client.barrier() == []
    # The subscriptions are gone: later messages do not arrive.
    pub.publish(f"{base}/q1", b"late", qos=1)
    pub.publish(f"{base}/q2", b"late", qos=2)
    assert client.barrier() == []


# --- 3.12 PINGREQ ---------------------------------------------------------------------------


def test_pingreq_answered_with_pingresp(raw):
    """[MQTT-3.12.4-1] every PINGREQ gets a PINGRESP (exactly 0xD0 0x00)."""
    client = online(raw)
    client.send(rm.pingreq(), rm.pingreq(), rm.pingreq())
    got = [client.expect(PINGRESP) for _ in range(3)]
    assert [p.raw for p in got] == [b"\xd0\x00"] * 3
    # Exactly one answer each: a fourth PINGREQ's answer comes next.
    assert client.barrier() == []


# --- 4.3 QoS flows ---------------------------------------------------------------------------


def test_outbound_qos1_first_send(raw, probes):
    """[MQTT-4.3.2-1] the server sends a QoS 1 message with a fresh non-zero
    packet id, QoS 1 and DUP 0, and treats it as unacknowledged until PUBACK
    (no second copy while waiting)."""
    topic = f"{unique('out1')}/t"
    client = online(raw)
    assert subscribed(client, [(topic, 1)]) == [1]
    pub = probes(V311, "pub")
    pub.connect()
    pub.publish(topic, b"once", qos=1)
    msg = client.expect(PUBLISH)
    assert (msg.qos, msg.dup, msg.retain, msg.payload) == (1, False, False, b"once")
    assert msg.packet_id not in (None, 0)
    assert client.barrier() == []
    client.send(rm.puback(msg.packet_id))
    assert client.barrier() == []


def test_inbound_qos1_puback_and_packet_id_reuse(raw, probes):
    """[MQTT-4.3.2-2] each QoS 1 PUBLISH is answered by a PUBACK with its
    packet id, and once PUBACK is sent the same id starts a new message,
    whatever the DUP flag says."""
    topic = f"{unique('in1')}/t"
    watcher = probes(V311, "watch")
    watcher.connect()
    watcher.subscribe(topic, 1)
    client = online(raw)
    client.send(rm.publish(topic, b"one", qos=1, packet_id=5))
    assert client.expect(PUBACK).packet_id == 5
    client.send(rm.publish(topic, b"two", qos=1, packet_id=5))
    assert client.expect(PUBACK).packet_id == 5
    client.send(rm.publish(topic, b"three", qos=1, packet_id=5, dup=True))
    assert client.expect(PUBACK).packet_id == 5
    assert [watcher.expect(f"message {n}").payload for n in range(3)] == [b"one", b"two", b"three"]


def test_outbound_qos2_flow(raw, probes):
    """[MQTT-4.3.3-1] the server sends QoS 2 with a non-zero id and DUP 0,
    answers PUBREC with a PUBREL of that id and, once PUBREC came, never sends
    the PUBLISH again."""
    topic = f"{unique('out2')}/t"
    client = online(raw)
    assert subscribed(client, [(topic, 2)]) == [2]
    pub = probes(V311, "pub")
    pub.connect()
    pub.publish(topic, b"exactly once", qos=2)
    msg = client.expect(PUBLISH)
    assert (msg.qos, msg.dup, msg.payload) == (2, False, b"exactly once")
    assert msg.packet_id not in (None, 0)
    assert client.barrier() == []
    client.send(rm.pubrec(msg.packet_id))
    rel = client.expect(PUBREL)
    assert (rel.packet_id, rel.flags) == (msg.packet_id, 0x2)
    assert client.barrier() == [], "PUBLISH or PUBREL sent again"
    client.send(rm.pubcomp(msg.packet_id))
    assert client.barrier() == []


def test_inbound_qos2_duplicate_delivered_once(raw, probes):
    """[MQTT-4.3.3-2] as receiver the server answers each QoS 2 PUBLISH
    (also a DUP re-send before PUBREL) with PUBREC, delivers the message
    onward once, and answers PUBREL with PUBCOMP."""
    topic = f"{unique('in2')}/t"
    watcher = probes(V311, "watch")
    watcher.connect()
    watcher.subscribe(topic, 2)
    client = online(raw)
    client.send(rm.publish(topic, b"once", qos=2, packet_id=9))
    assert client.expect(PUBREC).packet_id == 9
    client.send(rm.publish(topic, b"once", qos=2, packet_id=9, dup=True))
    assert client.expect(PUBREC).packet_id == 9
    client.send(rm.pubrel(9))
    assert client.expect(PUBCOMP).packet_id == 9
    assert client.barrier() == []
    assert watcher.expect("the message").payload == b"once"
    marker = f"{topic}/marker"
    watcher.subscribe(marker, 1)
    client.send(rm.publish(marker, b"marker", qos=1, packet_id=10))
    assert client.expect(PUBACK).packet_id == 10
    assert watcher.expect("the marker").topic == marker
    watcher.assert_inbox_empty()


def test_inbound_qos2_duplicate_in_same_write_gets_pubrec(raw, probes):
    """[MQTT-4.3.3-2] a QoS 2 PUBLISH and its DUP re-send arriving together
    (before any PUBREC was read) each get a PUBREC; the message goes onward
    once."""
    topic = f"{unique('in2same')}/t"
    watcher = probes(V311, "watch")
    watcher.connect()
    watcher.subscribe(topic, 2)
    client = online(raw)
    client.send(
        rm.publish(topic, b"once", qos=2, packet_id=9),
        rm.publish(topic, b"once", qos=2, packet_id=9, dup=True),
    )
    recs = client.barrier()
    assert [(p.name, p.packet_id) for p in recs] == [("PUBREC", 9), ("PUBREC", 9)], recs
    client.send(rm.pubrel(9))
    assert client.expect(PUBCOMP).packet_id == 9
    assert watcher.expect("the message").payload == b"once"
    client.send(rm.publish(topic, b"marker", qos=1, packet_id=10))
    assert client.expect(PUBACK).packet_id == 10
    assert watcher.expect("the marker").payload == b"marker"
    watcher.assert_inbox_empty()


# --- 4.6 ordering ----------------------------------------------------------------------------

# Packet ids in no particular order, so "in order" cannot mean "sorted".
SHUFFLED_IDS = [17, 3, 250, 9, 1, 64, 2, 1000, 5, 42]


def test_acknowledgements_follow_publish_order(raw, probes):
    """[MQTT-4.6.0-2] PUBACKs go out in the order the QoS 1 PUBLISHes came;
    [MQTT-4.6.0-3] PUBRECs in the order the QoS 2 PUBLISHes came;
    [MQTT-4.6.0-6] subscribers get the messages in that order."""
    topic = f"{unique('order')}/t"
    watcher = probes(V311, "watch")
    watcher.connect()
    watcher.subscribe(topic, 2)
    client = online(raw)
    client.send(*(rm.publish(topic, f"q1 {i}".encode(), qos=1, packet_id=i) for i in SHUFFLED_IDS))
    acks = [client.expect(PUBACK) for _ in SHUFFLED_IDS]
    assert [a.packet_id for a in acks] == SHUFFLED_IDS
    client.send(*(rm.publish(topic, f"q2 {i}".encode(), qos=2, packet_id=i) for i in SHUFFLED_IDS))
    recs = [client.expect(PUBREC) for _ in SHUFFLED_IDS]
    assert [r.packet_id for r in recs] == SHUFFLED_IDS
    client.send(*(rm.pubrel(i) for i in reversed(SHUFFLED_IDS)))
    comps = [client.expect(PUBCOMP) for _ in SHUFFLED_IDS]
    assert sorted(c.packet_id for c in comps) == sorted(SHUFFLED_IDS)

    expected = [f"q1 {i}".encode() for i in SHUFFLED_IDS] + [f"q2 {i}".encode() for i in SHUFFLED_IDS]
    assert [watcher.expect(f"message {n}").payload for n in range(len(expected))] == expected


def test_pubrel_order_follows_pubrec_order(raw, probes):
    """[MQTT-4.6.0-4] the server sends PUBRELs in the order the PUBRECs
    arrived, not in the order it sent the PUBLISHes; [MQTT-4.6.0-6] which it
    sent in the order it received them."""
    topic = f"{unique('relorder')}/t"
    client = online(raw)
    assert subscribed(client, [(topic, 2)]) == [2]
    pub = probes(V311, "pub")
    pub.connect()
    for n in range(10):
        pub.publish(topic, f"m{n}".encode(), qos=2)
    got = client.publishes(10)
    assert {p.qos for p in got} == {2}
    assert [p.payload for p in got] == [f"m{n}".encode() for n in range(10)]
    order = [got[n].packet_id for n in (3, 9, 0, 5, 1, 8, 2, 7, 4, 6)]
    client.send(*(rm.pubrec(i) for i in order))
    rels = [client.expect(PUBREL) for _ in order]
    assert [r.packet_id for r in rels] == order
    client.send(*(rm.pubcomp(i) for i in order))
    assert client.barrier() == []


# --- 4.7 topic names -------------------------------------------------------------------------


def test_longest_topic_name_is_accepted_and_delivered(raw):
    """[MQTT-4.7.3-3] topic names and filters may encode to 65535 bytes (the
    2-byte length cannot say more): a filter and a topic name of exactly 65535
    bytes, multi-byte characters included, are accepted and delivered intact."""
    prefix = unique("long") + "/\u00e9\u20ac/"
    topic = prefix + "x" * (65535 - len(prefix.encode()))
    assert len(topic.encode()) == 65535
    sub = online(raw)
    assert subscribed(sub, [(topic, 1)]) == [1]
    pub = online(raw)
    pub.send(rm.publish(topic, b"long", qos=1, packet_id=1))
    assert pub.expect(PUBACK).packet_id == 1
    got = sub.publishes(1)[0]
    assert (got.topic, got.payload) == (topic, b"long")
