"""Authentication and authorization: password files, ACL files, ban files,
`strata passwd` and their reload on SIGHUP, with Debian's Mosquitto 2.0 as
the reference.

- Password files written by mosquitto_passwd work in Strata, and files
  written by `strata passwd` (in Mosquitto's $7$ format) work in Mosquitto.
- One ACL file and a corpus of (user, client id, topic, publish/receive)
  cases run against Mosquitto and Strata side by side: every decision must be
  the same, but where the corpus marks a deliberate departure (a client id
  with '/' gets no patterns in Strata) and says why. A few cases are also held to hand-written answers, so two
  brokers that allowed everything would not pass.
- Anonymous clients, bans, SIGHUP, and the ways around an ACL (wildcards,
  shared subscriptions, retained messages, wills, topic aliases).

Deliveries are observed without sleeping: a privileged client publishes a
marker after the message under test, and a message that has not arrived
before the marker was not delivered.

Mosquitto 2.0.11 answers a wrong password or an unknown user with the same
code as an anonymous client (5 / 0x87 Not authorized) where Strata answers
4 / 0x86 Bad user name or password; the tests that run on both hold each
to its own.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import LISTENING, STRATA_BIN, strata_serve
from mosquitto import (  # noqa: F401 - mosquitto_installed is a fixture requires_mosquitto uses
    mosquitto_broker,
    mosquitto_installed,
    mosquitto_passwd,
    mosquitto_refuses_to_start,
    requires_mosquitto,
)
from rawmqtt import (
    DISCONNECT,
    PUBACK,
    PUBLISH,
    SUBACK,
    UNSUBACK,
    V5,
    V311,
    Closed,
    NoPacket,
    Packet,
    RawClient,
    Will,
    puback,
    publish,
    subscribe,
    unsubscribe,
)

TIMEOUT = 10.0
# How long the differential waits for a marker before calling the
# observation failed (it always comes within milliseconds).
MARKER_TIMEOUT = 5.0
VERSIONS = {"v311": V311, "v5": V5}

# CONNACK refusal codes by protocol version.
BAD_CREDENTIALS = {V311: 4, V5: 0x86}  # Strata: wrong password, unknown user
NOT_AUTHORIZED = {V311: 5, V5: 0x87}  # anonymous where not allowed (and Mosquitto's bad password)
BANNED = {V311: 5, V5: 0x8A}
REFUSED_CREDENTIALS = {"strata": BAD_CREDENTIALS, "mosquitto": NOT_AUTHORIZED}
# Failure codes in SUBACK, and the 5.0 PUBACK code of a refused publish.
SUBACK_REFUSED = {V311: 0x80, V5: 0x87}
PUBACK_NOT_AUTHORIZED = 0x87


@pytest.fixture(params=sorted(VERSIONS), ids=lambda name: name)
def version(request) -> int:
    """Runs a test once for MQTT 3.1.1 and once for MQTT 5.0 (raw clients)."""
    return VERSIONS[request.param]


@pytest.fixture(params=["mosquitto", "strata"])
def kind(request) -> str:
    """Runs a test once against Mosquitto and once against Strata."""
    if request.param == "mosquitto":
        request.getfixturevalue("mosquitto_installed")
    return request.param


# --- password files ----------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def pbkdf2_line(user: str, password: str, iterations: int = 101) -> str:
    """One line of a password file in Mosquitto's $7$ format: PBKDF2 with
    HMAC-SHA512 over a 12-byte salt, then the salt and the 64-byte key in
    base64. Made here so that the tests need neither tool for their files."""
    salt = os.urandom(12)
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"{user}:$7${iterations}${_b64(salt)}${_b64(key)}"


def write_passwords(path: Path, users: dict[str, str]) -> Path:
    replace(path, "".join(pbkdf2_line(u, p) + "\n" for u, p in users.items()))
    return path


def replace(path: Path, text: str) -> None:
    """Writes the file in one rename, so a broker reloading it never reads
    half of it."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def pw(user: str) -> str:
    """The password every test gives `user`."""
    return f"{user}-secret"


# --- brokers -------------------------------------------------------------------


@dataclass
class Auth:
    """The auth settings of one broker, written as Strata's [auth] table or
    as mosquitto.conf lines."""

    password_file: Path | None = None
    acl_file: Path | None = None
    ban_file: Path | None = None
    allow_anonymous: bool | None = None

    def strata(self) -> str:
        lines = ["[auth]"]
        if self.allow_anonymous is not None:
            lines.append(f"allow_anonymous = {str(self.allow_anonymous).lower()}")
        for key in ("password_file", "acl_file", "ban_file"):
            path = getattr(self, key)
            if path is not None:
                # A JSON string is a valid TOML basic string.
                lines.append(f"{key} = {json.dumps(str(path))}")
        # No $SYS traffic in the observers' way.
        lines += ["", "[sys]", "interval_secs = 0", ""]
        return "\n".join(lines)

    def mosquitto(self) -> str:
        assert self.ban_file is None, "Mosquitto has no ban file"
        lines = []
        if self.allow_anonymous is not None:
            lines.append(f"allow_anonymous {str(self.allow_anonymous).lower()}")
        if self.password_file is not None:
            lines.append(f"password_file {self.password_file}")
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        return "\n".join(lines)


@dataclass
class Strata:
    """A running `strata serve` whose process the test keeps, for SIGHUP."""

    ports: list[int]
    pid: int
    log: Path
    kind: str = "strata"

    @property
    def port(self) -> int:
        return self.ports[0]

    def hangup(self) -> None:
        os.kill(self.pid, signal.SIGHUP)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def strata_process(directory: Path, config: str):
    """Runs `strata serve` with this configuration: on its [[listener]]
    tables, or on a free port of 127.0.0.1 when it has none. Like
    conftest.strata_serve, but yields the process id with the ports."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "strata.toml"
    path.write_text(config)
    args = ["--in-memory", "--admin-listen", "off", "--config", str(path)]
    listeners = config.count("[[listener]]")
    if listeners == 0:
        args += ["--listen", "127.0.0.1:0"]
        listeners = 1
    log = directory / "strata.stderr"
    process: list = []
    with strata_serve(args, log, listeners=listeners, process=process) as listening:
        ports: list[int] = []
        for line in listening:
            match = LISTENING.match(line)
            assert match, f"not a TCP listener on 127.0.0.1: {line}"
            ports.append(int(match.group(1)))
        yield Strata(ports, process[0].pid, log)


@pytest.fixture
def start(tmp_path):
    """A factory: `start(kind, auth)` runs Mosquitto or Strata with these
    auth settings and returns it (port, hangup(), log_text()); all are
    stopped at teardown."""
    with contextlib.ExitStack() as stack:
        count = itertools.count()

        def run(kind: str, auth: Auth):
            directory = tmp_path / f"{kind}-{next(count)}"
            if kind == "mosquitto":
                return stack.enter_context(mosquitto_broker(directory, auth.mosquitto()))
            return stack.enter_context(strata_process(directory, auth.strata()))

        yield run


# --- clients ---------------------------------------------------------------------


_open_clients: list[Client] = []


@pytest.fixture(autouse=True)
def _close_clients():
    """Closes every Client a test opened."""
    yield
    while _open_clients:
        _open_clients.pop().close()


class Client:
    """A raw MQTT connection with packet identifiers, acknowledgements of
    QoS 1 deliveries, and an inbox of the PUBLISH packets received while
    waiting for something else."""

    def __init__(
        self,
        port: int,
        client_id: str,
        version: int = V311,
        user: str | None = None,
        password: str | None = None,
        will: Will | None = None,
        source: str | None = None,
    ) -> None:
        self.client_id = client_id
        self.version = version
        self.raw = RawClient(port, version)
        _open_clients.append(self)
        if source is not None:
            # RawClient connects from 127.0.0.1; any 127/8 address reaches
            # the loopback listener, so swap in a connection from `source`
            # before a byte is sent on the first one.
            self.raw.sock.close()
            self.raw.sock = socket.create_connection(
                ("127.0.0.1", port), timeout=TIMEOUT, source_address=(source, 0)
            )
        self.inbox: list[Packet] = []
        self._ids = itertools.count(1)
        self.connack = self.raw.connect(
            client_id, username=user, password=None if password is None else password.encode(), will=will
        )
        self.code = self.connack.reason_code

    def close(self) -> None:
        self.raw.close()

    def _next_id(self) -> int:
        return next(self._ids) % 65535 + 1

    def _take(self, pkt: Packet) -> Packet:
        if pkt.type == PUBLISH:
            if pkt.qos == 1:
                self.raw.send(puback(pkt.packet_id, version=self.version))
            self.inbox.append(pkt)
        elif pkt.type == DISCONNECT:
            raise Closed(f"DISCONNECT from the server: {pkt!r}")
        return pkt

    def _await(self, packet_type: int, packet_id: int) -> Packet:
        deadline = time.monotonic() + TIMEOUT
        while True:
            pkt = self._take(self.raw.read(max(0.0, deadline - time.monotonic())))
            if pkt.type == packet_type and pkt.packet_id == packet_id:
                return pkt
            assert pkt.type == PUBLISH, f"{self.client_id}: unexpected {pkt!r}"

    def publish(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, properties: dict | None = None
    ) -> int | None:
        """Publishes; at QoS 1 waits for the PUBACK and returns its reason
        code (0 for 3.1.1)."""
        packet_id = self._next_id() if qos else None
        self.raw.send(publish(topic, payload, qos, packet_id, retain=retain, properties=properties, version=self.version))
        if not qos:
            return None
        return self._await(PUBACK, packet_id).reason_code

    def subscribe(self, *filters: str) -> list[int]:
        """Subscribes at QoS 0 and returns the SUBACK codes."""
        packet_id = self._next_id()
        self.raw.send(subscribe(packet_id, [(f, 0) for f in filters], version=self.version))
        return self._await(SUBACK, packet_id).reason_codes

    def unsubscribe(self, *filters: str) -> None:
        packet_id = self._next_id()
        self.raw.send(unsubscribe(packet_id, filters, version=self.version))
        self._await(UNSUBACK, packet_id)

    def until(self, payload: bytes, timeout: float = TIMEOUT) -> list[Packet] | None:
        """Consumes the inbox up to the PUBLISH carrying `payload` and
        returns what came before it; None if it does not come in time."""
        deadline = time.monotonic() + timeout
        while True:
            for i, pkt in enumerate(self.inbox):
                if pkt.payload == payload:
                    before = self.inbox[:i]
                    del self.inbox[: i + 1]
                    return before
            try:
                self._take(self.raw.read(max(0.0, deadline - time.monotonic())))
            except NoPacket:
                return None


def connect(port: int, client_id: str, version: int = V311, user: str | None = None, **kwargs) -> Client:
    """A client that must be accepted; `user` gets its password from pw()."""
    kwargs.setdefault("password", None if user is None else pw(user))
    client = Client(port, client_id, version, user, **kwargs)
    assert client.code == 0, f"{client_id} ({user}) refused: CONNACK {client.code:#04x}"
    return client


def connack(port: int, client_id: str, version: int, user: str | None = None, password: str | None = None, **kwargs) -> int:
    """The CONNACK code one connection attempt gets."""
    client = Client(port, client_id, version, user, password, **kwargs)
    client.close()
    return client.code


_marks = itertools.count()


def seen_before_marker(admin: Client, reader: Client, marker_topic: str) -> list[tuple[str, bytes]]:
    """Has `admin` publish a marker on `marker_topic` (which `reader` is
    subscribed to) and returns (topic, payload) of what `reader` got before
    it."""
    mark = f"marker-{next(_marks)}".encode()
    assert admin.publish(marker_topic, mark) in (0, 0x10), "the marker was not accepted"
    before = reader.until(mark)
    assert before is not None, f"{reader.client_id}: no marker on {marker_topic} within {TIMEOUT} s"
    return [(p.topic, p.payload) for p in before]


# --- 1. mosquitto_passwd files in Strata -----------------------------------------------


@requires_mosquitto
@pytest.mark.parametrize("hash_name, prefix", [(None, "$7$"), ("sha512", "$6$")], ids=["default-pbkdf2", "sha512"])
def test_mosquitto_passwd_files_work_in_strata(tmp_path, configured_broker, version, hash_name, prefix):
    passwords = tmp_path / "passwords"
    hashing = ["-H", hash_name] if hash_name else []
    mosquitto_passwd(*hashing, "-c", "-b", str(passwords), "alice", "alice's secret")
    mosquitto_passwd(*hashing, "-b", str(passwords), "bob", "b0b")
    lines = passwords.read_text().splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["alice", "bob"]
    assert all(line.split(":", 1)[1].startswith(prefix) for line in lines), lines

    port = configured_broker(Auth(password_file=passwords).strata())
    assert connack(port, "alice-1", version, "alice", "alice's secret") == 0
    assert connack(port, "bob-1", version, "bob", "b0b") == 0
    assert connack(port, "alice-2", version, "alice", "b0b") == BAD_CREDENTIALS[version]
    assert connack(port, "alice-3", version, "alice", "") == BAD_CREDENTIALS[version]
    assert connack(port, "carol-1", version, "carol", "b0b") == BAD_CREDENTIALS[version]
    # A user name without a password is not that user.
    assert connack(port, "alice-4", version, "alice", None) == BAD_CREDENTIALS[version]


# --- 2. strata passwd ---------------------------------------------------------------------


def strata_passwd(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [str(STRATA_BIN), "passwd", *args],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert out.returncode == 0, f"strata passwd {args}: {out.stdout}{out.stderr}"
    return out


def hashes(path: Path) -> dict[str, str]:
    """user -> hash of each line of a password file."""
    return dict(line.split(":", 1) for line in path.read_text().splitlines() if line.strip())


@requires_mosquitto
def test_strata_passwd_pbkdf2_files_work_in_mosquitto_and_strata(tmp_path, start, version):
    passwords = tmp_path / "passwords"
    strata_passwd("-c", "-H", "sha512-pbkdf2", "-b", str(passwords), "alice", "alice's secret")
    strata_passwd("-H", "sha512-pbkdf2", "-b", str(passwords), "bob", "b0b")
    # The interactive form: one line on a stdin that is not a terminal.
    strata_passwd("-H", "sha512-pbkdf2", str(passwords), "carol", stdin="from stdin\n")
    users = hashes(passwords)
    assert list(users) == ["alice", "bob", "carol"]
    assert all(h.startswith("$7$") for h in users.values()), users

    for kind in ("mosquitto", "strata"):
        port = start(kind, Auth(password_file=passwords, allow_anonymous=False)).port
        refused = REFUSED_CREDENTIALS[kind][version]
        assert connack(port, "alice-1", version, "alice", "alice's secret") == 0, kind
        assert connack(port, "bob-1", version, "bob", "b0b") == 0, kind
        assert connack(port, "carol-1", version, "carol", "from stdin") == 0, kind
        assert connack(port, "carol-2", version, "carol", "from stdin\n") == refused, kind
        assert connack(port, "alice-2", version, "alice", "b0b") == refused, kind
        assert connack(port, "dave-1", version, "dave", "b0b") == refused, kind


def test_strata_passwd_argon2id_by_default_and_delete(tmp_path, configured_broker):
    # (Argon2id is slow on purpose: one protocol version is enough here.)
    version = V311
    passwords = tmp_path / "passwords"
    strata_passwd("-c", "-b", str(passwords), "alice", "first")
    strata_passwd("-b", str(passwords), "bob", "b0b")
    strata_passwd(str(passwords), "carol", stdin="typed in\n")
    # -b on an existing user changes the password.
    strata_passwd("-b", str(passwords), "alice", "second")
    users = hashes(passwords)
    assert list(users) == ["alice", "bob", "carol"]
    assert all(h.startswith("$argon2id$") for h in users.values()), users

    port = configured_broker(Auth(password_file=passwords).strata())
    assert connack(port, "alice-1", version, "alice", "second") == 0
    assert connack(port, "alice-2", version, "alice", "first") == BAD_CREDENTIALS[version]
    assert connack(port, "bob-1", version, "bob", "b0b") == 0
    assert connack(port, "carol-1", version, "carol", "typed in") == 0

    strata_passwd("-D", str(passwords), "bob")
    assert list(hashes(passwords)) == ["alice", "carol"]
    port = configured_broker(Auth(password_file=passwords).strata())
    assert connack(port, "bob-2", version, "bob", "b0b") == BAD_CREDENTIALS[version]
    assert connack(port, "alice-3", version, "alice", "second") == 0


def test_strata_passwd_hashes_a_plain_text_file(tmp_path, configured_broker):
    version = V5
    passwords = tmp_path / "passwords"
    passwords.write_text("erin:plain one\nfrank:two:with:colons\n")
    strata_passwd("-U", str(passwords))
    users = hashes(passwords)
    assert list(users) == ["erin", "frank"]
    assert all(h.startswith("$argon2id$") for h in users.values()), users
    assert "plain one" not in passwords.read_text()

    port = configured_broker(Auth(password_file=passwords).strata())
    assert connack(port, "erin-1", version, "erin", "plain one") == 0
    assert connack(port, "frank-1", version, "frank", "two:with:colons") == 0
    assert connack(port, "erin-2", version, "erin", "plain") == BAD_CREDENTIALS[version]


# --- 3. the ACL differential -------------------------------------------------------------

# Lines before the first `user` are for anonymous clients; `pattern` lines
# (Mosquitto: wherever they stand) for every client.
ACL = """\
# anonymous clients
topic read public/#
topic deny public/secret
topic write anon/in
topic readwrite anon/both
topic read marker/anon-plus
pattern read marker/%c
pattern readwrite clients/%c/#
pattern deny clients/%c/locked
pattern read users/%u/inbox
pattern write users/%u/outbox/+
pattern read everyone/news
pattern read notes/%u

user admin
topic readwrite #
topic readwrite $SYS/#

user observer
topic read #
topic read $SYS/#

user alice
topic deny alice/private
topic readwrite alice/#
topic deny alice/zone/blocked
topic read sensors/#
topic deny sensors/+/secret
topic read shared/+/status
topic write shared/alice
topic read with space/in topic
topic readwrite /lead/slash
topic readwrite clients/#
topic plain/alice
topic deny notes/alice

user bob
topic read bob/#
topic write bob/out
topic read #
topic deny private/#
pattern read team/%u/news

user car+ol
topic readwrite carol/#
topic read marker/carol

user sysop
topic readwrite $SYS/broker/connection/#
topic read sysread/#

user dave

user sp ace
topic readwrite space/#

user dan#
topic readwrite dan/#
topic read marker/dan

user alice
topic read extra/alice
"""

# frank has a password but no line in the ACL.
USERS = ["admin", "observer", "alice", "bob", "car+ol", "dan#", "sysop", "dave", "frank", "sp ace"]


@dataclass(frozen=True)
class Subject:
    user: str | None
    client_id: str
    version: int = V311
    # A topic the subject may read, for its receive cases' markers.
    marker: str = ""

    @property
    def marker_topic(self) -> str:
        return self.marker or f"marker/{self.client_id}"

    def __str__(self) -> str:
        return f"{self.user or '(anonymous)'}/{self.client_id}"


ALICE = Subject("alice", "alice-c1", V5)
BOB = Subject("bob", "bob-c1")
CAROL = Subject("car+ol", "carol-c1", marker="marker/carol")
SYSOP = Subject("sysop", "sysop-c1", V5)
ADMIN = Subject("admin", "admin-c2", V5)
DAVE = Subject("dave", "dave-c1")
SPACE = Subject("sp ace", "space-c1")
FRANK = Subject("frank", "frank-c1")
DAN = Subject("dan#", "dan-c1", marker="marker/dan")
ANON = Subject(None, "anon-c1")
ANON_SLASH = Subject(None, "anon/slash")
ANON_PLUS = Subject(None, "anon+x", V5, marker="marker/anon-plus")


@dataclass(frozen=True)
class Case:
    subject: Subject
    action: str  # "publish": the subject publishes; "receive": the subject is subscribed to the topic
    topic: str
    allowed: bool  # what Mosquitto 2.0.11 decides
    why: str = ""
    # Held to `allowed` on both brokers, not only compared.
    anchor: bool = False
    # Where Strata departs from Mosquitto on purpose: its answer.
    strata: bool | None = None

    def __str__(self) -> str:
        return f"{self.subject} {self.action} {self.topic!r}"


def P(subject, topic, allowed, why="", anchor=False, strata=None) -> Case:
    return Case(subject, "publish", topic, allowed, why, anchor, strata)


def R(subject, topic, allowed, why="", anchor=False) -> Case:
    return Case(subject, "receive", topic, allowed, why, anchor)


CASES = [
    P(ALICE, "alice/x", True, "topic readwrite alice/#", anchor=True),
    R(ALICE, "alice/x", True, "topic readwrite alice/#", anchor=True),
    P(ALICE, "alice/private", False, "deny before the allow", anchor=True),
    R(ALICE, "alice/private", False, "deny before the allow"),
    P(ALICE, "alice/zone/blocked", False, "deny after the allow: denials come first", anchor=True),
    R(ALICE, "alice/zone/blocked", False, "deny after the allow"),
    P(ALICE, "alice/zone/open", True, "readwrite alice/#"),
    R(ALICE, "sensors/t1/temp", True, "read sensors/#"),
    R(ALICE, "sensors", True, "sensors/# matches its parent"),
    R(ALICE, "sensors/t1/secret", False, "deny sensors/+/secret after read sensors/#"),
    R(ALICE, "sensors/t1/secret/more", True, "+/secret does not match deeper"),
    P(ALICE, "sensors/t1/temp", False, "read only", anchor=True),
    R(ALICE, "shared/x/status", True, "read shared/+/status"),
    R(ALICE, "shared//status", True, "+ matches an empty level"),
    R(ALICE, "shared/x/y/status", False, "+ is one level"),
    P(ALICE, "shared/alice", True, "write only"),
    R(ALICE, "shared/alice", False, "write only", anchor=True),
    R(ALICE, "with space/in topic", True, "the rule's topic has spaces"),
    R(ALICE, "with space/in", False, "a prefix of the rule"),
    P(ALICE, "/lead/slash", True, "leading slash"),
    P(ALICE, "lead/slash", False, "no leading slash is another topic"),
    P(ALICE, "Alice/x", False, "topics are case-sensitive"),
    P(ALICE, "clients/alice-c1/locked", True, "the user's own allow is found before the patterns' deny"),
    R(ALICE, "users/alice/inbox", True, "pattern read users/%u/inbox"),
    R(ALICE, "users/bob/inbox", False, "%u is the user's own name"),
    R(ALICE, "team/alice/news", True, "a pattern under `user bob` is for everyone"),
    R(ALICE, "public/news", False, "the anonymous lines are not for users", anchor=True),
    R(ALICE, "everyone/news", True, "a pattern without %u or %c"),
    P(ALICE, "plain/alice", True, "topic without an access word is readwrite"),
    R(ALICE, "plain/alice", True, "topic without an access word is readwrite"),
    P(ALICE, "users/alice/outbox/1", True, "pattern write users/%u/outbox/+"),
    P(ALICE, "users/alice/outbox/1/2", False, "+ is one level"),
    R(ALICE, "notes/alice", False, "the user's deny beats a pattern's allow"),
    R(ALICE, "extra/alice", True, "a second `user alice` section adds to the first"),
    R(BOB, "bob/x", True, "read bob/#"),
    P(BOB, "bob/x", False, "read only"),
    P(BOB, "bob/out", True, "write bob/out"),
    R(BOB, "anything/else", True, "read #"),
    R(BOB, "private/x", False, "deny private/# after read #", anchor=True),
    R(BOB, "private", False, "private/# matches its parent"),
    R(BOB, "$SYS/broker/connection/c1/state", False, "# does not match $SYS topics"),
    P(BOB, "clients/bob-c1/x", True, "pattern readwrite clients/%c/#"),
    P(BOB, "clients/alice-c1/x", False, "%c is the client's own id", anchor=True),
    R(BOB, "team/bob/news", True, "pattern read team/%u/news"),
    P(CAROL, "carol/x", True, "the user's own lines come before the check of its name"),
    R(CAROL, "carol/x", True, "readwrite carol/#"),
    R(CAROL, "everyone/news", False, "a user name with + gets no pattern"),
    P(CAROL, "clients/carol-c1/x", False, "a user name with + gets no pattern"),
    P(SYSOP, "$SYS/broker/connection/c1/state", True, "readwrite $SYS/broker/connection/#"),
    P(SYSOP, "$SYS/broker/load", False, "no rule"),
    R(SYSOP, "$SYS/broker/connection/c1/state", True, "readwrite $SYS/broker/connection/#"),
    R(SYSOP, "sysread/x", True, "read sysread/#"),
    R(SYSOP, "other/x", False, "no rule"),
    P(ADMIN, "$SYS/broker/uptime", False, "Mosquitto: clients write $SYS only under broker/connection/+/state"),
    P(ADMIN, "$SYS/custom", False, "Mosquitto: clients write $SYS only under broker/connection/+/state"),
    P(ADMIN, "anywhere/at/all", True, "readwrite #"),
    P(DAVE, "clients/dave-c1/x", True, "a user with no lines gets the patterns"),
    P(DAVE, "clients/dave-c1/locked", False, "pattern deny clients/%c/locked"),
    P(DAVE, "clients/other/x", False, "%c is the client's own id"),
    R(DAVE, "everyone/news", True, "pattern read everyone/news"),
    R(DAVE, "users/dave/inbox", True, "pattern read users/%u/inbox"),
    P(DAVE, "public/x", False, "a user with no lines", anchor=True),
    R(DAVE, "notes/dave", True, "pattern read notes/%u"),
    R(FRANK, "public/news", False, "a user the file never names gets no anonymous lines"),
    P(FRANK, "clients/frank-c1/x", True, "a user the file never names gets the patterns"),
    P(DAN, "dan/x", True, "the user's own lines come before the check of its name"),
    R(DAN, "everyone/news", False, "a user name with # gets no pattern"),
    P(SPACE, "space/x", True, "`user sp ace` names the user with a space"),
    R(SPACE, "users/sp ace/inbox", True, "%u with a space"),
    R(ANON, "public/news", True, "anonymous: read public/#", anchor=True),
    R(ANON, "public/secret", False, "anonymous: deny public/secret", anchor=True),
    P(ANON, "anon/in", True, "anonymous: write anon/in"),
    R(ANON, "anon/in", False, "anonymous: write only"),
    P(ANON, "anon/both", True, "anonymous: readwrite"),
    R(ANON, "anon/both", True, "anonymous: readwrite"),
    P(ANON, "public/news", False, "anonymous: read only", anchor=True),
    P(ANON, "clients/anon-c1/x", True, "patterns with %c apply to anonymous clients"),
    R(ANON, "users//inbox", False, "patterns with %u are skipped for anonymous clients"),
    R(ANON, "alice/x", False, "alice's lines are alice's"),
    # Strata gives no pattern to a name with '/' (it would reach into
    # another client's levels: client id "anon/slash" writing under
    # clients/anon/...); Mosquitto fills it in.
    P(ANON_SLASH, "clients/anon/slash/x", True, "%c holding a / spans levels", strata=False),
    P(ANON_SLASH, "clients/anon/x", False, "%c holding a / spans levels"),
    P(ANON_PLUS, "anon/in", True, "the anonymous lines come before the check of the client id"),
    R(ANON_PLUS, "public/news", True, "the anonymous lines come before the check of the client id"),
    R(ANON_PLUS, "everyone/news", False, "a client id with + gets no pattern"),
]


@dataclass
class Seen:
    """What one broker did with one case."""

    allowed: bool | None  # None: the observation failed (see note)
    code: int | None = None  # 5.0 PUBACK code (publish) or SUBACK code (receive)
    note: str = ""

    def __str__(self) -> str:
        decision = {True: "allowed", False: "denied", None: "unknown"}[self.allowed]
        code = "" if self.code is None else f" (code {self.code:#04x})"
        return decision + code + (f" [{self.note}]" if self.note else "")


def acl_auth(directory: Path) -> Auth:
    directory.mkdir(parents=True, exist_ok=True)
    acl = directory / "acl"
    acl.write_text(ACL)
    passwords = write_passwords(directory / "passwords", {u: pw(u) for u in USERS})
    return Auth(password_file=passwords, acl_file=acl, allow_anonymous=True)


OBSERVER_MARKER = "marker/acl-observer"


def decide(port: int, cases: list[Case]) -> dict[Case, Seen]:
    """Runs every case on the broker at `port` and returns what it did.

    publish: the observer (read # and $SYS/#) is subscribed to everything;
    the subject publishes at QoS 1, then the admin publishes the observer's
    marker: allowed iff the subject's message came first.
    receive: the subject subscribes to the topic; the admin publishes on it,
    then on the subject's marker topic: allowed iff the message came first.
    """
    clients: list[Client] = []
    try:
        admin = connect(port, "acl-admin", V5, "admin")
        observer = connect(port, "acl-observer", V311, "observer")
        clients += [admin, observer]
        observer.subscribe("#", "$SYS/#")
        seen_before_marker(admin, observer, OBSERVER_MARKER)

        subjects: dict[Subject, Client] = {}
        blind: dict[Subject, str] = {}

        def session(s: Subject) -> Client:
            if s not in subjects:
                c = connect(port, s.client_id, s.version, s.user)
                clients.append(c)
                c.subscribe(s.marker_topic)
                mark = f"marker-{next(_marks)}".encode()
                admin.publish(s.marker_topic, mark)
                if c.until(mark, MARKER_TIMEOUT) is None:
                    blind[s] = f"no marker on {s.marker_topic}"
                subjects[s] = c
            return subjects[s]

        results: dict[Case, Seen] = {}
        for n, case in enumerate(cases):
            payload = f"case-{n}".encode()
            try:
                c = session(case.subject)
                if case.action == "publish":
                    code = c.publish(case.topic, payload)
                    mark = f"marker-{next(_marks)}".encode()
                    admin.publish(OBSERVER_MARKER, mark)
                    before = observer.until(mark, MARKER_TIMEOUT)
                    reader = observer
                else:
                    if case.subject in blind:
                        results[case] = Seen(None, note=blind[case.subject])
                        continue
                    code = c.subscribe(case.topic)[0]
                    admin_code = admin.publish(case.topic, payload)
                    mark = f"marker-{next(_marks)}".encode()
                    admin.publish(case.subject.marker_topic, mark)
                    before = c.until(mark, MARKER_TIMEOUT)
                    c.unsubscribe(case.topic)
                    reader = c
                    if admin_code not in (0, 0x10):
                        results[case] = Seen(None, code, f"the admin's publish got {admin_code:#04x}")
                        continue
                if before is None:
                    results[case] = Seen(None, code, f"{reader.client_id} got no marker")
                    continue
                got = any((p.topic, p.payload) == (case.topic, payload) for p in before)
                results[case] = Seen(got, code if c.version == V5 or case.action == "receive" else None)
            except (Closed, AssertionError, OSError) as e:
                # The subject was disconnected (or an ack never came):
                # reconnect it for the next cases.
                results[case] = Seen(None, note=f"{type(e).__name__}: {e}")
                if case.subject in subjects:
                    subjects.pop(case.subject).close()
        return results
    finally:
        for c in clients:
            c.close()


def table(rows: list[tuple]) -> str:
    return "\n".join("  " + " | ".join(str(x) for x in row) for row in rows)


@pytest.fixture(scope="module")
def mosquitto_decisions(tmp_path_factory) -> dict[Case, Seen]:
    directory = tmp_path_factory.mktemp("acl-mosquitto")
    with mosquitto_broker(directory, acl_auth(directory).mosquitto()) as m:
        return decide(m.port, CASES)


def test_the_acl_corpus_is_large_and_distinct():
    assert len(CASES) >= 60
    assert len({(c.subject, c.action, c.topic) for c in CASES}) == len(CASES)
    assert sum(c.anchor for c in CASES) >= 10
    assert {True, False} == {c.allowed for c in CASES if c.anchor}


@requires_mosquitto
def test_mosquitto_decides_the_acl_corpus_as_written(mosquitto_decisions):
    """Checks the harness and the `allowed` column against Mosquitto itself."""
    wrong = [(c, c.allowed, mosquitto_decisions[c], c.why) for c in CASES if mosquitto_decisions[c].allowed != c.allowed]
    print(f"{len(CASES)} cases; Mosquitto differs from the corpus on {len(wrong)}:\n" + table(wrong))
    assert not wrong, "case | written | mosquitto | why\n" + table(wrong)


@requires_mosquitto
def test_strata_decides_the_acl_corpus_as_mosquitto_does(mosquitto_decisions, tmp_path):
    auth = acl_auth(tmp_path)
    with strata_process(tmp_path / "strata", auth.strata()) as s:
        strata = decide(s.port, CASES)
    def expected(c: Case) -> bool:
        return mosquitto_decisions[c].allowed if c.strata is None else c.strata

    differ = [
        (c, mosquitto_decisions[c], strata[c], c.why)
        for c in CASES
        if strata[c].allowed is None or strata[c].allowed != expected(c)
    ]
    print(f"{len(CASES)} cases, {len(differ)} disagreements (case | mosquitto | strata | why):\n" + table(differ))
    assert not differ, "case | mosquitto | strata | why\n" + table(differ)
    for c in CASES:
        if c.anchor:
            assert strata[c].allowed == c.allowed, c
        if c.strata is not None:
            # The departure is one: Mosquitto decides otherwise.
            assert mosquitto_decisions[c].allowed != c.strata, c
        # 5.0: a refused PUBLISH is acknowledged with Not authorized.
        if c.action == "publish" and c.subject.version == V5:
            if strata[c].allowed:
                assert strata[c].code in (0, 0x10), (str(c), strata[c])
            else:
                assert strata[c].code == PUBACK_NOT_AUTHORIZED, (str(c), strata[c])


# --- 4. anonymous clients ------------------------------------------------------------------


@pytest.fixture
def passwords(tmp_path) -> Path:
    return write_passwords(tmp_path / "passwords", {u: pw(u) for u in ("alice", "bob", "mallory")})


@pytest.mark.parametrize("allow_anonymous", [False, None], ids=["allow_anonymous-false", "password_file-alone"])
def test_anonymous_refused_where_not_allowed(start, kind, version, passwords, allow_anonymous):
    # Mosquitto 2.0 too refuses anonymous clients unless told otherwise.
    port = start(kind, Auth(password_file=passwords, allow_anonymous=allow_anonymous)).port
    assert connack(port, "anon-1", version) == NOT_AUTHORIZED[version]
    assert connack(port, "alice-1", version, "alice", pw("alice")) == 0
    assert connack(port, "alice-2", version, "alice", "wrong") == REFUSED_CREDENTIALS[kind][version]
    assert connack(port, "eve-1", version, "eve", "anything") == REFUSED_CREDENTIALS[kind][version]


def test_anonymous_allowed_with_a_password_file_when_configured(start, kind, version, passwords):
    port = start(kind, Auth(password_file=passwords, allow_anonymous=True)).port
    assert connack(port, "anon-1", version) == 0
    assert connack(port, "alice-1", version, "alice", pw("alice")) == 0
    # A user name still needs its password.
    assert connack(port, "alice-2", version, "alice", "wrong") == REFUSED_CREDENTIALS[kind][version]


def test_strata_allows_anonymous_on_loopback_by_default(configured_broker, version):
    port = configured_broker("[sys]\ninterval_secs = 0\n")
    assert connack(port, "anon-1", version) == 0


def test_strata_listener_allow_anonymous_overrides_auth(tmp_path, version, passwords):
    config = Auth(password_file=passwords, allow_anonymous=False).strata()
    config += '\n[[listener]]\nbind = "127.0.0.1:0"\nallow_anonymous = true\n'
    config += '\n[[listener]]\nbind = "127.0.0.1:0"\n'
    with strata_process(tmp_path / "strata", config) as s:
        welcoming, strict = s.ports
        assert connack(welcoming, "anon-1", version) == 0
        assert connack(strict, "anon-2", version) == NOT_AUTHORIZED[version]
        assert connack(strict, "alice-1", version, "alice", pw("alice")) == 0
        assert connack(welcoming, "alice-2", version, "alice", "wrong") == BAD_CREDENTIALS[version]


# --- 5. bans ---------------------------------------------------------------------------------


def test_strata_bans_clients_users_and_addresses(tmp_path, configured_broker, version, passwords):
    bans = tmp_path / "bans"
    bans.write_text(
        "# who may not connect\n"
        "client bad-client\n"
        "\n"
        "user mallory\n"
        "address 127.0.0.2/31\n"
    )
    port = configured_broker(Auth(password_file=passwords, ban_file=bans, allow_anonymous=True).strata())
    banned = BANNED[version]
    # client
    assert connack(port, "bad-client", version) == banned
    assert connack(port, "bad-client", version, "alice", pw("alice")) == banned
    assert connack(port, "bad-client-2", version) == 0
    assert connack(port, "good-client", version, "alice", pw("alice")) == 0
    # user
    assert connack(port, "mallory-1", version, "mallory", pw("mallory")) == banned
    assert connack(port, "bob-1", version, "bob", pw("bob")) == 0
    # address: 127.0.0.2/31 is .2 and .3
    assert connack(port, "from-2", version, source="127.0.0.2") == banned
    assert connack(port, "from-3", version, "alice", pw("alice"), source="127.0.0.3") == banned
    assert connack(port, "from-4", version, source="127.0.0.4") == 0
    assert connack(port, "from-1", version, source="127.0.0.1") == 0


# --- 6. reload on SIGHUP ---------------------------------------------------------------------

RELOAD_ACL = """\
pattern read marker/%c
user admin
topic readwrite #
user sue
topic read news/#
topic read other/#
"""


def poll(what: str, check, timeout: float = TIMEOUT):
    """Retries `check` until it returns something true (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def test_sighup_reloads_the_acl_for_connected_clients(start, kind, tmp_path, passwords):
    acl = tmp_path / "acl"
    acl.write_text(RELOAD_ACL)
    write_passwords(passwords, {"admin": pw("admin"), "sue": pw("sue")})
    broker = start(kind, Auth(password_file=passwords, acl_file=acl, allow_anonymous=False))
    admin = connect(broker.port, "admin-1", V311, "admin")
    sue = connect(broker.port, "sue-1", V311, "sue")
    sue.subscribe("news/a", "other/a", "marker/sue-1")
    admin.publish("news/a", b"before")
    assert seen_before_marker(admin, sue, "marker/sue-1") == [("news/a", b"before")]

    replace(acl, RELOAD_ACL.replace("topic read news/#\n", ""))
    broker.hangup()
    probes = itertools.count()

    def news_stopped() -> bool:
        payload = f"probe-{next(probes)}".encode()
        admin.publish("news/a", payload)
        admin.publish("other/a", payload)
        seen = seen_before_marker(admin, sue, "marker/sue-1")
        assert ("other/a", payload) in seen, seen
        return ("news/a", payload) not in seen

    poll("the subscriber still gets news/a after SIGHUP", news_stopped)
    # And stays cut off.
    assert news_stopped()


def test_sighup_reloads_the_password_file(start, kind, version, passwords):
    broker = start(kind, Auth(password_file=passwords, allow_anonymous=False))
    refused = REFUSED_CREDENTIALS[kind][version]
    assert connack(broker.port, "newbie-1", version, "newbie", pw("newbie")) == refused
    connected = connect(broker.port, "bob-1", version, "bob")
    write_passwords(passwords, {"alice": pw("alice"), "newbie": pw("newbie")})
    broker.hangup()
    attempts = itertools.count()
    poll(
        "newbie still refused after SIGHUP",
        lambda: connack(broker.port, f"newbie-{next(attempts) + 2}", version, "newbie", pw("newbie")) == 0,
    )
    assert connack(broker.port, "alice-1", version, "alice", pw("alice")) == 0
    connected.close()


def strata_refuses_to_start(directory: Path, config: str) -> str:
    """Runs `strata serve` with this configuration, which it must refuse:
    returns its stderr."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "strata.toml"
    path.write_text(config)
    args = [str(STRATA_BIN), "serve", "--in-memory", "--admin-listen", "off", "--listen", "127.0.0.1:0", "--config", str(path)]
    out = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT)
    assert "listening on" not in out.stdout, f"strata started ({out.stdout}) with:\n{config}"
    assert out.returncode != 0, out.stderr
    return out.stderr


@pytest.mark.parametrize(
    "line",
    ["frobnicate everything", "user", "topic readwrite a/#/b", "pattern readwrite a/+b", "topic sometimes other/#"],
)
def test_an_acl_line_that_does_not_parse_stops_the_broker_from_starting(tmp_path, kind, line):
    # Mosquitto reads an access word after `topic`, then the topic (which
    # may hold spaces); "sometimes" is not an access word.
    acl = tmp_path / "acl"
    acl.write_text(f"user sue\n{line}\ntopic read news/#\n")
    auth = Auth(acl_file=acl, allow_anonymous=True)
    if kind == "mosquitto":
        assert str(acl) in mosquitto_refuses_to_start(tmp_path / "mosquitto", auth.mosquitto())
    else:
        stderr = strata_refuses_to_start(tmp_path / "strata", auth.strata())
        assert any(str(acl) in l and names_line(l, acl, 2) for l in stderr.splitlines()), stderr


def test_strata_takes_a_sighup_right_after_it_listens(start, passwords):
    # SIGHUP's default action ends a process: the handler must be in place
    # before `listening on` is printed, or a reload sent at once kills it.
    for attempt in range(5):
        write_passwords(passwords, {"alice": pw("alice")})
        broker = start("strata", Auth(password_file=passwords, allow_anonymous=False))
        write_passwords(passwords, {"alice": pw("alice"), "newbie": pw("newbie")})
        broker.hangup()
        tries = itertools.count()
        poll(
            f"start {attempt}: newbie still refused after SIGHUP",
            lambda: connack(broker.port, f"newbie-{next(tries)}", V311, "newbie", pw("newbie")) == 0,
        )


def hangup_and_wait_for_log_line(broker, needle: str) -> str:
    """Sends SIGHUP and returns the first line the broker logs after it that
    contains `needle`."""
    start = len(broker.log_text())
    broker.hangup()

    def find() -> str | None:
        return next((line for line in broker.log_text()[start:].splitlines() if needle in line), None)

    return poll(f"a log line naming {needle}", find)


def names_line(log_line: str, path: Path, number: int) -> bool:
    """Whether a log line names line `number` (the file's path, which may
    hold digits, left out)."""
    rest = log_line.replace(str(path), " ")
    return re.search(rf"(?<!\d){number}(?!\d)", rest) is not None


def test_strata_sighup_with_a_broken_acl_keeps_the_old_rules(start, tmp_path, passwords):
    acl = tmp_path / "acl"
    acl.write_text(RELOAD_ACL)
    write_passwords(passwords, {"admin": pw("admin"), "sue": pw("sue")})
    broker = start("strata", Auth(password_file=passwords, acl_file=acl, allow_anonymous=False))
    admin = connect(broker.port, "admin-1", V311, "admin")
    sue = connect(broker.port, "sue-1", V311, "sue")
    sue.subscribe("news/a", "other/a", "marker/sue-1")

    # Applied, this file would take news/ from sue and give her secret/;
    # its line 7 does not parse. (Mosquitto 2.0.11 logs the file but not
    # the line, and then applies no ACL at all: sue gets every topic.)
    broken = RELOAD_ACL.replace("topic read news/#\n", "topic read secret/#\n") + "frobnicate everything\n"
    assert broken.splitlines()[6] == "frobnicate everything"
    replace(acl, broken)
    line = hangup_and_wait_for_log_line(broker, str(acl))
    assert names_line(line, acl, 7), line

    # (Strata may refuse a subscription no read rule allows: subscribing
    # only now, the old rules or the new decide.)
    sue.subscribe("secret/a")
    for topic in ("news/a", "other/a", "secret/a"):
        admin.publish(topic, b"after the broken reload")
    seen = seen_before_marker(admin, sue, "marker/sue-1")
    assert [t for t, _ in seen] == ["news/a", "other/a"], seen

    # A good file again is taken.
    replace(acl, broken.replace("frobnicate everything\n", ""))
    broker.hangup()

    def reloaded() -> bool:
        sue.subscribe("secret/a")
        admin.publish("secret/a", b"probe")
        return ("secret/a", b"probe") in seen_before_marker(admin, sue, "marker/sue-1")

    poll("the fixed ACL is not applied", reloaded)


def test_strata_sighup_with_a_broken_password_file_keeps_the_old_one(start, version, passwords):
    write_passwords(passwords, {"alice": "old"})
    broker = start("strata", Auth(password_file=passwords, allow_anonymous=False))
    # Line 2 has no colon.
    replace(passwords, pbkdf2_line("alice", "new") + "\nthis line has no colon\n" + pbkdf2_line("bob", "b0b") + "\n")
    line = hangup_and_wait_for_log_line(broker, str(passwords))
    assert names_line(line, passwords, 2), line
    assert connack(broker.port, "alice-1", version, "alice", "old") == 0
    assert connack(broker.port, "alice-2", version, "alice", "new") == BAD_CREDENTIALS[version]
    assert connack(broker.port, "bob-1", version, "bob", "b0b") == BAD_CREDENTIALS[version]


def test_strata_sighup_reloads_bans_and_a_broken_ban_file_keeps_the_old_ones(start, tmp_path, version):
    bans = tmp_path / "bans"
    bans.write_text("client evil\n")
    broker = start("strata", Auth(ban_file=bans, allow_anonymous=True))
    assert connack(broker.port, "evil", version) == BANNED[version]
    assert connack(broker.port, "other", version) == 0

    replace(bans, "client other\n")
    broker.hangup()
    poll("the new ban file is not applied", lambda: connack(broker.port, "other", version) == BANNED[version])
    assert connack(broker.port, "evil", version) == 0

    # Line 3 does not parse.
    replace(bans, "# bans\nclient evil\nfrobnicate everything\n")
    line = hangup_and_wait_for_log_line(broker, str(bans))
    assert names_line(line, bans, 3), line
    assert connack(broker.port, "other", version) == BANNED[version]
    assert connack(broker.port, "evil", version) == 0


# --- 7. the ways around an ACL ---------------------------------------------------------------

BYPASS_ACL = """\
pattern read marker/%c
user admin
topic readwrite #
user watcher
topic read #
user eve
topic read #
topic deny secret/#
topic deny +/secret
topic write open/#
user mallory
topic readwrite open/#
"""


@pytest.fixture
def guarded(start, kind, tmp_path):
    """A broker (of `kind`) with BYPASS_ACL, and its admin connected."""
    acl = tmp_path / "acl"
    acl.write_text(BYPASS_ACL)
    passwords = write_passwords(tmp_path / "passwords", {u: pw(u) for u in ("admin", "watcher", "eve", "mallory")})
    broker = start(kind, Auth(password_file=passwords, acl_file=acl, allow_anonymous=False))
    admin = connect(broker.port, "admin-1", V5, "admin")
    yield broker, admin
    admin.close()


def test_wildcard_subscriptions_do_not_deliver_denied_topics(guarded, version):
    broker, admin = guarded
    eve = connect(broker.port, "eve-1", version, "eve")
    mallory = connect(broker.port, "mallory-1", version, "mallory")
    eve.subscribe("#", "+/secret", "marker/eve-1")
    mallory.subscribe("#", "+/secret", "secret/#", "marker/mallory-1")
    for topic in ("secret/data", "x/secret", "secret", "open/ok", "x/open"):
        admin.publish(topic, b"payload of " + topic.encode())
    assert sorted(t for t, _ in seen_before_marker(admin, eve, "marker/eve-1")) == ["open/ok", "x/open"]
    assert [t for t, _ in seen_before_marker(admin, mallory, "marker/mallory-1")] == ["open/ok"]


def test_shared_subscriptions_are_checked_on_their_filter(guarded, version):
    broker, admin = guarded
    eve = connect(broker.port, "eve-1", version, "eve")
    mallory = connect(broker.port, "mallory-1", version, "mallory")
    eve.subscribe("$share/g/secret/#", "$share/g/+/secret", "$share/g/open/#", "marker/eve-1")
    codes = mallory.subscribe("$share/h/secret/#", "$share/h/open/#", "marker/mallory-1")
    if broker.kind == "strata":
        # No read rule of mallory's could ever match secret/#.
        assert codes[0] == SUBACK_REFUSED[version], codes
    for topic in ("secret/a", "x/secret", "open/a"):
        admin.publish(topic, b"shared")
    assert [t for t, _ in seen_before_marker(admin, eve, "marker/eve-1")] == ["open/a"]
    assert [t for t, _ in seen_before_marker(admin, mallory, "marker/mallory-1")] == ["open/a"]


def test_retained_messages_on_denied_topics_are_not_delivered(guarded, version):
    broker, admin = guarded
    for topic in ("secret/kept", "x/secret", "open/kept"):
        admin.publish(topic, b"retained", retain=True)
    eve = connect(broker.port, "eve-1", version, "eve")
    eve.subscribe("marker/eve-1")
    eve.subscribe("#")
    eve.subscribe("secret/kept")
    got = seen_before_marker(admin, eve, "marker/eve-1")
    assert got == [("open/kept", b"retained")], got
    mallory = connect(broker.port, "mallory-1", version, "mallory")
    mallory.subscribe("marker/mallory-1")
    mallory.subscribe("secret/#")
    mallory.subscribe("+/+")
    got = seen_before_marker(admin, mallory, "marker/mallory-1")
    assert got == [("open/kept", b"retained")], got


def test_a_will_on_a_denied_topic_is_not_published(guarded, version):
    broker, admin = guarded
    watcher = connect(broker.port, "watcher-1", V311, "watcher")
    watcher.subscribe("#")
    # Mallory may not write secret/will: that will must not come out, whether
    # the broker refuses the CONNECT or drops the will.
    first = Client(broker.port, "willer", version, "mallory", pw("mallory"), will=Will("secret/will", b"denied will"))
    assert first.code in (0, NOT_AUTHORIZED[version]), first.code
    first.close()
    # The same client id again: the first connection is over (its will, if
    # any, published) before this one's CONNACK, and its will comes after.
    second = connect(broker.port, "willer", version, "mallory", will=Will("open/will", b"allowed will"))
    second.close()
    before = watcher.until(b"allowed will")
    assert before is not None, "the allowed will was not published"
    assert [(p.topic, p.payload) for p in before] == [], before


def test_topic_aliases_do_not_get_around_the_acl(guarded):
    broker, admin = guarded
    watcher = connect(broker.port, "watcher-1", V311, "watcher")
    watcher.subscribe("#")
    mallory = connect(broker.port, "mallory-1", V5, "mallory")
    codes = [
        mallory.publish("open/a", b"1 open/a sets alias 1", properties={"TopicAlias": 1}),
        mallory.publish("", b"2 alias 1", properties={"TopicAlias": 1}),
        mallory.publish("secret/a", b"3 secret/a sets alias 2", properties={"TopicAlias": 2}),
        mallory.publish("", b"4 alias 2", properties={"TopicAlias": 2}),
        mallory.publish("secret/b", b"5 secret/b resets alias 1", properties={"TopicAlias": 1}),
        mallory.publish("", b"6 alias 1", properties={"TopicAlias": 1}),
        mallory.publish("", b"7 alias 2 at QoS 0", qos=0, properties={"TopicAlias": 2}),
    ]
    got = seen_before_marker(admin, watcher, "marker/watcher-1")
    assert got == [("open/a", b"1 open/a sets alias 1"), ("open/a", b"2 alias 1")], got
    if broker.kind == "strata":
        assert all(c in (0, 0x10) for c in codes[:2]), codes
        assert codes[2:6] == [PUBACK_NOT_AUTHORIZED] * 4, codes
