# SPDX-License-Identifier: MIT
"""contrib/monit against a real monit 5.33 (Debian's monit package).

- ``monit -t`` accepts the contrib control file (with only the harness's set lines
  added) and rejects a broken copy.
- A short ``monit -I`` run (``set daemon 1``) with the contrib check program pointed at
  a port that refuses, then turns into a proxy to the real Dovecot (whose certificate
  names only imap.test: the contrib line's ``--sni`` must pass the name on): monit execs
  notify_on_change every cycle while the check fails ("repeat every 1 cycle", counted by
  a wrapper), but the quota-limited notifier behind it runs exactly once for the
  problem, once more for the recovery, and not again while the check keeps passing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from support import daemons as d
from support.dovecot import Dovecot

pytestmark = pytest.mark.daemons

MONITRC = d.CONTRIB / "monit" / "imap.monitrc"
STATE_FILE = "/var/lib/notify_on_change/monit.db"
SENDER = "/usr/local/bin/send-sms"


@pytest.fixture
def monit(tmp_path: Path) -> d.Monit:
    d.require(d.MONIT)
    return d.Monit(tmp_path)


def installed(root: Path) -> str:
    """The contrib file with /opt/check_imap/bin pointing at our commands: monit -t
    insists that the programs exist."""
    bindir = d.install_commands(root)
    return d.substitute(MONITRC.read_text(), d.INSTALL_PREFIX, f"{bindir}/", count=3)


def test_control_file_syntax(monit: d.Monit) -> None:
    monit.write(installed(monit.root))
    result = monit.validate()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Control file syntax OK" in result.stdout, result.stdout


def test_broken_copy_fails_syntax_check(monit: d.Monit) -> None:
    monit.write(
        d.substitute(
            installed(monit.root), "        repeat every 1 cycle\n", "        repeat every cycle\n"
        )
    )
    result = monit.validate()
    assert result.returncode != 0, result.stdout
    assert "syntax error" in (result.stdout + result.stderr), result.stdout + result.stderr


def test_notifier_once_per_change(named_dovecot: Dovecot) -> None:
    d.require(d.MONIT)
    main = named_dovecot.named
    root = d.world_dir("monit")
    gate = d.GatedPort((main.host, main.tls_port))
    monit = d.Monit(root)
    try:
        text = installed(root)
        bindir = root / "bin"
        recorder = d.make_recorder(root)
        text = d.substitute(text, STATE_FILE, str(root / "notify" / "state.db"), count=2)
        text = d.substitute(text, SENDER, str(recorder.script), count=3)  # one in a comment
        text = d.substitute(
            text,
            "-H localhost --sni mail.example.org -p 993 ",
            " ".join(
                (
                    "-H",
                    d.HOST,
                    "--sni",
                    d.REAL_NAME,
                    "-p",
                    str(gate.port),
                    "--ca-file",
                    f"{main.ca_file} ",
                )
            ),
        )
        monit.write(text)
        result = monit.validate()
        assert result.returncode == 0, result.stdout + result.stderr
        daemon = monit.start(d.daemon_env(root))

        def describe() -> str:
            return (
                monit.describe()
                + f"\nnotify_on_change runs: {d.notifier_invocations(bindir)}"
                + f"\ndeliveries: {recorder.calls()}"
            )

        def invoked(n: int) -> bool:
            daemon.assert_running()
            return d.notifier_invocations(bindir) >= n

        # Failing: monit execs notify_on_change every cycle; one delivery.
        d.wait_for(lambda: invoked(4), "4 execs of notify_on_change", 20, describe)
        calls = recorder.calls()
        assert len(calls) == 1, describe()
        assert calls[0]["env"]["NOTIFY_TYPE"] == "PROBLEM", calls
        assert calls[0]["env"]["NOTIFY_KEY"] == "imap", calls
        assert calls[0]["env"]["NOTIFY_STATE"] == "CRITICAL", calls
        message = calls[0]["argv"][0]
        assert message.startswith("PROBLEM: imap is CRITICAL: "), message
        assert f"IMAP CRITICAL - {d.HOST}:{gate.port}: connection refused" in message, message

        # Recovery: one more delivery.
        gate.open()
        d.wait_for(lambda: recorder.count() >= 2, "the recovery delivery", 20, describe)
        calls = recorder.calls()
        assert len(calls) == 2, describe()
        assert calls[1]["env"]["NOTIFY_TYPE"] == "RECOVERY", calls
        assert calls[1]["env"]["NOTIFY_STATE"] == "OK", calls
        assert calls[1]["env"]["NOTIFY_PREVIOUS_STATE"] == "CRITICAL", calls
        assert "IMAP OK - " in calls[1]["argv"][0], calls

        # Passing on: further checks, no further exec and no delivery.
        runs = d.notifier_invocations(bindir)
        seen = gate.connections
        d.wait_for(lambda: gate.connections >= seen + 3, "3 more passing checks", 20, describe)
        assert d.notifier_invocations(bindir) == runs, describe()
        assert recorder.count() == 2, describe()
    finally:
        code = monit.daemon.stop() if monit.daemon else 0
        gate.close()
        shutil.rmtree(root, ignore_errors=True)
    assert code == 0, "monit did not stop cleanly"
