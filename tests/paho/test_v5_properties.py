"""MQTT 5.0 publication properties and subscription identifiers."""

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes

from mqttprobe import properties, unique

V5 = mqtt.MQTTv5


def test_request_response_properties_pass_through(probes):
    topic = f"{unique('props')}/request"
    subscriber = probes(V5, "sub")
    publisher = probes(V5, "pub")
    subscriber.connect()
    publisher.connect()
    subscriber.subscribe(topic, 1)

    # A repeated key and a non-alphabetical order: both must survive.
    user = [("zeta", "1"), ("alpha", "2"), ("zeta", "3"), ("\u00fcml\u00e4ut", "\u2713")]
    correlation = bytes([0x00, 0x01, 0xFE, 0xFF]) + b"id-42"
    props = properties(
        PacketTypes.PUBLISH,
        UserProperty=user,
        ResponseTopic=f"{topic}/reply",
        CorrelationData=correlation,
    )
    publisher.publish(topic, b"ping", qos=1, props=props)

    message = subscriber.expect("the request")
    assert message.payload == b"ping"
    # [MQTT-3.3.2-17] unaltered, [MQTT-3.3.2-18] in order.
    assert message.properties.UserProperty == user
    # [MQTT-3.3.2-15]
    assert message.properties.ResponseTopic == f"{topic}/reply"
    # [MQTT-3.3.2-16]
    assert message.properties.CorrelationData == correlation


def test_subscription_identifier_delivered(probes):
    base = unique("subid")
    subscriber = probes(V5, "sub")
    publisher = probes(V5, "pub")
    subscriber.connect()
    publisher.connect()
    subscriber.subscribe(f"{base}/+", 1, subscription_id=42)

    publisher.publish(f"{base}/x", b"one", qos=1)
    message = subscriber.expect("the message")
    assert message.payload == b"one"
    # [MQTT-3.3.4-3]: the identifier of the matching subscription is sent.
    assert message.properties.SubscriptionIdentifier == [42]


def test_overlapping_subscription_identifiers(probes):
    base = unique("subid")
    subscriber = probes(V5, "sub")
    publisher = probes(V5, "pub")
    subscriber.connect()
    publisher.connect()
    subscriber.subscribe(f"{base}/+", 1, subscription_id=42)
    subscriber.subscribe(f"{base}/#", 1, subscription_id=7)

    publisher.publish(f"{base}/x", b"both", qos=1)
    # [MQTT-3.3.4-4]: one copy carries both identifiers (any order), or
    # [MQTT-3.3.4-5]: each of two copies carries its own.
    first = subscriber.expect("the message")
    ids = [sorted(first.properties.SubscriptionIdentifier)]
    if ids[0] != [7, 42]:
        second = subscriber.expect("the second copy")
        ids.append(sorted(second.properties.SubscriptionIdentifier))
        assert sorted(ids) == [[7], [42]]
    # Control: a later message on a topic only the first filter matches.
    publisher.publish(f"{base}/y/z", b"deep", qos=1)
    deep = subscriber.expect("the control message")
    assert (deep.payload, deep.properties.SubscriptionIdentifier) == (b"deep", [7])
    subscriber.assert_inbox_empty()
