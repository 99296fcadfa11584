"""CONNECT/CONNACK and the QoS 0/1/2 publish round trip."""

import pytest

from mqttprobe import unique


def test_connect_accepted_without_session(probes, protocol):
    probe = probes(protocol)
    connack = probe.connect(clean=True)
    # [MQTT-3.1.4-4] (3.1.1) / [MQTT-3.1.4-5] (5.0): success is acknowledged
    # with a zero return code / 0x00 reason code.
    assert connack.reason_code.value == 0
    # [MQTT-3.2.2-1] (3.1.1) / [MQTT-3.2.2-2] (5.0): a clean session starts
    # with Session Present 0.
    assert connack.session_present is False


@pytest.mark.parametrize("sub_qos", [0, 1, 2])
@pytest.mark.parametrize("pub_qos", [0, 1, 2])
def test_publish_round_trip(probes, protocol, pub_qos, sub_qos):
    topic = f"{unique('qos')}/pub{pub_qos}/sub{sub_qos}"
    payload = f"payload pub={pub_qos} sub={sub_qos} \u00e9".encode()
    subscriber = probes(protocol, "sub")
    publisher = probes(protocol, "pub")
    subscriber.connect()
    publisher.connect()

    granted = subscriber.subscribe(topic, sub_qos)
    # [MQTT-3.8.4-5] (3.1.1) / [MQTT-3.8.4-7] (5.0): the SUBACK shows the
    # granted QoS; this broker's maximum is 2, so it grants what was asked.
    assert [code.value for code in granted] == [sub_qos]

    publisher.publish(topic, payload, qos=pub_qos)
    message = subscriber.expect(f"the QoS {pub_qos} message")
    assert message.topic == topic
    assert message.payload == payload
    # [MQTT-3.8.4-8] (5.0), and section 3.8.4 of 3.1.1: delivered at the
    # minimum of the published QoS and the granted QoS.
    assert message.qos == min(pub_qos, sub_qos)
    # [MQTT-3.3.1-9] (3.1.1) / [MQTT-3.3.1-12] (5.0): not retained, so the
    # RETAIN flag is 0 on an established subscription.
    assert message.retain is False
