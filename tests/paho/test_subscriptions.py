"""Unsubscribe, shared subscriptions and `$` topics."""

import queue

from mqttprobe import unique

SHARED_MESSAGES = 10


def test_unsubscribe_stops_delivery(probes, protocol):
    base = unique("unsub")
    gone, kept = f"{base}/gone", f"{base}/kept"
    subscriber = probes(protocol, "sub")
    publisher = probes(protocol, "pub")
    subscriber.connect()
    publisher.connect()
    subscriber.subscribe(gone, 1)
    subscriber.subscribe(kept, 1)
    publisher.publish(gone, b"before", qos=1)
    assert subscriber.expect("the message before UNSUBSCRIBE").topic == gone

    codes = subscriber.unsubscribe(gone)
    if subscriber.is_v5:
        # One reason code for the one filter: 0x00 Success.
        assert [code.value for code in codes] == [0]

    # [MQTT-3.10.4-1] the subscription is deleted and [MQTT-3.10.4-2] no new
    # message is added for it. Control: the same publisher's next message, on
    # a topic still subscribed, arrives, and nothing came before it.
    publisher.publish(gone, b"after", qos=1)
    publisher.publish(kept, b"control", qos=1)
    message = subscriber.expect("the control message")
    assert (message.topic, message.payload) == (kept, b"control")
    subscriber.assert_inbox_empty()


def test_shared_subscription_splits_messages(probes, protocol):
    base = unique("shared")
    topic, done = f"{base}/work", f"{base}/done"
    inbox: queue.Queue = queue.Queue()
    members = [probes(protocol, f"member{n}", inbox=inbox) for n in range(2)]
    for member in members:
        member.connect()
        # [MQTT-4.8.2-1]: $share/{ShareName}/{filter}.
        assert [code.value for code in member.subscribe(f"$share/g/{topic}", 1)] == [1]
        member.subscribe(done, 1)
    publisher = probes(protocol, "pub")
    publisher.connect()

    sent = [f"job {n}".encode() for n in range(SHARED_MESSAGES)]
    for payload in sent:
        publisher.publish(topic, payload, qos=1)
    # A non-shared topic both members follow: once each has its copy, every
    # shared message published before it has been routed.
    publisher.publish(done, b"done", qos=1)

    got: dict[str, list[bytes]] = {member.client_id: [] for member in members}
    finished: set[str] = set()
    while finished != set(got):
        message = members[0].expect("shared work or the end marker")
        if message.topic == done:
            finished.add(message.client_id)
        else:
            assert message.topic == topic
            got[message.client_id].append(message.payload)

    # Each message goes to exactly one member of the group.
    delivered = [payload for payloads in got.values() for payload in payloads]
    assert sorted(delivered) == sorted(sent), got
    assert all(len(payloads) > 0 for payloads in got.values()), got
    members[0].assert_inbox_empty()


def test_wildcards_do_not_match_dollar_topics(probes, protocol):
    base = unique("dollar")
    # Positive control that `$SYS` topics exist: the broker publishes them
    # retained at startup, so an explicit `$SYS/#` subscriber gets them.
    sys_watcher = probes(protocol, "sys")
    sys_watcher.connect()
    sys_watcher.subscribe("$SYS/#", 0)
    sys_message = sys_watcher.expect("a retained $SYS message")
    assert sys_message.topic.startswith("$SYS/")

    everything = probes(protocol, "all")
    everything.connect()
    # [MQTT-4.7.2-1]: filters starting with `#` or `+` never match topic
    # names starting with `$`, retained or live.
    everything.subscribe("#", 0)
    everything.subscribe("+/broker/#", 0)

    publisher = probes(protocol, "pub")
    publisher.connect()
    publisher.publish(f"{base}/normal", b"control", qos=1)
    first = everything.expect("the control message")
    assert (first.topic, first.payload) == (f"{base}/normal", b"control")
    everything.assert_inbox_empty()
