"""Fixtures: a real `strata serve` process per test and paho-mqtt probes on it.

The binary must be built first (`cargo build -p strata`, as scripts/test does);
STRATA_BIN overrides its path.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from mqttprobe import PROTOCOLS, Probe, unique

REPO = Path(__file__).resolve().parents[2]
STRATA_BIN = Path(os.environ.get("STRATA_BIN", REPO / "target" / "debug" / "strata"))
STARTUP_TIMEOUT = 15.0
SHUTDOWN_TIMEOUT = 10.0
LISTENING = re.compile(r"^listening on 127\.0\.0\.1:(\d+)$")


def _pump(stream, lines: queue.Queue) -> None:
    """Forwards the broker's stdout lines; None marks its end."""
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


@pytest.fixture
def broker(tmp_path):
    """Starts a fresh broker on a free port and yields the port."""
    if not STRATA_BIN.is_file():
        pytest.fail(f"{STRATA_BIN} not found: run `cargo build -p strata` first")
    stderr_path = tmp_path / "strata.stderr"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [str(STRATA_BIN), "serve", "--listen", "127.0.0.1:0", "-q"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()

    def stderr_text() -> str:
        return stderr_path.read_text(errors="replace")

    try:
        port = None
        while port is None:
            try:
                line = lines.get(timeout=STARTUP_TIMEOUT)
            except queue.Empty:
                pytest.fail(f"no 'listening on' line within {STARTUP_TIMEOUT} s; stderr:\n{stderr_text()}")
            if line is None:
                pytest.fail(f"strata exited before listening (code {proc.wait()}); stderr:\n{stderr_text()}")
            match = LISTENING.match(line)
            if match:
                port = int(match.group(1))
        yield port
        crashed = proc.poll()
    finally:
        _stop(proc)
    if crashed is not None:
        pytest.fail(f"strata exited during the test (code {crashed}); stderr:\n{stderr_text()}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=SHUTDOWN_TIMEOUT)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture(params=sorted(PROTOCOLS), ids=lambda name: name)
def protocol(request) -> int:
    """Runs a test once for MQTT 3.1.1 and once for MQTT 5.0."""
    return PROTOCOLS[request.param]


@pytest.fixture
def probes(broker):
    """A factory of unconnected probes on the broker; all are closed at teardown."""
    made: list[Probe] = []

    def make(protocol: int, name: str = "paho", client_id: str | None = None, **kwargs) -> Probe:
        probe = Probe(broker, client_id or unique(name), protocol, **kwargs)
        made.append(probe)
        return probe

    yield make
    for probe in made:
        try:
            probe.close()
        except Exception:  # noqa: BLE001 - teardown must reach every probe
            pass
