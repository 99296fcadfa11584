"""Retained messages and will messages."""

from mqttprobe import unique


def test_retained_message_reaches_later_subscriber_and_is_cleared(probes, protocol):
    base = unique("retained")
    topic = f"{base}/state"
    publisher = probes(protocol, "pub")
    publisher.connect()
    watcher = probes(protocol, "watch")
    watcher.connect()
    watcher.subscribe(f"{base}/#", 1)

    # [MQTT-3.3.1-5]: a RETAIN=1 PUBLISH is stored for future subscribers.
    publisher.publish(topic, b"on", qos=1, retain=True)
    live = watcher.expect("the live copy of the retained publish")
    assert (live.topic, live.payload) == (topic, b"on")
    # [MQTT-3.3.1-9] (3.1.1) / [MQTT-3.3.1-12] (5.0, Retain As Published 0):
    # forwarded on an established subscription with RETAIN 0.
    assert live.retain is False

    late = probes(protocol, "late")
    late.connect()
    late.subscribe(f"{base}/#", 1)
    # [MQTT-3.3.1-6] (3.1.1) / [MQTT-3.3.1-9] (5.0, Retain Handling 0): a new
    # subscription gets the retained message, and [MQTT-3.3.1-8] (3.1.1, and
    # section 3.3.1.3 of 5.0) with RETAIN 1.
    stored = late.expect("the retained message")
    assert (stored.topic, stored.payload, stored.retain) == (topic, b"on", True)
    assert stored.qos == 1

    # [MQTT-3.3.1-10] (3.1.1) / [MQTT-3.3.1-6] (5.0): an empty retained
    # publish is forwarded as normal and removes the retained message.
    publisher.publish(topic, b"", qos=1, retain=True)
    for probe in (watcher, late):
        cleared = probe.expect("the empty retained publish")
        assert (cleared.topic, cleared.payload, cleared.retain) == (topic, b"", False)

    after = probes(protocol, "after")
    after.connect()
    after.subscribe(f"{base}/#", 1)
    # Positive control: a message published after the SUBACK arrives; a
    # retained message, had one been kept ([MQTT-3.3.1-11] (3.1.1) /
    # [MQTT-3.3.1-7] (5.0) forbid it), would have been sent before it.
    publisher.publish(f"{base}/control", b"control", qos=1)
    first = after.expect("the control message")
    assert (first.topic, first.payload, first.retain) == (f"{base}/control", b"control", False)
    after.assert_inbox_empty()


def test_will_published_when_connection_drops(probes, protocol):
    will_topic = f"{unique('will')}/status"
    watcher = probes(protocol, "watch")
    watcher.connect()
    watcher.subscribe(will_topic, 1)

    doomed = probes(protocol, "doomed")
    doomed.connect(will=(will_topic, b"gone", 1, False))
    # Closing the socket without DISCONNECT: [MQTT-3.1.2-8] the will must be
    # published (5.0: Will Delay Interval absent, so 0).
    doomed.drop()

    will = watcher.expect("the will message")
    assert (will.topic, will.payload, will.qos) == (will_topic, b"gone", 1)
    # [MQTT-3.1.2-16] (3.1.1) / [MQTT-3.1.2-14] (5.0): Will Retain 0, so
    # published as a non-retained message.
    assert will.retain is False

