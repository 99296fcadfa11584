"""MQTT 5 enhanced authentication with SCRAM-SHA-256 and SCRAM-SHA-512,
driven by Python's `scramp` client over raw AUTH packets [MQTT-4.12.0-1 ..
MQTT-4.12.1-2], against credentials `strata passwd --scram` wrote."""

from __future__ import annotations

import subprocess

import pytest
from scramp import ScramClient

from conftest import STRATA_BIN
from mqttprobe import unique
import rawmqtt
from rawmqtt import AUTH, CONNACK, DISCONNECT, V5, V311, Closed, RawClient, encode_properties, packet

MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-512"]


def auth(reason: int, method: str, data: bytes) -> bytes:
    return packet(AUTH, 0, bytes([reason]) + encode_properties({"AuthenticationMethod": method, "AuthenticationData": data}))


@pytest.fixture
def scram_broker(tmp_path, configured_broker):
    path = tmp_path / "scram"
    for i, (user, password) in enumerate([("alice", "wonderland"), ("bob", "builder")]):
        args = [str(STRATA_BIN), "passwd", "--scram", *(["-c"] if i == 0 else []), "-b", str(path), user, password]
        subprocess.run(args, check=True, capture_output=True, timeout=30)
    assert len(path.read_text().splitlines()) == 4, "two mechanisms per user"
    return configured_broker(f'[auth]\nscram_file = "{path}"\n')


def start(port: int, mech: str, user: str, password: str):
    """CONNECT with the client's first message: the client, the scramp
    client and the server's AUTH."""
    scram = ScramClient([mech], user, password)
    c = RawClient(port, V5)
    first = scram.get_client_first().encode()
    props = {"AuthenticationMethod": mech, "AuthenticationData": first}
    c.send(rawmqtt.connect(unique("scram"), version=V5, properties=props))
    return c, scram, c.read()


@pytest.mark.parametrize("mech", MECHANISMS)
def test_scram_login(scram_broker, mech):
    c, scram, challenge = start(scram_broker, mech, "alice", "wonderland")
    # [MQTT-4.12.0-2]: AUTH 0x18 Continue authentication, same method.
    assert challenge.type == AUTH and challenge.reason_code == 0x18, challenge
    assert challenge.properties["AuthenticationMethod"] == mech
    scram.set_server_first(challenge.properties["AuthenticationData"].decode())
    c.send(auth(0x18, mech, scram.get_client_final().encode()))
    connack = c.expect(CONNACK)
    assert connack.reason_code == 0, connack
    # The CONNACK repeats the method [MQTT-4.12.0-5] and proves the server
    # knew the password: scramp checks the server signature.
    assert connack.properties["AuthenticationMethod"] == mech
    scram.set_server_final(connack.properties["AuthenticationData"].decode())

    # Re-authentication [MQTT-4.12.1-1]: AUTH 0x19, then the same exchange,
    # ending in AUTH 0x00 Success.
    again = ScramClient([mech], "alice", "wonderland")
    c.send(auth(0x19, mech, again.get_client_first().encode()))
    challenge = c.expect(AUTH)
    assert challenge.reason_code == 0x18
    again.set_server_first(challenge.properties["AuthenticationData"].decode())
    c.send(auth(0x18, mech, again.get_client_final().encode()))
    done = c.expect(AUTH)
    assert done.reason_code == 0x00, done
    again.set_server_final(done.properties["AuthenticationData"].decode())


@pytest.mark.parametrize("mech", MECHANISMS)
def test_wrong_password_unknown_user_and_replay(scram_broker, mech):
    for user, password in [("alice", "wrong"), ("mallory", "wonderland")]:
        c, scram, challenge = start(scram_broker, mech, user, password)
        assert challenge.type == AUTH and challenge.reason_code == 0x18
        scram.set_server_first(challenge.properties["AuthenticationData"].decode())
        c.send(auth(0x18, mech, scram.get_client_final().encode()))
        # [MQTT-4.12.0-4]: refused with a CONNACK >= 0x80, then closed.
        assert c.expect(CONNACK).reason_code == 0x86
        with pytest.raises(Closed):
            c.read()
    # A client-final of one exchange replayed in another (its nonce).
    c1, s1, ch1 = start(scram_broker, mech, "alice", "wonderland")
    s1.set_server_first(ch1.properties["AuthenticationData"].decode())
    stale = s1.get_client_final().encode()
    c1.sock.close()
    c2, _, ch2 = start(scram_broker, mech, "alice", "wonderland")
    assert ch2.reason_code == 0x18
    c2.send(auth(0x18, mech, stale))
    assert c2.expect(CONNACK).reason_code == 0x86


def test_a_failed_reauthentication_disconnects(scram_broker):
    mech = "SCRAM-SHA-256"
    c, scram, challenge = start(scram_broker, mech, "alice", "wonderland")
    scram.set_server_first(challenge.properties["AuthenticationData"].decode())
    c.send(auth(0x18, mech, scram.get_client_final().encode()))
    assert c.expect(CONNACK).reason_code == 0
    # Re-authenticating as bob on alice's connection is refused, as is a
    # wrong password: DISCONNECT with the code, then close [MQTT-4.12.1-2].
    bob = ScramClient([mech], "bob", "builder")
    c.send(auth(0x19, mech, bob.get_client_first().encode()))
    challenge = c.expect(AUTH)
    bob.set_server_first(challenge.properties["AuthenticationData"].decode())
    c.send(auth(0x18, mech, bob.get_client_final().encode()))
    d = c.expect(DISCONNECT)
    assert d.reason_code >= 0x80, d
    with pytest.raises(Closed):
        c.read()


def test_unknown_method_and_3_1_1(scram_broker):
    # [MQTT-4.12.0-1]: a method the server does not support: 0x8C, closed.
    c = RawClient(scram_broker, V5)
    props = {"AuthenticationMethod": "SCRAM-SHA-1", "AuthenticationData": b"n,,n=alice,r=abc"}
    assert c.connect(unique("m"), properties=props).reason_code == 0x8C
    # A 3.1.1 client has no AUTH packet: with only SCRAM configured its
    # user name cannot be proven (4: bad user name or password), and an
    # AUTH packet closes it.
    old = RawClient(scram_broker, V311)
    assert old.connect(unique("v3"), username="alice", password=b"wonderland").reason_code == 4
    old2 = RawClient(scram_broker, V311)
    old2.send(packet(AUTH, 0, b""))
    with pytest.raises(Closed):
        old2.read()


def login(port: int, mech: str, user: str, password: str) -> int:
    """The CONNACK code of a whole SCRAM login."""
    c, scram, challenge = start(port, mech, user, password)
    if challenge.type != AUTH:
        return challenge.reason_code
    scram.set_server_first(challenge.properties["AuthenticationData"].decode())
    c.send(auth(0x18, mech, scram.get_client_final().encode()))
    code = c.expect(CONNACK).reason_code
    c.sock.close()
    return code


def test_scram_credentials_reload_on_sighup(tmp_path):
    from test_auth import poll, strata_process

    path = tmp_path / "scram"
    passwd = [str(STRATA_BIN), "passwd", "--scram", "-b", str(path)]
    subprocess.run([*passwd[:3], "-c", *passwd[3:], "alice", "wonderland"], check=True, timeout=30)
    with strata_process(tmp_path / "strata", f'[auth]\nscram_file = "{path}"\n') as s:
        assert login(s.port, "SCRAM-SHA-256", "carol", "singer") == 0x86
        subprocess.run([*passwd, "carol", "singer"], check=True, timeout=30)
        s.hangup()
        poll("carol's credentials are not reloaded", lambda: login(s.port, "SCRAM-SHA-256", "carol", "singer") == 0)
        assert login(s.port, "SCRAM-SHA-512", "alice", "wonderland") == 0
