"""The admin HTTP listener of a real `strata serve`: its start-up line,
Prometheus's own `promtool check metrics` on real output, and `strata admin`
(key create, status, metrics) against it."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request

from conftest import STRATA_BIN, strata_serve
from mqttprobe import PROTOCOLS, Probe, unique


def strata_admin(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(STRATA_BIN), "admin", *args], capture_output=True, text=True, timeout=30)


def serve_args(*extra: str) -> list[str]:
    return ["--listen", "127.0.0.1:0", "--in-memory", "--admin-listen", "127.0.0.1:0", "-q", *extra]


def test_promtool_accepts_the_metrics(tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: scripts/test installs Debian's prometheus"
    admin: list[str] = []
    with strata_serve(serve_args(), tmp_path / "stderr", admin=admin) as listening:
        assert admin[0].startswith("http://127.0.0.1:"), admin
        port = int(listening[0].rsplit(":", 1)[1])
        # Some traffic, so that the counters are not all zero.
        p = Probe(port, unique("prom"), PROTOCOLS["v5"])
        p.connect()
        p.subscribe("prom/#", 1)
        p.publish("prom/x", b"m", qos=1)
        p.expect()
        text = urllib.request.urlopen(f"{admin[0]}/metrics", timeout=10).read().decode()
        p.close()
    assert "strata_messages_received_total 1" in text, text
    assert "strata_connections 1" in text, text
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    # promtool lints as well as parses: no complaint at all.
    assert check.returncode == 0 and not (check.stdout + check.stderr).strip(), check.stdout + check.stderr


def test_strata_admin_key_create_status_and_metrics(tmp_path):
    keys = tmp_path / "admin.keys"
    created = strata_admin("key", "create", "--file", str(keys), "--comment", "ci")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("strata_")
    assert key not in keys.read_text()
    assert keys.stat().st_mode & 0o777 == 0o600
    config = tmp_path / "strata.toml"
    config.write_text(f'[admin]\napi_key_file = "{keys}"\n')
    admin: list[str] = []
    with strata_serve(serve_args("--config", str(config)), tmp_path / "stderr", admin=admin):
        url = admin[0]
        # The API wants the key; the health and metrics endpoints do not.
        try:
            urllib.request.urlopen(f"{url}/api/v1/status", timeout=10)
            raise AssertionError("the API answered without a key")
        except urllib.error.HTTPError as e:
            assert e.code == 401
            assert json.loads(e.read())["code"] == "unauthorized"
        assert urllib.request.urlopen(f"{url}/healthz", timeout=10).read() == b"ok\n"
        refused = strata_admin("--url", url, "status")
        assert refused.returncode == 1 and "401" in refused.stderr, refused.stderr
        status = strata_admin("--url", url, "--key", key, "--json", "status")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["clients_connected"] == 0
        metrics = strata_admin("--url", url, "metrics")
        assert metrics.returncode == 0 and "strata_uptime_seconds" in metrics.stdout


def test_strata_admin_drives_the_api(tmp_path):
    admin: list[str] = []
    with strata_serve(serve_args(), tmp_path / "stderr", admin=admin) as listening:
        url = admin[0]
        port = int(listening[0].rsplit(":", 1)[1])
        watcher = Probe(port, unique("watcher"), PROTOCOLS["v5"])
        watcher.connect()
        watcher.subscribe("adm/#", 1)
        victim = Probe(port, "victim-1", PROTOCOLS["v5"])
        victim.connect()

        def admin_json(*args: str):
            out = strata_admin("--url", url, "--json", *args)
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout) if out.stdout.strip() else None

        # For a person: a table.
        table = strata_admin("--url", url, "clients", "--filter", "victim")
        assert table.returncode == 0, table.stderr
        assert table.stdout.splitlines()[0].split() == ["CLIENT_ID", "CONNECTED"], table.stdout
        assert table.stdout.splitlines()[1].split() == ["victim-1", "true"], table.stdout
        assert "1 in all" in table.stdout
        status_lines = strata_admin("--url", url, "status").stdout
        assert "clients_connected: 2" in status_lines, status_lines
        clients = admin_json("clients", "--filter", "victim", "--connected", "true")
        assert clients["data"] == [{"client_id": "victim-1", "connected": True}], clients
        assert admin_json("client", "victim-1")["connected"] is True
        # Publish through the API: the watcher gets it; retained, it is listed.
        assert admin_json("publish", "-t", "adm/temp", "-m", "21.5", "-q", "1", "-r")["delivered"] == 1
        got = watcher.expect()
        assert (got.topic, got.payload) == ("adm/temp", b"21.5")
        listed = admin_json("retained", "--filter", "adm/#")
        assert [m["topic"] for m in listed["data"]] == ["adm/temp"]
        assert admin_json("retained", "get", "adm/temp")["payload"] == "21.5"
        admin_json("retained", "delete", "adm/temp")
        assert admin_json("retained", "--filter", "adm/#")["meta"]["count"] == 0
        # Kick: paho hears DISCONNECT 0x98.
        admin_json("kick", "victim-1")
        reason = victim._disconnects.get(timeout=10)
        assert "Administrative action" in str(reason), reason
        gone = strata_admin("--url", url, "kick", "victim-1")
        assert gone.returncode == 1 and "404" in gone.stderr
        assert admin_json("reload")["data"] == []
        watcher.close()
        victim.close()
