"""TLS, mutual TLS, WebSocket, WebSocket over TLS and the PROXY protocol with
real independent clients: paho-mqtt, Debian's mosquitto_pub/mosquitto_sub,
openssl s_client and HAProxy in front of the broker. Certificates come from
`strata ca`, so its three commands are tested end to end here too.

scripts/test installs mosquitto-clients and haproxy; openssl ships with the
machine.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from conftest import STRATA_BIN, strata_serve
from mqttprobe import PROTOCOLS, Probe, unique

TIMEOUT = 10.0
LISTENING = re.compile(r"^listening on (?:(tls|ws|wss)://)?127\.0\.0\.1:(\d+)(/\S*)?$")


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    """A CA, a server certificate for localhost and 127.0.0.1, and a client
    certificate for "alice", made with `strata ca` as the README says."""
    d = tmp_path_factory.mktemp("pki") / "ca"

    def strata_ca(*args: str) -> list[str]:
        out = subprocess.run(
            [str(STRATA_BIN), "ca", *args], capture_output=True, text=True, timeout=TIMEOUT
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    assert strata_ca("init", str(d)) == [str(d / "ca.pem"), str(d / "ca.key")]
    strata_ca("issue", "--ca", str(d), "--server", "localhost,127.0.0.1")
    strata_ca("issue", "--ca", str(d), "--client", "alice")
    # A second init must not overwrite the CA.
    again = subprocess.run(
        [str(STRATA_BIN), "ca", "init", str(d)], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert again.returncode != 0 and "ca" in again.stderr
    return Pki(d / "ca.pem", d / "localhost.pem", d / "localhost.key", d / "alice.pem", d / "alice.key")


@dataclass
class Served:
    """A running broker: its listeners' ports by kind ("tcp", "tls", "ws",
    "wss", in the order of the file) and its log."""

    ports: dict[str, list[int]]
    log: Path

    def port(self, kind: str, index: int = 0) -> int:
        return self.ports[kind][index]


@contextlib.contextmanager
def serving(directory: Path, config: str):
    """`strata serve -v` with this configuration; yields a Served."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "strata.toml"
    path.write_text(config)
    log = directory / "strata.stderr"
    args = ["--in-memory", "-v", "--config", str(path)]
    with strata_serve(args, log, listeners=config.count("[[listener]]")) as listening:
        ports: dict[str, list[int]] = {}
        for line in listening:
            m = LISTENING.match(line)
            assert m, f"not a listener on 127.0.0.1: {line}"
            ports.setdefault(m.group(1) or "tcp", []).append(int(m.group(2)))
        yield Served(ports, log)


def tls_listener(pki: Pki, transport: str = "tls", extra: str = "") -> str:
    return f"""
[[listener]]
bind = "127.0.0.1:0"
transport = "{transport}"
certfile = "{pki.server_cert}"
keyfile = "{pki.server_key}"
{extra}
"""


PLAIN = '\n[[listener]]\nbind = "127.0.0.1:0"\n'


def roundtrip(sender: Probe, receiver: Probe, qos: int = 1) -> None:
    topic = unique("transports")
    receiver.subscribe(topic, qos)
    sender.publish(topic, b"across transports", qos=qos)
    got = receiver.expect()
    assert (got.topic, got.payload) == (topic, b"across transports")


@pytest.mark.parametrize("version", sorted(PROTOCOLS))
def test_paho_over_tls_and_websockets_talks_to_tcp(tmp_path, pki, version):
    protocol = PROTOCOLS[version]
    config = PLAIN + tls_listener(pki) + '\n[[listener]]\nbind = "127.0.0.1:0"\ntransport = "ws"\n'
    config += tls_listener(pki, "wss", 'path = "/mqtt/wss"')
    with serving(tmp_path, config) as s:
        tls = {"ca_certs": str(pki.ca)}
        clients = [
            Probe(s.port("tcp"), unique("tcp"), protocol),
            Probe(s.port("tls"), unique("tls"), protocol, host="localhost", tls=tls),
            Probe(s.port("ws"), unique("ws"), protocol, transport="websockets"),
            Probe(
                s.port("wss"),
                unique("wss"),
                protocol,
                host="localhost",
                transport="websockets",
                ws_path="/mqtt/wss",
                tls=tls,
            ),
        ]
        try:
            for c in clients:
                c.connect()
            plain = clients[0]
            for other in clients[1:]:
                roundtrip(plain, other)
                roundtrip(other, plain)
        finally:
            for c in clients:
                c.close()


def test_paho_mutual_tls_needs_a_certificate(tmp_path, pki):
    extra = f'cafile = "{pki.ca}"\nrequire_certificate = true\nuse_identity_as_username = true'
    with serving(tmp_path, tls_listener(pki, extra=extra)) as s:
        port = s.port("tls")
        good = Probe(
            port,
            unique("alice"),
            mqtt.MQTTv311,
            host="localhost",
            tls={"ca_certs": str(pki.ca), "certfile": str(pki.client_cert), "keyfile": str(pki.client_key)},
        )
        try:
            good.connect()
            roundtrip(good, good)
        finally:
            good.close()
        # The log names the client by its certificate.
        deadline = time.monotonic() + TIMEOUT
        while 'username=Some("alice")' not in s.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert 'username=Some("alice")' in s.log.read_text()
        # Without a certificate, or with one from another CA, the handshake
        # is refused; the log names the stranger's certificate and why.
        other = tmp_path / "other-ca"
        for args in (["init", str(other)], ["issue", "--ca", str(other), "--client", "eve"]):
            assert subprocess.run([str(STRATA_BIN), "ca", *args], capture_output=True, timeout=TIMEOUT).returncode == 0
        for cert in (None, (other / "eve.pem", other / "eve.key")):
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=unique("refused"))
            if cert is None:
                client.tls_set(ca_certs=str(pki.ca))
            else:
                client.tls_set(ca_certs=str(pki.ca), certfile=str(cert[0]), keyfile=str(cert[1]))
            with pytest.raises((ssl.SSLError, OSError)):
                client.connect("localhost", port)
                # TLS 1.3: the refusal may come with the first read.
                for _ in range(100):
                    rc = client.loop(timeout=0.1)
                    if rc != mqtt.MQTT_ERR_SUCCESS:
                        raise OSError(f"connection lost: {rc}")
        deadline = time.monotonic() + TIMEOUT
        while "client certificate refused" not in s.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        refusal = next(l for l in s.log.read_text().splitlines() if "client certificate refused" in l)
        assert "subject=eve" in refusal and "reason=invalid peer certificate" in refusal, refusal


def mosquitto(tool: str) -> str:
    path = shutil.which(tool)
    assert path, f"{tool} not found: scripts/test installs mosquitto-clients"
    return path


def test_mosquitto_clients_over_tls_and_mutual_tls(tmp_path, pki):
    extra = f'cafile = "{pki.ca}"\nrequire_certificate = true'
    with serving(tmp_path, tls_listener(pki) + tls_listener(pki, extra=extra)) as s:
        for port, auth in [
            (s.port("tls", 0), []),
            (s.port("tls", 1), ["--cert", str(pki.client_cert), "--key", str(pki.client_key)]),
        ]:
            common = ["-h", "localhost", "-p", str(port), "--cafile", str(pki.ca), *auth]
            topic = unique("mosq")
            sub = subprocess.Popen(
                [mosquitto("mosquitto_sub"), *common, "-t", topic, "-C", "1", "-W", "10", "-q", "1"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                # Publish until the subscriber, which may not have
                # subscribed yet, has its message.
                deadline = time.monotonic() + TIMEOUT
                while sub.poll() is None and time.monotonic() < deadline:
                    pub = subprocess.run(
                        [mosquitto("mosquitto_pub"), *common, "-t", topic, "-m", "hello over tls", "-q", "1"],
                        capture_output=True,
                        text=True,
                        timeout=TIMEOUT,
                    )
                    assert pub.returncode == 0, pub.stderr
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        sub.wait(timeout=0.2)
                out, err = sub.communicate(timeout=TIMEOUT)
            finally:
                if sub.poll() is None:
                    sub.kill()
            assert out.strip() == "hello over tls", err
        # No certificate on the mutual-TLS listener: refused.
        refused = subprocess.run(
            [mosquitto("mosquitto_pub"), "-h", "localhost", "-p", str(s.port("tls", 1)),
             "--cafile", str(pki.ca), "-t", "x", "-m", "y"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert refused.returncode != 0


def s_client(port: int, pki: Pki, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
         "-CAfile", str(pki.ca), "-verify_return_error", *args],
        input="",
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_openssl_sees_the_versions_and_alpn_offered(tmp_path, pki):
    config = tls_listener(pki) + tls_listener(pki, extra='tls_version = "1.3"')
    with serving(tmp_path, config) as s:
        both, only13 = s.port("tls", 0), s.port("tls", 1)
        for version, name in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")]:
            out = s_client(both, pki, version, "-alpn", "mqtt")
            assert out.returncode == 0, out.stderr
            assert re.search(rf"Protocol\s*:\s*{name}|New, {name}", out.stdout), out.stdout
            assert "ALPN protocol: mqtt" in out.stdout, out.stdout
            assert "Verify return code: 0 (ok)" in out.stdout
        refused = s_client(only13, pki, "-tls1_2")
        assert refused.returncode != 0
        assert s_client(only13, pki, "-tls1_3").returncode == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("send_proxy", ["send-proxy", "send-proxy-v2"])
def test_haproxy_in_front_passes_the_clients_address(tmp_path, send_proxy):
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    assert Path(haproxy).exists(), "haproxy not found: scripts/test installs it"
    config = '\n[[listener]]\nbind = "127.0.0.1:0"\nproxy_protocol = true\nallow_anonymous = true\n'
    with serving(tmp_path, config) as s:
        front = free_port()
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(
            f"""
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend mqtt
    bind 127.0.0.1:{front}
    default_backend strata
backend strata
    server s1 127.0.0.1:{s.port("tcp")} {send_proxy}
"""
        )
        proxy = subprocess.Popen([haproxy, "-db", "-f", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            # Wait for HAProxy's port.
            deadline = time.monotonic() + TIMEOUT
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", front), timeout=1):
                    break
                assert time.monotonic() < deadline and proxy.poll() is None, "haproxy did not start"
                time.sleep(0.05)
            probe = Probe(front, unique("proxied"), mqtt.MQTTv311)
            try:
                probe.connect()
                local = probe.client.socket().getsockname()
                roundtrip(probe, probe)
            finally:
                probe.close()
            # The broker saw the client's own port, not HAProxy's.
            want = f"peer=Some(127.0.0.1:{local[1]})"
            deadline = time.monotonic() + TIMEOUT
            while want not in s.log.read_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert want in s.log.read_text(), s.log.read_text()[-2000:]
        finally:
            proxy.send_signal(signal.SIGTERM)
            try:
                proxy.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                proxy.kill()
