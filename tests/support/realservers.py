"""What the extra real IMAP servers (Courier, Cyrus, Twisted) share in the tests.

Each server runs from a throwaway directory on free loopback high ports, with a
certificate for ``imap.test`` from a throwaway CA, and one user ``probe`` whose INBOX
holds ``SEEN`` seen and ``UNSEEN`` unseen messages (APPENDed through the server's own
IMAP, so its storage is its own business). The processes run in a session of their own;
``Session.stop`` ends every process still in that session by its pid (TERM, bounded
wait, KILL), which also catches the children that put themselves in a process group of
their own (couriertcpd does). Nothing is looked up by name. Readiness is the server's
greeting on every port, never a fixed sleep.

The unpacked Debian packages (Courier, Cyrus) live in ``SERVERS_DIR``, put there by
``tests/install-servers``; without them the tests skip and say so.
"""

from __future__ import annotations

import atexit
import contextlib
import imaplib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support import pki
from support.dovecot import free_port

SERVERS_DIR = Path(os.environ.get("CHECK_IMAP_TEST_SERVERS", "/opt/check_imap-test-servers"))
INSTALL_HINT = "run tests/run (or tests/install-servers) as root on Debian/Ubuntu to unpack it"

HOST = "127.0.0.1"
SNI = "imap.test"
USER = "probe"
PASSWORD = "probe-secret"
SEEN = 3
UNSEEN = 2
MESSAGES = SEEN + UNSEEN

START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
START_ATTEMPTS = 3  # a port picked free may be taken before the server binds it
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class ServerStartError(RuntimeError):
    """The server is installed but did not come up: a test failure, not a skip."""


# --------------------------------------------------------------------------- availability


def missing_trees(*trees: str) -> str | None:
    """A skip reason when an unpacked package tree is not in SERVERS_DIR, else None."""
    for tree in trees:
        if not (SERVERS_DIR / tree / ".unpacked").is_file():
            return f"{tree} not unpacked in {SERVERS_DIR}: {INSTALL_HINT}"
    return None


def require_root(what: str) -> str | None:
    if os.geteuid() != 0:
        return f"{what} needs root (it switches users and mounts a private namespace)"
    return None


def missing_commands(*names: str) -> str | None:
    for name in names:
        if shutil.which(name) is None:
            return f"{name} not found (util-linux)"
    return None


# --------------------------------------------------------------------------- PKI


@dataclass(frozen=True)
class ServerPki:
    dir: Path
    ca_file: Path
    crt: Path  # leaf certificate
    key: Path
    pem: Path  # key + certificate in one file (Courier's TLS_CERTFILE)
    leaf: pki.Cert


def make_pki(directory: Path) -> ServerPki:
    ca = pki.make_ca("check_imap real-servers test CA")
    leaf = pki.make_leaf(ca, (SNI,))
    crt, key = pki.write_server_files(directory, SNI, leaf)
    pem = directory / f"{SNI}.pem"
    pem.write_bytes(leaf.key_pem + leaf.pem)
    pem.chmod(0o600)
    return ServerPki(directory, pki.write_ca(directory, ca), crt, key, pem, leaf)


def make_root(name: str) -> Path:
    """A short, world-traversable directory (servers drop privileges; sockets need short paths)."""
    root = Path(tempfile.mkdtemp(prefix=f"check-imap-{name}-"))
    root.chmod(0o755)
    return root


def write_password_file(directory: Path, password: str = PASSWORD, name: str = "password") -> Path:
    path = directory / name
    path.write_text(password + "\n")
    path.chmod(0o600)
    return path


# --------------------------------------------------------------------------- processes


def _die_with_parent() -> None:
    """In the child before exec: TERM when the test process dies without finalizers."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def session_members(sid: int) -> list[int]:
    """Pids of the live processes in session ``sid`` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            state, _ppid, _pgrp, session = stat[stat.rindex(")") + 2 :].split()[:4]
            if int(session) == sid and state != "Z":
                pids.append(int(entry.name))
    return pids


@dataclass(eq=False)
class Session:
    """One launcher process, our child, leading a session of its own."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str]
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Session:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509
            )
        _RUNNING.add(self)
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return f"(no {self.log})"
        code = self.process.poll() if self.process else None
        status = "running" if code is None else f"exit {code}"
        return f"--- {self.name} ({status}): {self.log}\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """TERM every process of the session, wait up to ``timeout``, then KILL the rest."""
        if self.process is None:
            return
        sid = self.process.pid
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in session_members(sid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                self.process.poll()
                if not session_members(sid):
                    break
                time.sleep(0.02)  # polling interval while the processes exit
            else:
                continue
            break
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        _RUNNING.discard(self)


_RUNNING: set[Session] = set()


@atexit.register
def _stop_leftovers() -> None:
    for session in list(_RUNNING):
        session.stop()


# --------------------------------------------------------------------------- readiness


def greeting(host: str, port: int, tls: bool, timeout: float = 2.0) -> str | None:
    """The server's greeting line over plain or (unverified) TLS, then LOGOUT; None if none."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            conn: socket.socket = raw
            if tls:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                conn = ctx.wrap_socket(raw, server_hostname=SNI)
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    return None
                data += chunk
            with contextlib.suppress(OSError):  # ready anyway; this only ends it politely
                conn.sendall(b"a1 LOGOUT\r\n")
                while conn.recv(4096):
                    pass
    except OSError:  # refused, reset, TLS error or timeout: not ready yet
        return None
    return data.decode("utf-8", "replace").rstrip("\r\n")


def wait_greetings(
    sessions: list[Session], ports: dict[int, bool], describe: Callable[[], str]
) -> dict[int, str]:
    """Poll every port (``port: tls``) until it greets; fail when a session dies or late."""
    deadline = time.monotonic() + START_TIMEOUT
    found: dict[int, str] = {}
    while len(found) < len(ports):
        dead = [s for s in sessions if not s.running()]
        if dead:
            raise ServerStartError("exited before greeting\n" + describe())
        for port, tls in ports.items():
            if port not in found:
                line = greeting(HOST, port, tls)
                if line is not None:
                    found[port] = line
        if len(found) == len(ports):
            break
        if time.monotonic() > deadline:
            waiting = sorted(set(ports) - set(found))
            raise ServerStartError(
                f"no greeting within {START_TIMEOUT:g}s on {waiting}\n" + describe()
            )
        time.sleep(0.02)  # polling interval, not a wait for readiness
    return found


def ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 right now."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = free_port()
        if port not in chosen:
            chosen.append(port)
    return chosen


# --------------------------------------------------------------------------- mailbox content


def message(i: int) -> bytes:
    return (
        f"From: sender{i}@example.invalid\r\n"
        f"To: {USER}@example.invalid\r\n"
        f"Subject: test message {i + 1}\r\n"
        f"Message-ID: <m{i + 1}.check-imap@example.invalid>\r\n"
        "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
        "\r\n"
        f"Body of test message {i + 1}.\r\n"
    ).encode()


def fill_inbox(
    port: int,
    ca_file: Path,
    user: str = USER,
    password: str = PASSWORD,
    seen: int = SEEN,
    unseen: int = UNSEEN,
) -> None:
    """APPEND ``seen`` \\Seen and ``unseen`` unflagged messages to INBOX over implicit TLS."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    with _imaps(port, ctx) as imap:
        imap.login(user, password)
        for i in range(seen + unseen):
            flags = r"(\Seen)" if i < seen else "()"  # Twisted needs the list, even empty
            typ, data = imap.append("INBOX", flags, None, message(i))
            assert typ == "OK", (typ, data)
        imap.logout()


def fill_inbox_or_stop(server: RealServer, port: str = "tls") -> None:
    """``fill_inbox`` on a fresh server; any failure stops it and fails with its log."""
    try:
        fill_inbox(server.ports[port], server.ca_file)
    except (OSError, imaplib.IMAP4.error, AssertionError) as exc:
        logs = "\n".join(s.log_tail() for s in server.sessions)
        server.stop()
        raise ServerStartError(f"{server.name}: filling INBOX failed: {exc!r}\n{logs}") from None


@contextlib.contextmanager
def _imaps(port: int, ctx: ssl.SSLContext) -> Iterator[imaplib.IMAP4_SSL]:
    # imaplib verifies against the host it connects to; our certificate is for imap.test.
    class _Imaps(imaplib.IMAP4_SSL):
        def _create_socket(self, timeout: float | None) -> socket.socket:
            sock = socket.create_connection((HOST, port), timeout or 10)
            return ctx.wrap_socket(sock, server_hostname=SNI)

    imap = _Imaps(SNI, port, ssl_context=ctx, timeout=10)
    try:
        yield imap
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            imap.shutdown()


# --------------------------------------------------------------------------- the handle


@dataclass
class RealServer:
    """A running server as the tests see it. ``ports`` names each listener."""

    name: str
    root: Path
    pki: ServerPki
    ports: dict[str, int]
    greetings: dict[str, str]
    sessions: list[Session]
    password_file: Path
    user: str = USER
    host: str = HOST
    messages: int = MESSAGES
    unseen: int = UNSEEN

    @property
    def ca_file(self) -> Path:
        return self.pki.ca_file

    def tls_args(self) -> list[str]:
        return ["--sni", SNI, "--ca-file", str(self.ca_file)]

    def login_args(self) -> list[str]:
        return ["-u", self.user, "--password-file", str(self.password_file)]

    def stop(self) -> None:
        for session in self.sessions:
            session.stop()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def start_with_retries(name: str, attempt: Callable[[list[Session]], RealServer]) -> RealServer:
    """Run ``attempt`` up to START_ATTEMPTS times (port races). It registers each session it
    starts in the list it is given, so that a failed attempt is stopped before the next."""
    last = ""
    for _ in range(START_ATTEMPTS):
        sessions: list[Session] = []
        try:
            return attempt(sessions)
        except ServerStartError as exc:
            last = str(exc)
        except BaseException:
            for session in sessions:
                session.stop()
            raise
        for session in sessions:
            session.stop()
    raise ServerStartError(f"{name} did not start:\n{last}")


def module_fixture(
    skip_reason: Callable[[], str | None], start: Callable[[], RealServer]
) -> Iterator[RealServer]:
    """Body of a module-scoped fixture: skip with the reason, fail with the log, always stop."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    failure = None
    try:
        server = start()
    except ServerStartError as exc:
        failure = str(exc)
    if failure is not None:  # failed outside `except`, so no chained traceback
        pytest.fail(failure, pytrace=False)
    try:
        yield server
    finally:
        server.cleanup()
