# SPDX-License-Identifier: MIT
"""Real Dovecot instances on loopback for the integration tests.

Everything lives in one throwaway directory: a PKI made with tests/pki.py, and per
instance a self-contained config (no /etc/dovecot include), ``base_dir``, ``state_dir``,
log file, passwd-file and Maildir. Each instance runs ``dovecot -F`` as our own child in
its own session and is stopped by the pid in ``base_dir/master.pid`` (TERM, bounded wait,
then KILL), never looked up by name. Only 127.0.0.1 (and ::1 when available) is used, on
free high ports; every unused listener gets ``port = 0`` so that Dovecot never opens its
default 143/993.

Instances: ``main`` (plain+STARTTLS and implicit TLS, certificate for localhost) and
``expired``, ``wronghost``, ``soon`` (implicit TLS only). ``LOGIN_SPECS`` are a separate
set for the login, mailbox and quota tests (``quota``, ``clear`` and ``v4only``), started
with ``start(specs=LOGIN_SPECS)`` so that the session fixture keeps its four instances.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime as dt
import grp
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.x509.oid import NameOID

from support import pki

DOVECOT = Path("/usr/sbin/dovecot")
MISSING = "dovecot not installed: run tests/run as root to install dovecot-imapd"

HOST = "127.0.0.1"
USER = "probe"
PASSWORD = "probe-secret"
CUR_MESSAGES = 3
NEW_MESSAGES = 2
MESSAGES = CUR_MESSAGES + NEW_MESSAGES

HOST_NOT_LOOPBACK_EQUAL = "127.0.0.2"
"""Dovecot treats a connection whose remote IP equals its local IP as secured (so never
LOGINDISABLED). Connecting to 127.0.0.2 comes from 127.0.0.1 on Linux: a cleartext
connection as Dovecot sees one from another machine."""

QUOTA_STORAGE_KIB = 1024
QUOTA_MESSAGES = 100
QUOTA_CONFIG = f"""
mail_plugins = $mail_plugins quota
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
}}
plugin {{
  quota = count:User quota
  quota_vsizes = yes
  quota_rule = *:storage={QUOTA_STORAGE_KIB}K:messages={QUOTA_MESSAGES}
}}
"""
"""Dovecot 2.3's quota plugin with the ``count`` backend: GETQUOTAROOT then reports
``STORAGE <used KiB> 1024 MESSAGE <count> 100`` from the mailbox index."""

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
START_ATTEMPTS = 3  # a picked port may be taken before Dovecot binds it
ROOT_UID = 0
NOBODY = 65534  # mail uid as root, as in the reference test bed
PR_SET_PDEATHSIG = 1  # linux/prctl.h

EXPIRED_FROM = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
EXPIRED_UNTIL = dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc)
SOON_DAYS = 10


class DovecotStartError(RuntimeError):
    """Dovecot is installed but an instance did not come up: a test failure, not a skip."""


# --------------------------------------------------------------------------- PKI


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca_file: Path
    ca: pki.Cert
    leaves: dict[str, pki.Cert]

    def crt(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"


def make_pki(directory: Path) -> Pki:
    """CA plus the leaves ``localhost``, ``expired``, ``wronghost``, ``soon`` and
    ``imap.test`` (that name only: see ``NAMED_SPECS``)."""
    ca = pki.make_ca("check_imap dovecot test CA")
    local = ("localhost", "127.0.0.1", "::1")
    leaves = {
        "localhost": pki.make_leaf(ca, local, not_after=pki.NOW + pki.days(365)),
        "expired": pki.make_leaf(ca, local, not_before=EXPIRED_FROM, not_after=EXPIRED_UNTIL),
        "wronghost": pki.make_leaf(ca, ("wrong.example.invalid",)),
        "soon": pki.make_leaf(ca, local, not_after=pki.NOW + pki.days(SOON_DAYS)),
        pki.REAL_NAME: pki.name_only_leaf(ca),
    }
    for name, leaf in leaves.items():
        pki.write_server_files(directory, name, leaf, ())
    return Pki(directory, pki.write_ca(directory, ca), ca, leaves)


# --------------------------------------------------------------------------- ports


def ipv6_loopback() -> bool:
    """Whether ::1 can be bound here (containers sometimes have no IPv6 at all)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def free_port(ipv6: bool = False, host: str = HOST) -> int:
    """A port free on ``host`` (and on ::1 with ``ipv6``) right now; may race, hence retries."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if not ipv6:
            return port
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
                s6.bind(("::1", port))
        except OSError:
            continue
        return port
    raise DovecotStartError("found no port free on both 127.0.0.1 and ::1")


def accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def greets(host: str, port: int, tls: bool, timeout: float = 2.0) -> bool:
    """Whether an IMAP greeting comes (over unverified TLS with ``tls``); then LOGOUT.

    Readiness means a login process that answered a whole session, not just a listening
    socket: Dovecot's master, when TERMed while a fresh imap-login is still setting up,
    waits for that process for about 5 s.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            conn: socket.socket = raw
            if tls:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                conn = ctx.wrap_socket(raw)
            greeting = _read_line(conn)
            with contextlib.suppress(OSError):  # ready anyway; this only ends it politely
                conn.sendall(b"a1 LOGOUT\r\n")
                while conn.recv(4096):  # BYE, tagged OK, then the server closes
                    pass
    except OSError:  # refused, reset, TLS error or timeout: not ready yet
        return False
    return greeting.startswith(b"* OK ")


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


# --------------------------------------------------------------------------- instances


@dataclass(frozen=True)
class Spec:
    name: str
    cert: str  # leaf name in the PKI
    plain: bool  # plain+STARTTLS listener besides implicit TLS
    ipv6: bool = True  # also listen on ::1 when this machine has it
    extra: str = ""  # appended to the config
    host: str = HOST  # the IPv4 address to listen on
    folders: tuple[tuple[str, int], ...] = ()  # extra mailboxes: (name, unseen messages)


SPECS = (
    Spec("main", "localhost", plain=True),
    Spec("expired", "expired", plain=False),
    Spec("wronghost", "wronghost", plain=False),
    Spec("soon", "soon", plain=False),
)

FOLDERS = (("Queue", 0), ("Sent Items", 2), ('Say "hi"', 1), ("Entwürfe", 4))
"""Mailboxes of the ``quota`` instance: empty, a space, a double quote, non-ASCII."""

LOGIN_SPECS = (
    # Quota plugin, extra folders, 127.0.0.1 and ::1.
    Spec("quota", "localhost", plain=True, extra=QUOTA_CONFIG, folders=FOLDERS),
    # Reached from another IP, so LOGINDISABLED in clear; no delay on a failed login.
    Spec(
        "clear",
        "localhost",
        plain=True,
        ipv6=False,
        host=HOST_NOT_LOOPBACK_EQUAL,
        extra="auth_failure_delay = 0\n",
    ),
    # 127.0.0.1 only, never ::1: half of a dual-stack name answers.
    Spec("v4only", "localhost", plain=True, ipv6=False),
)


NAMED_SPECS = (Spec("named", pki.REAL_NAME, plain=True),)
"""For the contrib tests: one instance (plain+STARTTLS and implicit TLS) whose certificate
names only ``imap.test``, reached at 127.0.0.1: a check passes only when the name the
certificate must match is passed on (``--sni``), as against a real server."""


@dataclass(eq=False)  # identity semantics: instances live in the _RUNNING set
class Instance:
    """One running Dovecot. ``plain_port`` is None for TLS-only instances."""

    name: str
    host: str
    tls_port: int
    plain_port: int | None
    ipv6: bool  # also listens on ::1 (same ports)
    ca_file: Path
    cert: pki.Cert
    dir: Path
    config: Path
    base_dir: Path
    state_dir: Path
    log: Path
    stderr: Path
    users: Path
    maildir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def cert_cn(self) -> str:
        """The certificate's subject CN (what check_imap calls it)."""
        return str(self.cert.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)

    @property
    def not_after(self) -> float:
        """End of the certificate's validity, as a POSIX timestamp."""
        return pki.not_after(self.cert).timestamp()

    @property
    def pid_file(self) -> Path:
        return self.base_dir / "master.pid"

    @property
    def ports(self) -> list[int]:
        return [p for p in (self.plain_port, self.tls_port) if p is not None]

    @property
    def addresses(self) -> list[str]:
        return [self.host, "::1"] if self.ipv6 else [self.host]

    def master_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def listening_ports(self) -> set[int]:
        """TCP ports the master holds listening sockets for (Linux /proc; empty elsewhere)."""
        pid = self.master_pid()
        inodes = set()
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:["):
                        inodes.add(link[len("socket:[") : -1])
        ports = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError):
                for row in Path(table).read_text().splitlines()[1:]:
                    cols = row.split()  # local_address is HEXIP:HEXPORT, st 0A is LISTEN
                    if cols[3] == "0A" and cols[9] in inodes:
                        ports.add(int(cols[1].rsplit(":", 1)[1], 16))
        return ports

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for path in (self.stderr, self.log):
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            if text.strip():
                parts.append(f"--- {path}\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(parts) or f"(no output in {self.log} nor {self.stderr})"

    def terminate(self) -> None:
        """Send TERM to the master named in ``master.pid`` (never look it up by name)."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        pid = self.master_pid()
        if pid != proc.pid:  # not written yet, or left from another run: not ours
            pid = proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)

    def wait(self, timeout: float = STOP_TIMEOUT) -> None:
        """Wait for the master to exit after ``terminate()``; KILL its group after ``timeout``."""
        proc = self.process
        if proc is None:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # Our child leads its own process group (start_new_session): take the whole
            # group, so that no login process is left holding a listener.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
        self.process = None
        _RUNNING.discard(self)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """TERM, bounded wait, then KILL. Dovecot's master takes about 1 s to shut down."""
        self.terminate()
        self.wait(timeout)


_RUNNING: set[Instance] = set()


@atexit.register
def _stop_leftovers() -> None:
    """Last resort if a session finalizer never ran (e.g. an internal pytest error)."""
    leftovers = list(_RUNNING)
    for instance in leftovers:
        instance.terminate()
    for instance in leftovers:
        instance.wait()


def _ids() -> tuple[int, int, str, str]:
    """(mail uid, mail gid, internal user, internal group) for the current privileges."""
    if os.geteuid() == ROOT_UID:
        return NOBODY, NOBODY, "dovecot", "dovecot"
    uid, gid = os.geteuid(), os.getegid()
    return uid, gid, pwd.getpwuid(uid).pw_name, grp.getgrgid(gid).gr_name


def _write_maildir(
    maildir: Path, uid: int, gid: int, folders: tuple[tuple[str, int], ...] = ()
) -> None:
    _write_messages(maildir, CUR_MESSAGES, NEW_MESSAGES)
    for name, unseen in folders:
        # Maildir++: ".<name>" with the name in modified UTF-7, as Dovecot 2.3 stores it.
        folder = maildir / f".{encode_mutf7(name)}"
        _write_messages(folder, 0, unseen)
        (folder / "maildirfolder").touch()
    for path in [maildir, *maildir.rglob("*")]:
        os.chown(path, uid, gid)


def encode_mutf7(name: str) -> str:
    """RFC 3501 modified UTF-7, written here independently of check_imap's imapstr."""
    out, pending = [], ""
    for ch in name + "\0":  # the sentinel flushes the last non-ASCII run
        if ch != "\0" and not 0x20 <= ord(ch) <= 0x7E:
            pending += ch
            continue
        if pending:
            b64 = base64.b64encode(pending.encode("utf-16-be")).decode().rstrip("=")
            out.append("&" + b64.replace("/", ",") + "-")
            pending = ""
        if ch != "\0":
            out.append("&-" if ch == "&" else ch)
    return "".join(out)


def _write_messages(maildir: Path, cur: int, new: int) -> None:
    stamp = int(time.time())
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for i in range(cur + new):
        seen = i < cur
        body = (
            f"From: sender{i}@example.invalid\n"
            f"To: {USER}@example.invalid\n"
            f"Subject: test message {i + 1}\n"
            f"Message-ID: <m{i + 1}.check-imap@example.invalid>\n"
            "Date: Thu, 01 Jan 2026 00:00:00 +0000\n"
            "\n"
            f"Body of test message {i + 1}.\n"
        )
        base = f"{stamp}.M{i}P{os.getpid()}.check-imap-test"
        path = maildir / ("cur" if seen else "new") / (f"{base}:2,S" if seen else base)
        path.write_text(body)


def _config(instance: Instance, pki_: Pki, cert: str) -> str:
    uid, _gid, user, group = _ids()
    listen = ", ".join(instance.addresses)
    non_root = ""
    if os.geteuid() != ROOT_UID:
        # Without root Dovecot can neither chroot nor switch users.
        non_root = f"""
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""
    return f"""# generated by tests/dovecot.py; self-contained, nothing from /etc/dovecot
instance_name = check-imap-test-{instance.name}-{os.getpid()}
base_dir = {instance.base_dir}
state_dir = {instance.state_dir}
protocols = imap
listen = {listen}
log_path = {instance.log}
info_log_path = {instance.log}
ssl = yes
ssl_cert = <{pki_.crt(cert)}
ssl_key = <{pki_.key(cert)}
auth_mechanisms = plain login
disable_plaintext_auth = yes
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {instance.users}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {instance.users}
}}
# No stats service: a fresh login process would otherwise wait up to 5 s for its
# handshake when the master is being stopped, and start-up is steadier without it.
stats_writer_socket_path =
mail_location = maildir:{instance.maildir.parent}/%u
first_valid_uid = {min(uid, 1000)}
{non_root}
service imap-login {{
  inet_listener imap {{
    address = {listen}
    port = {instance.plain_port or 0}
  }}
  inet_listener imaps {{
    address = {listen}
    port = {instance.tls_port}
    ssl = yes
  }}
}}
"""


def _free_port(ipv6: bool, host: str) -> int:
    # The one-argument call for the default host: tests replace free_port(ipv6) with a stub.
    return free_port(ipv6) if host == HOST else free_port(ipv6, host)


def _prepare(root: Path, spec: Spec, pki_: Pki, ipv6: bool) -> Instance:
    directory = root / spec.name
    if directory.exists():
        shutil.rmtree(directory)
    uid, gid, _user, _group = _ids()
    with_ipv6 = spec.ipv6 and ipv6
    instance = Instance(
        name=spec.name,
        host=spec.host,
        tls_port=_free_port(with_ipv6, spec.host),
        plain_port=_free_port(with_ipv6, spec.host) if spec.plain else None,
        ipv6=with_ipv6,
        ca_file=pki_.ca_file,
        cert=pki_.leaves[spec.cert],
        dir=directory,
        config=directory / "dovecot.conf",
        base_dir=directory / "run",
        state_dir=directory / "state",
        log=directory / "dovecot.log",
        stderr=directory / "dovecot.stderr",
        users=directory / "users",
        maildir=directory / "mail" / USER,
    )
    for d in (instance.base_dir, instance.state_dir):
        d.mkdir(parents=True)
    instance.users.write_text(f"{USER}:{{PLAIN}}{PASSWORD}:{uid}:{gid}::{instance.maildir}::\n")
    instance.users.chmod(0o644)
    _write_maildir(instance.maildir, uid, gid, spec.folders)
    instance.config.write_text(_config(instance, pki_, spec.cert) + spec.extra)
    return instance


def _die_with_parent() -> None:
    """In the child before exec: TERM when the test process dies, even by SIGKILL or
    os._exit (pytest-timeout's thread method), when no finalizer or atexit can run."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _launch(instance: Instance) -> None:
    linux = sys.platform.startswith("linux")
    with open(instance.stderr, "wb") as err:
        instance.process = subprocess.Popen(
            [str(DOVECOT), "-F", "-c", str(instance.config)],
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            start_new_session=True,  # our TERM only, not the terminal's Ctrl-C
            preexec_fn=_die_with_parent if linux else None,  # noqa: PLW1509
        )
    _RUNNING.add(instance)


def _wait_ready(instances: list[Instance], deadline: float) -> list[Instance]:
    """Poll until every port greets and master.pid is written; return those that died."""
    pending = {(i, addr, port) for i in instances for addr in i.addresses for port in i.ports}
    dead: list[Instance] = []
    while pending:
        for instance in {i for i, _a, _p in pending}:
            if not instance.running():
                dead.append(instance)
                pending = {x for x in pending if x[0] is not instance}
        for item in sorted(pending, key=lambda x: (x[0].name, x[1], x[2])):
            instance, addr, port = item
            tls = port == instance.tls_port
            if instance.master_pid() is not None and greets(addr, port, tls):
                pending.discard(item)
        if not pending:
            break
        if time.monotonic() > deadline:
            names = ", ".join(sorted({f"{i.name} {a}:{p}" for i, a, p in pending}))
            logs = "\n".join(
                _failure(i) for i in sorted({i for i, _a, _p in pending}, key=lambda i: i.name)
            )
            raise DovecotStartError(f"no IMAP greeting within {START_TIMEOUT:g}s: {names}\n{logs}")
        time.sleep(0.01)  # polling interval, not a wait for readiness
    return dead + [i for i in instances if not i.running() and i not in dead]


@dataclass
class Dovecot:
    """The running set of instances, as handed to the tests."""

    root: Path
    pki: Pki
    instances: dict[str, Instance]
    user: str = USER
    password: str = PASSWORD
    messages: int = MESSAGES
    cur_messages: int = CUR_MESSAGES
    new_messages: int = NEW_MESSAGES
    owns_root: bool = False

    @property
    def ca_file(self) -> Path:
        return self.pki.ca_file

    @property
    def main(self) -> Instance:
        return self.instances["main"]

    @property
    def expired(self) -> Instance:
        return self.instances["expired"]

    @property
    def wronghost(self) -> Instance:
        return self.instances["wronghost"]

    @property
    def soon(self) -> Instance:
        return self.instances["soon"]

    @property
    def named(self) -> Instance:
        """The ``NAMED_SPECS`` instance (certificate for ``imap.test`` only)."""
        return self.instances["named"]

    def stop(self) -> None:
        """Stop all instances in parallel (each master takes about 1 s)."""
        for instance in self.instances.values():
            instance.terminate()
        for instance in self.instances.values():
            instance.wait()

    def cleanup(self) -> None:
        self.stop()
        if self.owns_root:
            shutil.rmtree(self.root, ignore_errors=True)


def _failure(instance: Instance) -> str:
    code = instance.process.poll() if instance.process else None
    status = "still running" if code is None else f"exit {code}"
    return f"[{instance.name}] {DOVECOT} -F -c {instance.config}: {status}\n{instance.log_tail()}"


def unavailable() -> str | None:
    """Why these tests cannot run here (a skip reason), or None."""
    if not os.access(DOVECOT, os.X_OK):
        return MISSING
    return None


def make_root() -> Path:
    """A short, world-traversable directory: Dovecot's unprivileged users must reach it
    (pytest's own tmp dirs are 0700), and its UNIX sockets need short paths."""
    root = Path(tempfile.mkdtemp(prefix="check-imap-dovecot-"))
    root.chmod(0o755)
    return root


def start(root: Path | None = None, specs: tuple[Spec, ...] = SPECS) -> Dovecot:
    """Make the PKI and start ``specs`` in parallel; raise DovecotStartError with the log."""
    owns_root = root is None
    root = root or make_root()
    pki_ = make_pki(root / "pki")
    ipv6 = ipv6_loopback()
    bed = Dovecot(root, pki_, {}, owns_root=owns_root)
    try:
        todo = list(specs)
        for attempt in range(1, START_ATTEMPTS + 1):
            batch = [_prepare(root, spec, pki_, ipv6) for spec in todo]
            for instance in batch:
                _launch(instance)
                bed.instances[instance.name] = instance  # so that any failure stops it
            dead = _wait_ready(batch, time.monotonic() + START_TIMEOUT)
            retry = [i for i in dead if "Address already in use" in i.log_tail()]
            fatal = [i for i in dead if i not in retry]
            failed = fatal or (retry if attempt == START_ATTEMPTS else [])
            report = "\n".join(_failure(i) for i in failed)
            for instance in dead:
                instance.stop()
            if failed:
                raise DovecotStartError(f"Dovecot failed to start:\n{report}")
            if not retry:
                break
            todo = [s for s in specs if s.name in {i.name for i in retry}]
    except DovecotStartError as exc:
        bed.stop()  # keep the directory: its logs explain the failure
        raise DovecotStartError(f"{exc}\n(files kept in {root})") from None
    except BaseException:
        bed.cleanup()
        raise
    bed.instances = {s.name: bed.instances[s.name] for s in specs}
    return bed


# --------------------------------------------------------------------------- name resolution

LOCALHOST_ADDRESSES = ("127.0.0.1", "::1")

NO_DUAL_STACK = (
    "localhost does not resolve to both 127.0.0.1 and ::1 here (/etc/hosts lacks "
    "'::1 localhost'), and no private mount namespace (root + unshare) to give it one"
)

_SITECUSTOMIZE = '''\
"""Test stand-in for DNS, loaded by the check_imap under test (PYTHONPATH)."""
import json
import os
import socket

_HOSTS = json.loads(os.environ["CHECK_IMAP_TEST_HOSTS"])
_real = socket.getaddrinfo


def _getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    if host not in _HOSTS:
        return _real(host, port, family, type, proto, flags)
    out = []
    for ip in _HOSTS[host]:
        fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
        if family in (0, fam):
            sockaddr = (ip, int(port), 0, 0) if fam == socket.AF_INET6 else (ip, int(port))
            out.append((fam, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
    if not out:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return out


socket.getaddrinfo = _getaddrinfo
'''


def localhost_dual_stack() -> bool:
    """Whether this machine's resolver gives localhost both 127.0.0.1 and ::1."""
    try:
        infos = socket.getaddrinfo("localhost", None, 0, socket.SOCK_STREAM)
    except OSError:
        return False
    return set(LOCALHOST_ADDRESSES) <= {info[4][0] for info in infos}


_DUAL_STACK_PREFIX: list[tuple[str, ...] | None] = []


def dual_stack_prefix() -> tuple[str, ...] | None:
    """A command prefix under which ``localhost`` resolves to 127.0.0.1 and ::1.

    Nothing if this machine already does that. Otherwise, as root with util-linux's
    unshare, the command runs in a private mount namespace where a throwaway hosts file
    is bind-mounted over /etc/hosts: the real resolver, and the system left untouched.
    None when neither is possible (the caller skips).
    """
    if _DUAL_STACK_PREFIX:
        return _DUAL_STACK_PREFIX[0]
    found: tuple[str, ...] | None = None
    if localhost_dual_stack():
        found = ()
    elif os.geteuid() == 0 and shutil.which("unshare") and shutil.which("getent"):
        scratch = tempfile.mkdtemp(prefix="check-imap-hosts-")
        atexit.register(shutil.rmtree, scratch, True)  # lives as long as the cached prefix
        hosts = Path(scratch) / "hosts"
        hosts.write_text("127.0.0.1 localhost\n::1 localhost\n")
        hosts.chmod(0o644)
        prefix = (
            "unshare",
            "-m",
            "sh",
            "-c",
            'mount --bind "$0" /etc/hosts && exec "$@"',
            str(hosts),
        )
        probe = subprocess.run(
            [*prefix, "getent", "ahosts", "localhost"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        addresses = {line.split()[0] for line in probe.stdout.splitlines() if line.strip()}
        if probe.returncode == 0 and set(LOCALHOST_ADDRESSES) <= addresses:
            found = prefix
    _DUAL_STACK_PREFIX.append(found)
    return found


def stand_in_resolver(directory: Path, hosts: dict[str, list[str]]) -> dict[str, str]:
    """Environment for a check_imap run in which ``hosts`` resolve as given.

    For machines whose /etc/hosts has no ``::1 localhost``: a ``sitecustomize`` replaces
    ``socket.getaddrinfo`` for these names only, so everything from the resolved
    addresses on (connect, per-address sessions, labels, summary) is check_imap's own.
    """
    import json

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(directory), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, "CHECK_IMAP_TEST_HOSTS": json.dumps(hosts)}
