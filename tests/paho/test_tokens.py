"""Logins from independent clients: JSON Web Tokens minted with PyJWT (HS256
with a secret file, RS256 with a PEM public key and with a JWKS file) in
paho-mqtt's password field, and mosquitto_pub/mosquitto_sub with -u/-P
against a password file written by Debian's mosquitto_passwd."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import time
from pathlib import Path

import jwt
import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mqttprobe import PROTOCOLS, TIMEOUT, Probe, unique

SECRET = b"the HMAC secret these tests share, longer than 32 bytes"


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def b64url(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwks(key, kid: str) -> str:
    numbers = key.public_key().public_numbers()
    return json.dumps({"keys": [{"kty": "RSA", "kid": kid, "alg": "RS256", "n": b64url(numbers.n), "e": b64url(numbers.e)}]})


@pytest.fixture(params=sorted(PROTOCOLS), ids=lambda n: n)
def protocol(request) -> int:
    return PROTOCOLS[request.param]


@pytest.fixture
def keys(tmp_path):
    key = rsa_key()
    (tmp_path / "jwt.secret").write_bytes(SECRET + b"\n")
    (tmp_path / "jwt.pem").write_bytes(public_pem(key))
    return key


def claims(sub: str, cid: str, ttl: int = 600, **more) -> dict:
    return {"sub": sub, "cid": cid, "exp": int(time.time()) + ttl, **more}


def login(port: int, protocol: int, client_id: str, username: str | None, password: str) -> Probe:
    return Probe(port, client_id, protocol, username=username, password=password)


def refused(port: int, protocol: int, client_id: str, username: str | None, password: str) -> str:
    """Why the connection was refused, as paho names the CONNACK's code."""
    probe = login(port, protocol, client_id, username, password)
    with pytest.raises(AssertionError) as refusal:
        probe.connect()
    probe.close()
    return str(refusal.value)


def test_pyjwt_hs256_and_rs256_tokens(configured_broker, tmp_path, keys, protocol):
    port = configured_broker(
        "[auth.jwt]\n"
        f'secret_file = "{tmp_path / "jwt.secret"}"\n'
        f'public_key_file = "{tmp_path / "jwt.pem"}"\n'
        'algorithms = ["HS256", "RS256"]\n'
        'clientid_claim = "cid"\n'
        'acl_claim = "acl"\n'
    )
    acl = {"pub": ["t/{cid}/#"], "sub": ["t/#"]}
    cid_hs, cid_rs = unique("hs"), unique("rs")
    hs = jwt.encode(claims("dev", cid_hs, acl={k: [f.format(cid=cid_hs) for f in v] for k, v in acl.items()}), SECRET, "HS256")
    rs = jwt.encode(claims("dev", cid_rs, acl={k: [f.format(cid=cid_rs) for f in v] for k, v in acl.items()}), keys, "RS256")
    reader = login(port, protocol, cid_rs, "dev", rs)
    reader.connect()
    assert reader.subscribe("t/#", 1)[0].value < 0x80
    writer = login(port, protocol, cid_hs, "dev", hs)
    writer.connect()
    # Within its token's ACL, and outside it.
    writer.publish(f"t/{cid_hs}/x", b"in", qos=1)
    writer.publish(f"t/{cid_rs}/x", b"out", qos=1)
    writer.publish(f"t/{cid_hs}/y", b"in again", qos=1)
    got = [reader.expect(), reader.expect()]
    assert [(m.topic, m.payload) for m in got] == [(f"t/{cid_hs}/x", b"in"), (f"t/{cid_hs}/y", b"in again")]
    reader.assert_inbox_empty()
    writer.close()
    reader.close()


def test_bad_tokens_are_refused(configured_broker, tmp_path, keys, protocol):
    port = configured_broker(
        "[auth.jwt]\n"
        f'secret_file = "{tmp_path / "jwt.secret"}"\n'
        f'public_key_file = "{tmp_path / "jwt.pem"}"\n'
        'algorithms = ["HS256", "RS256"]\n'
    )
    cid = unique("bad")
    bad = {
        "another key": jwt.encode(claims("dev", cid), rsa_key(), "RS256"),
        "another secret": jwt.encode(claims("dev", cid), b"x" * 40, "HS256"),
        "expired": jwt.encode(claims("dev", cid, ttl=-10), SECRET, "HS256"),
        "not yet valid": jwt.encode(claims("dev", cid, nbf=int(time.time()) + 600), SECRET, "HS256"),
        "alg none": jwt.encode(claims("dev", cid), None, "none"),
        "HS512, not listed": jwt.encode(claims("dev", cid), SECRET * 2, "HS512"),
    }
    # The public key used as an HMAC secret (algorithm confusion), by hand:
    # PyJWT refuses to make one.
    head = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims("dev", cid)).encode()).rstrip(b"=")
    sig = hmac.new(public_pem(keys), head + b"." + body, hashlib.sha256).digest()
    bad["public key as HMAC secret"] = (head + b"." + body + b"." + base64.urlsafe_b64encode(sig).rstrip(b"=")).decode()
    for why, token in bad.items():
        reason = refused(port, protocol, cid, "dev", token)
        assert "Bad user name or password" in reason or "bad user name or password" in reason.lower(), (why, reason)
    good = login(port, protocol, cid, "dev", jwt.encode(claims("dev", cid), SECRET, "HS256"))
    good.connect()
    good.close()


def test_jwks_keys_chosen_by_kid(configured_broker, tmp_path, protocol):
    k1, k2 = rsa_key(), rsa_key()
    doc = json.loads(jwks(k1, "one"))
    doc["keys"] += json.loads(jwks(k2, "two"))["keys"]
    (tmp_path / "jwks.json").write_text(json.dumps(doc))
    port = configured_broker(f'[auth.jwt]\njwks_file = "{tmp_path / "jwks.json"}"\n')
    for key, kid in ((k1, "one"), (k2, "two")):
        token = jwt.encode(claims("u", "x"), key, "RS256", headers={"kid": kid})
        probe = login(port, protocol, unique(kid), "u", token)
        probe.connect()
        probe.close()
    wrong_kid = jwt.encode(claims("u", "x"), k1, "RS256", headers={"kid": "two"})
    assert "user name or password" in refused(port, protocol, unique("k"), "u", wrong_kid).lower()


def test_a_token_that_expires_ends_the_connection(configured_broker, tmp_path, keys):
    port = configured_broker(f'[auth.jwt]\nsecret_file = "{tmp_path / "jwt.secret"}"\n')
    probe = login(port, mqtt.MQTTv5, unique("exp"), "u", jwt.encode(claims("u", "x", ttl=2), SECRET, "HS256"))
    probe.connect()
    reason = probe._disconnects.get(timeout=TIMEOUT)
    assert "Not authorized" in str(reason), reason
    probe.close()


def test_mosquitto_clients_log_in_with_a_password(configured_broker, tmp_path):
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwords), "alice", "alice-pw"], check=True, timeout=TIMEOUT)
    port = configured_broker(f'[auth]\npassword_file = "{passwords}"\n')
    topic = unique("login")
    sub = subprocess.Popen(
        ["mosquitto_sub", "-p", str(port), "-u", "alice", "-P", "alice-pw", "-t", topic, "-C", "1", "-W", "10", "-q", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Publish until the subscriber (connecting meanwhile) has the message:
    # retained, so the order of the two does not matter.
    pub = subprocess.run(
        ["mosquitto_pub", "-p", str(port), "-u", "alice", "-P", "alice-pw", "-t", topic, "-m", "hello", "-r", "-q", "1"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert pub.returncode == 0, pub.stderr
    out, err = sub.communicate(timeout=TIMEOUT + 5)
    assert sub.returncode == 0, err
    assert out.strip() == "hello"
    wrong = subprocess.run(
        ["mosquitto_pub", "-p", str(port), "-u", "alice", "-P", "nope", "-t", topic, "-m", "x"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert wrong.returncode != 0
    assert "bad user name or password" in wrong.stderr.lower(), wrong.stderr


def test_jwt_keys_reload_on_sighup(tmp_path):
    from test_auth import poll, strata_process

    secret = tmp_path / "jwt.secret"
    secret.write_bytes(SECRET)
    with strata_process(tmp_path / "strata", f'[auth.jwt]\nsecret_file = "{secret}"\n') as s:
        old = jwt.encode(claims("u", "x"), SECRET, "HS256")
        login(s.port, mqtt.MQTTv5, unique("old"), "u", old).connect()
        # The key is rotated: tokens signed with the old one stop working.
        rotated = b"a new secret, rotated after the old one leaked!"
        secret.write_bytes(rotated)
        s.hangup()

        def old_refused() -> bool:
            probe = login(s.port, mqtt.MQTTv5, unique("o"), "u", old)
            try:
                probe.connect()
            except AssertionError as refusal:
                return "user name or password" in str(refusal).lower()
            finally:
                probe.close()
            return False

        poll("the old key is still trusted", old_refused)
        login(s.port, mqtt.MQTTv5, unique("new"), "u", jwt.encode(claims("u", "x"), rotated, "HS256")).connect()
