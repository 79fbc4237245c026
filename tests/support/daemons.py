# SPDX-License-Identifier: MIT
"""Real monitoring daemons for the contrib tests: icinga2, nagios4, nrpe and monit.

Every daemon runs in the foreground as our own child, in its own session, with every
path inside a throwaway directory, on free loopback high ports. It is stopped by its
pid (TERM, bounded wait, then KILL of its process group) by ``Daemon.stop``, which the
tests call from finalizers; an ``atexit`` hook is the last resort. Nothing is looked up
by name and nothing under /etc, /var or /run is read or written.

Also here: a recorder script that stands in for the delivery command (SMS, mail) behind
notify_on_change, a counting wrapper around notify_on_change, a copy of the plugin that
the ``nagios`` user can run (for nrpe), a TCP port that refuses until it is opened as a
proxy to Dovecot (to turn a failure into a recovery), and ``wait_for``: polling with a
deadline, never a fixed sleep.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import grp
import importlib.metadata as md
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from support import pki
from support.dovecot import free_port
from support.processes import command

REPO = Path(__file__).resolve().parents[2]
CONTRIB = REPO / "contrib"
HOST = "127.0.0.1"
REAL_NAME = pki.REAL_NAME  # the only name in the certificate of Dovecot's ``named`` instance

ICINGA2 = Path("/usr/sbin/icinga2")
NAGIOS4 = Path("/usr/sbin/nagios4")
NRPE = Path("/usr/sbin/nrpe")
CHECK_NRPE = Path("/usr/lib/nagios/plugins/check_nrpe")
MONIT = Path("/usr/bin/monit")
PACKAGE = {
    ICINGA2: "icinga2",
    NAGIOS4: "nagios4-core",
    NRPE: "nagios-nrpe-server",
    CHECK_NRPE: "nagios-nrpe-plugin",
    MONIT: "monit",
}
NRPE_USER = "nagios"  # nrpe refuses to run as root and drops to this user
INSTALL_PREFIX = "/opt/check_imap/bin/"  # where the contrib files expect our commands

STOP_TIMEOUT = 10.0
T = TypeVar("T")

__all__ = ["free_port"]


# --------------------------------------------------------------------------- basics


def require(*binaries: Path) -> None:
    """Skip (with the package to install) unless every binary is there and executable."""
    for binary in binaries:
        if not os.access(binary, os.X_OK):
            pytest.skip(
                f"{binary} not installed: run tests/run as root to install {PACKAGE[binary]}"
            )


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"{what} needs root (it switches to the {NRPE_USER} user)")


def readable_file(path: Path) -> bool:
    """A regular file we may read; False, not PermissionError, under a directory we
    cannot enter (Debian's /etc/icinga2 is 0750 nagios:nagios for a non-root user)."""
    try:
        return path.is_file() and os.access(path, os.R_OK)
    except PermissionError:
        return False


def world_dir(prefix: str) -> Path:
    """A fresh directory any user may traverse (pytest's tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix=f"check-imap-{prefix}-"))
    path.chmod(0o755)
    return path


def wait_for(
    probe: Callable[[], T | None],
    what: str,
    timeout: float,
    describe: Callable[[], str] | None = None,
    interval: float = 0.05,
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"\n{describe()}" if describe else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{extra}")
        time.sleep(interval)


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no {path})"
    return f"--- {path}\n" + "\n".join(text.splitlines()[-lines:])


def daemon_env(root: Path) -> dict[str, str]:
    """Our environment plus a private certificate cache (root would use /var/cache)."""
    cache = root / "cache-home"
    cache.mkdir(exist_ok=True)
    return dict(os.environ, XDG_CACHE_HOME=str(cache), LC_ALL="C")


def substitute(text: str, old: str, new: str, count: int | None = 1) -> str:
    """Replace ``old`` and insist it occurred ``count`` times: a contrib file that changed
    shape must fail the test, not be silently tested half-rewritten."""
    found = text.count(old)
    if count is None:
        assert found >= 1, f"{old!r} not found in contrib file"
    else:
        assert found == count, f"{old!r} found {found} times in contrib file, expected {count}"
    return text.replace(old, new)


# --------------------------------------------------------------------------- processes


@dataclass(eq=False)
class Daemon:
    """One daemon in the foreground, our child, stopped by its pid."""

    name: str
    argv: list[str]
    output: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Daemon:
        with open(self.output, "ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        _RUNNING.add(self)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def assert_running(self) -> None:
        assert self.running(), f"{self.name} exited early\n{tail(self.output)}"

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """TERM the pid, wait up to ``timeout``, then KILL its process group."""
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait(timeout)
        _end_group(proc.pid, timeout)
        if self.cwd is not None:
            _end_strays(self.cwd, timeout)
        self.process = None
        _RUNNING.discard(self)
        return code


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is in the group, from /proc."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp
            return True
    return False


def _end_group(pgid: int, timeout: float) -> None:
    """After the daemon exited: end what it left in its process group (our child led a
    new session, so the group id is its pid), e.g. a notification command still running,
    which would otherwise write into the directory after the test removed it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + timeout / 2
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not _group_alive(pgid):
            return


def _strays(root: Path) -> list[int]:
    """Live processes whose command line names ``root`` (a fresh mkdtemp directory, so
    only what our daemon started there): plugin or notification runs that outlived it
    because Nagios runs each job in a process group of its own."""
    marker = str(root).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if state != "Z" and marker in cmdline:
            found.append(int(entry.name))
    return found


def _end_strays(root: Path, timeout: float) -> None:
    """Let such runs finish (they are short), then TERM and KILL them by pid."""
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        pids = _strays(root)
        if sig is not None:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        deadline = time.monotonic() + timeout / 3
        while pids and time.monotonic() < deadline:
            time.sleep(0.02)
            pids = _strays(root)
        if not pids:
            return


_RUNNING: set[Daemon] = set()


@atexit.register
def _stop_leftovers() -> None:
    for daemon in list(_RUNNING):
        daemon.stop()


def run(argv: list[str], timeout: float = 30, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )


# --------------------------------------------------------------------------- our commands


def install_commands(directory: Path) -> Path:
    """``directory/bin`` standing in for /opt/check_imap/bin (root daemons only).

    ``check_imap`` is a symlink to the installed console script. ``notify_on_change`` is a
    wrapper that first appends its argv to ``bin/notify_on_change.calls``, then execs the
    installed one, so a test can count how often a daemon invoked it.
    """
    bindir = directory / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    (bindir / "check_imap").symlink_to(command("check_imap"))
    wrapper = bindir / "notify_on_change"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$*\" >> '{bindir}/notify_on_change.calls'\n"
        f"exec '{command('notify_on_change')}' \"$@\"\n"
    )
    wrapper.chmod(0o755)
    return bindir


def notifier_invocations(bindir: Path) -> int:
    try:
        return len((bindir / "notify_on_change.calls").read_text().splitlines())
    except FileNotFoundError:
        return 0


@dataclass
class Recorder:
    """A delivery command (the SMS or mail sender behind notify_on_change) that records."""

    script: Path
    log: Path

    def calls(self) -> list[dict[str, Any]]:
        try:
            lines = self.log.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines]

    def count(self) -> int:
        return len(self.calls())


def make_recorder(directory: Path, python: str = sys.executable) -> Recorder:
    log = directory / "deliveries.jsonl"
    script = directory / "deliver"
    script.write_text(
        f"#!{python}\n"
        "import json, os, sys\n"
        "keys = ('NOTIFY_TYPE', 'NOTIFY_KEY', 'NOTIFY_STATE', 'NOTIFY_PREVIOUS_STATE',\n"
        "        'NOTIFY_MESSAGE', 'NOTIFY_SUPPRESSED')\n"
        "rec = {'argv': sys.argv[1:], 'env': {k: os.environ.get(k) for k in keys}}\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(json.dumps(rec) + '\\n')\n"
    )
    script.chmod(0o755)
    return Recorder(script, log)


# --------------------------------------------------------------------------- plugin for nrpe


def _user_can(user: str, argv: list[str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return run(argv, timeout=30, user=user, group=pwd.getpwnam(user).pw_gid, extra_groups=[])
    except OSError:
        return None


def _interpreter_for(user: str) -> str:
    """A python of our major.minor that ``user`` can execute (the copied compiled
    extensions need the same ABI). Our own interpreter is tried first; under a 0700
    home (pyenv in /root, a clone in /root) the system python3.X is the fallback."""
    want = f"{sys.version_info[0]}.{sys.version_info[1]}"
    candidates = [
        os.path.realpath(sys.executable),
        os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
        f"/usr/bin/python{want}",
        f"/usr/local/bin/python{want}",
    ]
    for candidate in dict.fromkeys(candidates):
        probe = _user_can(
            user, [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]
        )
        if probe is not None and probe.returncode == 0 and probe.stdout.strip() == want:
            return candidate
    pytest.skip(
        f"no python{want} that the user {user} can execute (tried {', '.join(candidates)}):"
        f" this interpreter lives where {user} cannot read; tests/matrix runs these tests"
        " with Debian's /usr/bin/python3"
    )


def _distribution_tree(name: str, seen: set[str]) -> list[md.Distribution]:
    """``name`` and everything it requires (extras excluded), installed versions."""
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in seen:
        return []
    seen.add(key)
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        return []
    found = [dist]
    for requirement in dist.requires or []:
        if "extra ==" in requirement:
            continue
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        if match:
            found += _distribution_tree(match.group(0), seen)
    return found


def portable_commands(directory: Path, user: str = NRPE_USER) -> tuple[Path, str]:
    """``check_imap`` and ``notify_on_change`` that ``user`` can execute, in
    ``directory/bin``; returns that directory and the interpreter they use.

    nrpe drops to ``nagios`` before it runs a command (and a cron.d line names its user),
    while in CI the plugin lives in the clone's .venv (here: under /root/.pyenv), usually
    below a 0700 home. So the package and its installed dependencies (the files listed in
    their metadata) are copied into the world-readable ``directory/site``, and the
    commands run ``python -m check_imap`` (resp. ``check_imap.notify.main``) with that
    directory on PYTHONPATH and an interpreter of our version that ``user`` can execute.
    """
    import check_imap

    site = directory / "site"
    site.mkdir(parents=True)
    shutil.copytree(
        Path(check_imap.__file__).parent,
        site / "check_imap",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for dist in _distribution_tree("check_imap", set())[1:]:
        for rel in dist.files or []:
            parts = Path(rel).parts
            if not parts or parts[0] == ".." or "__pycache__" in parts:
                continue  # scripts in ../../bin and caches are not needed
            src = Path(str(dist.locate_file(rel)))
            dst = site / rel
            if src.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
    for path in [directory, site, *site.rglob("*")]:
        path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    python = _interpreter_for(user)
    bindir = directory / "bin"
    bindir.mkdir(mode=0o755)
    bindir.chmod(0o755)
    scripts = {
        "check_imap": "-m check_imap",
        "notify_on_change": "-c 'import sys; from check_imap.notify import main; sys.exit(main())'",
    }
    for name, code in scripts.items():
        script = bindir / name
        script.write_text(f"#!/bin/sh\nPYTHONPATH='{site}' exec '{python}' -s {code} \"$@\"\n")
        script.chmod(0o755)
    return bindir, python


def run_as(user: str, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(argv, user=user, group=pwd.getpwnam(user).pw_gid, extra_groups=[], env=env)


# --------------------------------------------------------------------------- gated port


class GatedPort:
    """A loopback port that refuses connections until ``open`` makes it a TCP proxy to
    ``target``: a failing IMAP server that recovers on cue. Counts proxied connections."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.connections = 0
        self._server: socket.socket | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((HOST, self.port))
        server.listen(16)
        self._server = server
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None

    def _accept(self) -> None:
        server = self._server
        while server is not None:
            try:
                client, _ = server.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


# --------------------------------------------------------------------------- Icinga 2


ICINGA2_NODE = "testbed"
ICINGA2_API_USER = "root"
ICINGA2_API_PASSWORD = "testbed-api"


class FakeCheck:
    """A plugin whose exit code is the content of a file (CRITICAL at first), so a test
    turns a service CRITICAL and OK on cue."""

    def __init__(self, root: Path) -> None:
        self.code_file = root / "check.code"
        self.script = root / "fake_check"
        self.script.write_text(
            f"#!/bin/sh\ncode=$(cat '{self.code_file}')\necho \"FAKE state $code\"\nexit $code\n"
        )
        self.script.chmod(0o755)
        self.set(2)

    def set(self, code: int) -> None:
        self.code_file.write_text(f"{code}\n")

    def icinga_objects(self, bindir: Path, host_vars: str = "") -> str:
        """Icinga 2's checker and notifier, the user to notify, and the Host "mail" with
        Service "imap" on this check (every second), notify_on_change from ``bindir``."""
        return f"""
object CheckerComponent "checker" {{ }}
object NotificationComponent "notification" {{ }}
object CheckCommand "fake" {{ command = [ "{self.script}" ] }}
object User "icingaadmin" {{ email = "root@localhost" }}
object Host "mail" {{
  check_command = "dummy"
  address = "127.0.0.1"
  vars.notify_on_change_path = "{bindir}/notify_on_change"
{host_vars}}}
object Service "imap" {{
  host_name = "mail"
  check_command = "fake"
  check_interval = 1s
  retry_interval = 1s
  max_check_attempts = 1
  enable_flapping = false
}}
"""


class Icinga2:
    """An isolated Icinga 2 tree. Paths go in as -D defines (not LocalStateDir/RunDir:
    those are deprecated and re-derive the others under /var)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.etc = root / "etc"
        self.data = root / "lib"
        self.log = root / "log"
        for sub in ("etc", "lib", "log", "cache", "spool/tmp", "initrun"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.api_port = 0
        self.daemon: Daemon | None = None

    def defines(self) -> list[str]:
        r = self.root
        user = pwd.getpwuid(os.geteuid()).pw_name
        group = grp.getgrgid(os.getegid()).gr_name
        pairs = {
            "DataDir": r / "lib",
            "LogDir": r / "log",
            "CacheDir": r / "cache",
            "SpoolDir": r / "spool",
            "InitRunDir": r / "initrun",
            "PidPath": r / "initrun/icinga2.pid",
            "VarsPath": r / "cache/icinga2.vars",
            "ObjectsPath": r / "cache/icinga2.debug",
            "StatePath": r / "lib/icinga2.state",
            "ModAttrPath": r / "lib/modified-attributes.conf",
            "RunAsUser": user,
            "RunAsGroup": group,
        }
        return [f"-D{k}={v}" for k, v in pairs.items()]

    @staticmethod
    def head() -> str:
        return (
            'const PluginDir = "/usr/lib/nagios/plugins"\n'
            'const PluginContribDir = "/usr/lib/nagios/plugins"\n'
            f'const NodeName = "{ICINGA2_NODE}"\n'
            f'const ZoneName = "{ICINGA2_NODE}"\n'
            'const TicketSalt = ""\n'
            "include <itl>\n"
            "include <plugins>\n"
        )

    def write(self, name: str, text: str) -> Path:
        path = self.etc / name
        path.write_text(text)
        return path

    def validate(self, config: Path) -> subprocess.CompletedProcess[str]:
        return run([str(ICINGA2), "daemon", "-C", "-c", str(config), *self.defines()])

    def api_config(self) -> str:
        """ApiListener on a free loopback port, certificates made here (no icinga2 pki)."""
        self.api_port = free_port()
        certs = self.data / "certs"
        ca = pki.make_ca("check_imap icinga2 test CA")
        leaf = pki.make_leaf(ca, (ICINGA2_NODE, "127.0.0.1"), cn=ICINGA2_NODE)
        pki.write_server_files(certs, ICINGA2_NODE, leaf)
        self.api_ca = pki.write_ca(certs, ca)
        return f"""
object Endpoint NodeName {{ }}
object Zone ZoneName {{ endpoints = [ NodeName ] }}
object ApiListener "api" {{
  bind_host = "{HOST}"
  bind_port = {self.api_port}
  accept_config = false
  accept_commands = false
}}
object ApiUser "{ICINGA2_API_USER}" {{
  password = "{ICINGA2_API_PASSWORD}"
  permissions = [ "*" ]
}}
object FileLogger "main-log" {{
  path = LogDir + "/icinga2.log"
  severity = "notice"
}}
"""

    def start_notifying(self, objects: str, env: dict[str, str]) -> Daemon:
        """Validate and start a config of ``objects`` with the contrib notifications.conf."""
        config = self.write(
            "icinga2.conf",
            self.head()
            + self.api_config()
            + f'include "{CONTRIB / "icinga2" / "notifications.conf"}"\n'
            + objects,
        )
        result = self.validate(config)
        assert result.returncode == 0, result.stdout + result.stderr
        return self.start(config, env)

    def start(self, config: Path, env: dict[str, str]) -> Daemon:
        self.daemon = Daemon(
            "icinga2",
            [str(ICINGA2), "daemon", "-c", str(config), *self.defines()],
            self.root / "icinga2.out",
            env=env,
            cwd=self.root,
        ).start()
        return self.daemon

    def api(self, path: str) -> Any:
        ctx = ssl.create_default_context(cafile=str(self.api_ca))
        ctx.check_hostname = False  # the node certificate names the node, not 127.0.0.1
        request = urllib.request.Request(f"https://{HOST}:{self.api_port}/v1/{path}")
        request.add_header("Accept", "application/json")
        token = f"{ICINGA2_API_USER}:{ICINGA2_API_PASSWORD}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(token).decode())
        with urllib.request.urlopen(request, timeout=5, context=ctx) as response:  # noqa: S310
            return json.load(response)

    def objects(self, kind: str, *attrs: str) -> dict[str, dict[str, Any]]:
        """``{name: attrs}`` over the REST API; empty while the API is not up yet."""
        query = "&".join(f"attrs={a}" for a in attrs)
        try:
            data = self.api(f"objects/{kind}?{query}")
        except OSError:
            return {}
        return {item["name"]: item["attrs"] for item in data["results"]}

    def describe(self) -> str:
        return tail(self.root / "icinga2.out") + "\n" + tail(self.log / "icinga2.log")


# --------------------------------------------------------------------------- Nagios 4


class Nagios:
    """An isolated Nagios 4 tree: every path under ``root``, interval_length=1 (seconds)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.var = root / "var"
        for sub in ("var/spool/checkresults", "var/rw"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.config = root / "nagios.cfg"
        self.status = self.var / "status.dat"
        self.daemon: Daemon | None = None

    def write_main(self, cfg_files: list[Path], resources: dict[str, str] | None = None) -> Path:
        resource = self.root / "resource.cfg"
        resource.write_text(
            "".join(
                f"${k}$={v}\n"
                for k, v in (resources or {"USER1": "/usr/lib/nagios/plugins"}).items()
            )
        )
        user = pwd.getpwuid(os.geteuid()).pw_name
        group = grp.getgrgid(os.getegid()).gr_name
        v = self.var
        lines = [f"cfg_file={p}" for p in cfg_files] + [
            f"log_file={v}/nagios.log",
            f"object_cache_file={v}/objects.cache",
            f"precached_object_file={v}/objects.precache",
            f"resource_file={resource}",
            f"status_file={self.status}",
            "status_update_interval=1",
            "retain_state_information=0",
            f"state_retention_file={v}/retention.dat",
            f"temp_file={v}/nagios.tmp",
            f"temp_path={v}",
            f"lock_file={v}/nagios.lock",
            f"check_result_path={v}/spool/checkresults",
            f"command_file={v}/rw/nagios.cmd",
            f"query_socket={v}/rw/nagios.qh",
            "check_external_commands=0",
            f"nagios_user={user}",
            f"nagios_group={group}",
            "interval_length=1",
            "enable_environment_macros=1",
            "enable_notifications=1",
            "use_syslog=0",
            "log_rotation_method=n",
            "max_concurrent_checks=0",
            "check_result_reaper_frequency=1",
            "service_inter_check_delay_method=n",
            "host_inter_check_delay_method=n",
            "allow_empty_hostgroup_assignment=1",
            "illegal_macro_output_chars=`~$&|'\"<>",
        ]
        self.config.write_text("\n".join(lines) + "\n")
        return self.config

    def validate(self) -> subprocess.CompletedProcess[str]:
        return run([str(NAGIOS4), "-v", str(self.config)])

    def start(self, env: dict[str, str]) -> Daemon:
        self.daemon = Daemon(
            "nagios4",
            [str(NAGIOS4), str(self.config)],
            self.root / "nagios.out",
            env=env,
            cwd=self.root,
        ).start()
        return self.daemon

    def services(self) -> dict[str, dict[str, str]]:
        """servicestatus blocks of status.dat by service_description."""
        try:
            text = self.status.read_text(errors="replace")
        except FileNotFoundError:
            return {}
        found = {}
        for block in re.findall(r"^servicestatus \{\n(.*?)^\t\}", text, re.M | re.S):
            fields = dict(line.strip().split("=", 1) for line in block.splitlines() if "=" in line)
            found[fields.get("service_description", "")] = fields
        return found

    def describe(self) -> str:
        return tail(self.root / "nagios.out") + "\n" + tail(self.var / "nagios.log")


# --------------------------------------------------------------------------- NRPE


class Nrpe:
    """nrpe -f with its own config on a free loopback port; it drops to ``nagios``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "nrpe.cfg"
        self.port = 0
        self.daemon: Daemon | None = None
        account = pwd.getpwnam(NRPE_USER)
        os.chown(root, account.pw_uid, account.pw_gid)

    def write(self, commands: str) -> Path:
        self.port = free_port()
        self.config.write_text(
            f"pid_file={self.root}/nrpe.pid\n"
            f"server_address={HOST}\n"
            f"server_port={self.port}\n"
            f"nrpe_user={NRPE_USER}\n"
            f"nrpe_group={NRPE_USER}\n"
            "allowed_hosts=127.0.0.1,::1\n"
            "dont_blame_nrpe=0\n"
            "allow_bash_command_substitution=0\n"
            "command_timeout=20\n"
            "connection_timeout=30\n"
            "debug=1\n"
            f"log_file={self.root}/nrpe.log\n" + commands
        )
        return self.config

    def start(self, env: dict[str, str]) -> Daemon:
        self.daemon = Daemon(
            "nrpe",
            [str(NRPE), "-c", str(self.config), "-f"],
            self.root / "nrpe.out",
            env=env,
            cwd=self.root,
        ).start()
        return self.daemon

    def query(self, name: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return run(
            [str(CHECK_NRPE), "-H", HOST, "-p", str(self.port), "-t", "25", "-c", name],
            timeout=timeout,
        )

    def describe(self) -> str:
        return tail(self.root / "nrpe.out") + "\n" + tail(self.root / "nrpe.log")


# --------------------------------------------------------------------------- monit


class Monit:
    """monit -I with an isolated control file (mode 0600, idfile and statefile inside)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.control = root / "monitrc"
        self.log = root / "monit.log"
        self.daemon: Daemon | None = None

    def write(self, body: str, cycle: int = 1) -> Path:
        r = self.root
        self.control.write_text(
            f"set daemon {cycle}\n"
            f"set logfile {self.log}\n"
            f"set pidfile {r}/monit.pid\n"
            f"set idfile {r}/monit.id\n"
            f"set statefile {r}/monit.state\n" + body
        )
        self.control.chmod(0o600)  # monit refuses a control file others can read
        return self.control

    def validate(self) -> subprocess.CompletedProcess[str]:
        return run([str(MONIT), "-t", "-c", str(self.control)])

    def start(self, env: dict[str, str]) -> Daemon:
        self.daemon = Daemon(
            "monit",
            [str(MONIT), "-I", "-c", str(self.control)],
            self.root / "monit.out",
            env=env,
            cwd=self.root,
        ).start()
        return self.daemon

    def describe(self) -> str:
        return tail(self.root / "monit.out") + "\n" + tail(self.log)
