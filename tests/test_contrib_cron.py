# SPDX-License-Identifier: MIT
"""contrib/cron: the cron.d line, run the way cron runs it.

No cron daemon is started (Debian's cron reads only the system crontabs). The test
takes the job line and the environment lines of the contrib file as cron would: the
command goes to ``/bin/sh -c`` with only the crontab's variables plus HOME, LOGNAME and
SHELL, from HOME, as the user named in the sixth field (when we are root and that user
exists; else as ourselves). Only the install prefix, the state file, the server
address (127.0.0.1 for localhost), its name (imap.test for mail.example.org: the only
name in the Dovecot certificate, so the line's ``--sni`` must pass it on) and the mail
command are replaced. Run twice against a refused port, it
delivers exactly one PROBLEM and prints nothing (so cron mails nothing); a third run
after the port starts answering delivers the RECOVERY.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from support import daemons as d
from support.dovecot import Dovecot

pytestmark = pytest.mark.daemons

CRONTAB = d.CONTRIB / "cron" / "check_imap"
KEY = "imaps-mail.example.org"
STATE_FILE = "/var/lib/nagios/notify_on_change/cron.db"


def parse(text: str) -> tuple[dict[str, str], list[str], str, str]:
    """(environment, schedule fields, user, command) of the one job line."""
    env: dict[str, str] = {}
    jobs = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if sep and name.isidentifier() and " " not in name:
            env[name] = value
        else:
            jobs.append(line)
    assert len(jobs) == 1, jobs
    fields = jobs[0].split(None, 6)
    return env, fields[:5], fields[5], fields[6]


def test_crontab_file_name_is_one_cron_reads() -> None:
    """cron.d files are read only with run-parts names: letters, digits, _ and -."""
    assert re.fullmatch(r"[A-Za-z0-9_-]+", CRONTAB.name), CRONTAB.name


def test_crontab_line_shape() -> None:
    env, schedule, user, command = parse(CRONTAB.read_text())
    assert env["MAILTO"] == '""', "cron would mail the delivery command's stderr"
    assert schedule == ["*/5", "*", "*", "*", "*"]
    assert user == "nagios"
    assert env["SHELL"] == "/bin/sh"
    assert "%" not in command.replace("\\%", ""), "an unescaped % ends a cron command"
    assert command.endswith(">/dev/null"), "cron would mail the plugin output every run"


@pytest.fixture
def account() -> pwd.struct_passwd | None:
    """The crontab's user when we can become it, else None (run as ourselves)."""
    _env, _schedule, user, _command = parse(CRONTAB.read_text())
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        entry = None
    return entry if os.geteuid() == 0 else None


def test_lasting_failure_notifies_once(
    named_dovecot: Dovecot, account: pwd.struct_passwd | None
) -> None:
    main = named_dovecot.named
    root = d.world_dir("cron")
    gate = d.GatedPort((main.host, main.tls_port))
    try:
        if account is not None:
            bindir, python = d.portable_commands(root / "install", account.pw_name)
            recorder = d.make_recorder(root, python)
            home, cwd = account.pw_dir, account.pw_dir if Path(account.pw_dir).is_dir() else "/"
            work = root / "work"
            work.mkdir()
            os.chown(work, account.pw_uid, account.pw_gid)
            os.chown(root, account.pw_uid, account.pw_gid)  # the recorder's log
        else:
            bindir = d.install_commands(root)
            recorder = d.make_recorder(root)
            home, cwd, work = str(root), "/", root / "work"
        env, _schedule, _user, command = parse(CRONTAB.read_text())
        command = d.substitute(command, d.INSTALL_PREFIX, f"{bindir}/", count=2)
        command = d.substitute(command, STATE_FILE, str(work / "notify" / "cron.db"))
        command = d.substitute(command, "-H localhost ", f"-H {d.HOST} ")
        command = d.substitute(
            command,
            "--sni mail.example.org -p 993 ",
            " ".join(("--sni", d.REAL_NAME, "-p", str(gate.port), "--ca-file", f"{main.ca_file} ")),
        )
        command = d.substitute(command, "-- /usr/bin/mail ", f"-- {recorder.script} ")
        env = dict(env, HOME=home, LOGNAME=account.pw_name if account else "cron-test")
        env["XDG_CACHE_HOME"] = str(work / "cache")
        env.pop("MAILTO")

        def cron_run() -> subprocess.CompletedProcess[str]:
            kwargs: dict[str, Any] = {}
            if account is not None:
                kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
            return d.run(["/bin/sh", "-c", command], env=env, cwd=cwd, **kwargs)

        for _ in range(2):
            result = cron_run()
            assert result.returncode == 2, result
            assert result.stdout == result.stderr == "", "cron would mail this"
        calls = recorder.calls()
        assert len(calls) == 1, calls
        assert calls[0]["argv"] == [
            "-s",
            f"PROBLEM: {KEY} is CRITICAL: IMAP CRITICAL - {d.HOST}:{gate.port}: connection refused",
            "root",
        ], calls

        gate.open()
        result = cron_run()
        assert result.returncode == 0, result
        assert result.stdout == result.stderr == "", "cron would mail this"
        calls = recorder.calls()
        assert len(calls) == 2, calls
        assert calls[1]["argv"][1].startswith(f"RECOVERY: {KEY} is OK: IMAP OK - "), calls
    finally:
        gate.close()
        shutil.rmtree(root, ignore_errors=True)
