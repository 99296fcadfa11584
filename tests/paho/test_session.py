"""Persistent sessions: messages queued while the client is offline."""

from mqttprobe import unique

SESSION_EXPIRY_SECS = 300


def test_offline_messages_delivered_in_order_on_resume(probes, protocol):
    topic = f"{unique('session')}/inbox"
    sleeper = probes(protocol, "sleeper")
    first = sleeper.connect(clean=True, session_expiry=SESSION_EXPIRY_SECS)
    assert first.session_present is False
    if not sleeper.is_v5:
        # 3.1.1 has no "discard then keep": start clean to drop any old
        # state, then reconnect with CleanSession 0 to keep the new one.
        sleeper.disconnect()
        resumed = sleeper.connect(clean=False)
        assert resumed.session_present is False
    assert [code.value for code in sleeper.subscribe(topic, 1)] == [1]
    sleeper.disconnect()

    publisher = probes(protocol, "pub")
    publisher.connect()
    sent = [f"offline {n}".encode() for n in range(3)]
    for payload in sent:
        publisher.publish(topic, payload, qos=1)

    # 3.1.1: [MQTT-3.1.2-4] the session is kept after disconnection and
    # [MQTT-3.1.2-5] QoS 1 messages matching its subscriptions are stored.
    # 5.0: [MQTT-3.1.2-23] kept while the Session Expiry Interval runs and
    # [MQTT-3.1.2-5] resumed on Clean Start 0.
    connack = sleeper.connect(clean=False, session_expiry=SESSION_EXPIRY_SECS)
    # [MQTT-3.2.2-2] (3.1.1) / [MQTT-3.2.2-3] (5.0): Session Present 1.
    assert connack.session_present is True

    got = [sleeper.expect(f"stored message {n}") for n in range(3)]
    # [MQTT-4.6.0-6] (3.1.1) / [MQTT-4.6.0-5] (5.0): same order as received.
    assert [m.payload for m in got] == sent
    assert {(m.topic, m.qos) for m in got} == {(topic, 1)}
