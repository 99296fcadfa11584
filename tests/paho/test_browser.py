"""MQTT over WebSocket from a real browser: Debian's headless Chromium loads
browser/page.html, which speaks MQTT 3.1.1 with packets it writes and parses
itself, and exchanges messages with the broker and, through it, with
paho-mqtt over plain TCP.

Chromium is only started with the page's URL: the page POSTs its report back
to the HTTP server that served it, so no driver (WebDriver, DevTools) is
needed. scripts/test installs the chromium package; without it these tests
fail.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from mqttprobe import Probe, Received, unique
from test_transports import PLAIN, serving

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PAGE_DIR = Path(__file__).resolve().parent / "browser"
# From Chromium's start to the page's report; a passing run takes about a
# second. The page gives up on any one step after 8 s and reports why.
RUN_TIMEOUT = 20.0
WS = '\n[[listener]]\nbind = "127.0.0.1:0"\ntransport = "ws"\n'


class _PageHandler(http.server.SimpleHTTPRequestHandler):
    """Serves browser/ and takes the page's report on POST /result."""

    def __init__(self, *args, reports: queue.Queue, **kwargs):
        self.reports = reports
        super().__init__(*args, directory=str(PAGE_DIR), **kwargs)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204 if self.path == "/result" else 404)
        self.end_headers()
        if self.path == "/result":
            self.reports.put(json.loads(body))

    def log_message(self, format, *args) -> None:  # noqa: A002
        pass


@contextlib.contextmanager
def page_server(reports: queue.Queue):
    """An HTTP server on 127.0.0.1 for the page; yields its port."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_PageHandler, reports=reports)
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.contextmanager
def chromium(url: str, directory: Path):
    """Headless Chromium on `url` with a new profile; yields its log file."""
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} not found: scripts/test installs Debian's chromium"
    profile = directory / "chromium-profile"
    profile.mkdir(parents=True)
    log = directory / "chromium.log"
    # The flags this machine needs: without the background-networking ones
    # Chromium tries hosts the closed network refuses, at every start.
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        url,
    ]
    with open(log, "wb") as out:
        # Its own process group, so the browser's helpers end with it.
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        # Helpers the browser left behind. While any is alive the group id
        # is not reused, so this reaches only them.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@dataclass
class BrowserRun:
    report: dict
    topics: dict[str, str]
    paho_got: Received


@pytest.fixture(scope="module")
def browser_run(tmp_path_factory) -> BrowserRun:
    """One visit of the page: a broker with a TCP and a WebSocket listener,
    paho-mqtt on the TCP one, and the page in Chromium on the other."""
    directory = tmp_path_factory.mktemp("browser")
    topics = {k: unique(f"browser/{k}") for k in ("echo", "to", "from")}
    # The page's report and paho's deliveries arrive in one queue, so a page
    # that fails early is seen at once instead of after paho's timeout.
    events: queue.Queue = queue.Queue()
    with serving(directory / "broker", PLAIN + WS) as broker, page_server(events) as http_port:
        paho = Probe(broker.port("tcp"), unique("paho"), mqtt.MQTTv311, inbox=events)
        try:
            paho.connect()
            paho.subscribe(topics["to"], 1)
            query = urllib.parse.urlencode(
                {"ws": f"ws://127.0.0.1:{broker.port('ws')}/mqtt", "id": unique("browser"), **topics}
            )
            url = f"http://127.0.0.1:{http_port}/page.html?{query}"
            with chromium(url, directory) as log:
                deadline = time.monotonic() + RUN_TIMEOUT

                def next_event(what: str):
                    try:
                        return events.get(timeout=max(0.0, deadline - time.monotonic()))
                    except queue.Empty:
                        tail = log.read_text(errors="replace")[-3000:]
                        pytest.fail(f"no {what} within {RUN_TIMEOUT} s; Chromium's output:\n{tail}")

                paho_got = next_event("message from the page to paho")
                if isinstance(paho_got, dict):
                    pytest.fail(f"the page finished before paho heard from it: {paho_got}")
                # The page publishes to paho only after its SUBACK: it is
                # subscribed to this by now.
                paho.publish(topics["from"], b"hello browser, from paho", qos=1)
                report = next_event("report from the page")
        finally:
            paho.close()
    assert isinstance(report, dict), f"a second message to paho: {report}"
    return BrowserRun(report, topics, paho_got)


def test_browser_page_ran_without_error(browser_run):
    assert "error" not in browser_run.report, browser_run.report["error"]
    assert "HeadlessChrome" in browser_run.report["userAgent"]


def test_browser_reads_packets_however_the_stream_is_cut(browser_run):
    # The page's own check: the same packets from the whole stream, byte by
    # byte and cut at every point.
    assert browser_run.report.get("reader") == ["CONNACK", "SUBACK", "PUBLISH", "PUBACK"]


def test_browser_is_refused_without_the_mqtt_subprotocol(browser_run):
    # [MQTT-6.0.0-3]: the upgrade is refused, so the browser never opens
    # the WebSocket; 1006 is its code for a connection that failed.
    assert browser_run.report.get("refusal") == {"events": ["error", "close"], "code": 1006}


def test_browser_exchanges_messages_with_itself_and_paho(browser_run):
    got = browser_run.report.get("exchange")
    assert got is not None, browser_run.report.get("error")
    echo, to, from_ = (browser_run.topics[k] for k in ("echo", "to", "from"))
    assert got["subprotocol"] == "mqtt"
    assert got["connack"] == 0
    assert got["suback"] == [1, 1]
    assert got["pubacks"] == [2, 3]
    assert got["echoes"] == [
        {"topic": echo, "payload": "qos 0 from the browser", "qos": 0},
        {"topic": echo, "payload": "qos 1 from the browser", "qos": 1},
    ]
    assert got["fromPaho"] == {"topic": from_, "payload": "hello browser, from paho", "qos": 1}
    assert got["leftover"] == []
    paho_got = browser_run.paho_got
    assert (paho_got.topic, paho_got.payload, paho_got.qos) == (to, b"hello paho, from the browser", 1)
