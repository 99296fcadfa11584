"""Debian's Mosquitto 2.0 broker and mosquitto_passwd beside Strata, as a
reference: the auth tests start one with a generated configuration and
compare what it decides with what Strata decides.

Install with `apt-get install mosquitto` (the broker is /usr/sbin/mosquitto,
mosquitto_passwd comes with it).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

TIMEOUT = 10.0

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
INSTALLED = Path(MOSQUITTO).is_file() and Path(MOSQUITTO_PASSWD).is_file()

@pytest.fixture
def mosquitto_installed() -> None:
    """Fails a test that runs Debian's mosquitto or mosquitto_passwd when
    they are not installed (scripts/test installs them), rather than
    skipping it."""
    assert INSTALLED, f"{MOSQUITTO} or {MOSQUITTO_PASSWD} not found: scripts/test installs Debian's mosquitto"


# A mark (usable on pytest.param too); modules using it import the fixture.
requires_mosquitto = pytest.mark.usefixtures("mosquitto_installed")


def free_port() -> int:
    """A TCP port nothing listens on right now (another process may take it
    before the broker does: `mosquitto_broker` retries)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_passwd(*args: str) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [MOSQUITTO_PASSWD, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=TIMEOUT
    )
    assert out.returncode == 0, f"mosquitto_passwd {args}: {out.stdout}{out.stderr}"
    return out


@dataclass
class Mosquitto:
    """A running mosquitto: its port and log, and SIGHUP (which makes it
    read its password and ACL files again)."""

    port: int
    pid: int
    log: Path
    kind: str = "mosquitto"

    def hangup(self) -> None:
        os.kill(self.pid, signal.SIGHUP)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def mosquitto_broker(directory: Path, settings: str):
    """Runs mosquitto on a free port of 127.0.0.1 with `settings` (lines of
    mosquitto.conf that apply to it, e.g. allow_anonymous, password_file,
    acl_file) and yields a Mosquitto once the port accepts connections."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "mosquitto.log"
    for _ in range(3):
        port = free_port()
        conf = _write_conf(directory, port, settings)
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT
            )
        try:
            if _wait_for_port(proc, port):
                yield Mosquitto(port, proc.pid, log)
                crashed = proc.poll()
                if crashed is not None:
                    pytest.fail(f"mosquitto exited during the test (code {crashed}):\n{log.read_text()}")
                return
        finally:
            _stop(proc)
        text = log.read_text(errors="replace")
        if "Address already in use" not in text:
            pytest.fail(f"mosquitto did not start (code {proc.returncode}):\n{text}")
    pytest.fail(f"mosquitto found no free port:\n{log.read_text()}")


def mosquitto_refuses_to_start(directory: Path, settings: str) -> str:
    """Runs mosquitto with these settings, which it must refuse: returns
    what it logged before exiting with an error."""
    directory.mkdir(parents=True, exist_ok=True)
    conf = _write_conf(directory, free_port(), settings)
    try:
        out = subprocess.run(
            [MOSQUITTO, "-c", str(conf)], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"mosquitto started with:\n{settings}")
    assert out.returncode != 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def _write_conf(directory: Path, port: int, settings: str) -> Path:
    conf = directory / "mosquitto.conf"
    conf.write_text(
        # Run as whoever runs the tests: as root, mosquitto would otherwise
        # become the `mosquitto` user, which cannot read pytest's private
        # temporary directories.
        f"user {getpass.getuser()}\n"
        "persistence false\n"
        "log_dest stderr\n"
        "sys_interval 0\n"
        # Without it small packets wait for the client's delayed ACK.
        "set_tcp_nodelay true\n"
        f"listener {port} 127.0.0.1\n"
        f"{settings}\n"
    )
    return conf


def _wait_for_port(proc: subprocess.Popen, port: int) -> bool:
    """Whether mosquitto accepts connections on `port` within TIMEOUT
    (False once it has exited)."""
    deadline = time.monotonic() + TIMEOUT
    while proc.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
        if time.monotonic() > deadline:
            pytest.fail(f"mosquitto not listening on {port} within {TIMEOUT} s")
        time.sleep(0.02)
    return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=TIMEOUT)
