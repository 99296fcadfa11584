"""Fixtures: a real `strata serve` process per test and paho-mqtt probes on it.

The binary must be built first (`cargo build -p strata`, as scripts/test does);
STRATA_BIN overrides its path.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from mqttprobe import PROTOCOLS, Probe, unique
from rawmqtt import V311, RawClient

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


@contextlib.contextmanager
def strata_serve(
    args: list[str],
    stderr_path: Path,
    listeners: int = 1,
    admin: list[str] | None = None,
    process: list | None = None,
):
    """Runs `strata serve ARGS` until it has printed `listeners` lines of
    "listening on ..." (and, given an `admin` list, its "admin listening on
    URL" line, whose URL goes into the list) and yields those lines; stops
    it afterwards and fails the test if it crashed, or never listened.
    Given a `process` list, the Popen goes into it (for signals)."""
    if not STRATA_BIN.is_file():
        pytest.fail(f"{STRATA_BIN} not found: run `cargo build -p strata` first")
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            # No admin listener unless a test asks: brokers run side by side.
            [str(STRATA_BIN), "serve", *([] if "--admin-listen" in args else ["--admin-listen", "off"]), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    if process is not None:
        process.append(proc)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()

    def stderr_text() -> str:
        return stderr_path.read_text(errors="replace")

    try:
        listening: list[str] = []
        while len(listening) < listeners or (admin is not None and not admin):
            try:
                line = lines.get(timeout=STARTUP_TIMEOUT)
            except queue.Empty:
                pytest.fail(f"no 'listening on' line within {STARTUP_TIMEOUT} s; stderr:\n{stderr_text()}")
            if line is None:
                pytest.fail(f"strata exited before listening (code {proc.wait()}); stderr:\n{stderr_text()}")
            if line.startswith("listening on "):
                listening.append(line)
            elif admin is not None and line.startswith("admin listening on "):
                admin.append(line.removeprefix("admin listening on "))
        yield listening
        crashed = proc.poll()
    finally:
        _stop(proc)
    if crashed is not None:
        pytest.fail(f"strata exited during the test (code {crashed}); stderr:\n{stderr_text()}")


@contextlib.contextmanager
def _strata(directory: Path, config: str | None = None):
    """Runs `strata serve` on a free port (with `config` as its TOML file when
    given) and yields the port; fails the test if the broker crashed."""
    directory.mkdir(parents=True, exist_ok=True)
    args = ["--listen", "127.0.0.1:0", "-q"]
    if config is None or "data_dir" not in config:
        # Nothing on disk unless the test asks: brokers run side by side.
        args.append("--in-memory")
    if config is not None:
        config_path = directory / "strata.toml"
        config_path.write_text(config)
        args += ["--config", str(config_path)]
    with strata_serve(args, directory / "strata.stderr") as listening:
        match = LISTENING.match(listening[0])
        if not match:
            pytest.fail(f"not a TCP listener on 127.0.0.1: {listening[0]}")
        yield int(match.group(1))


@pytest.fixture
def broker(tmp_path):
    """Starts a fresh broker on a free port and yields the port."""
    with _strata(tmp_path) as port:
        yield port


@pytest.fixture
def configured_broker(tmp_path):
    """A factory: `configured_broker(toml_text)` starts another broker with
    that configuration file and returns its port; stopped at teardown."""
    with contextlib.ExitStack() as stack:
        count = 0

        def start(config: str) -> int:
            nonlocal count
            count += 1
            return stack.enter_context(_strata(tmp_path / f"configured-{count}", config))

        yield start


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


@pytest.fixture
def raw(broker):
    """A factory of raw-socket clients (rawmqtt.RawClient) on the broker:
    `raw(version)` or `raw(version, port=...)`; all closed at teardown."""
    made: list[RawClient] = []

    def make(version: int = V311, port: int | None = None) -> RawClient:
        client = RawClient(port or broker, version)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
