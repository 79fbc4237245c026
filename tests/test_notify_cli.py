"""notify_on_change end to end: real processes, a recording notifier, a fake clock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.processes import command
from support.recorders import Notifier

MONIT_FAILED = {
    "MONIT_EVENT": "Status failed",
    "MONIT_SERVICE": "imap",
    "MONIT_DESCRIPTION": "status failed (2) -- IMAP CRITICAL - refused | time=0.012s",
    "MONIT_PROGRAM_STATUS": "2",
}
MONIT_OK = {
    "MONIT_EVENT": "Status succeeded",
    "MONIT_SERVICE": "imap",
    "MONIT_DESCRIPTION": "status succeeded (0) -- IMAP OK",
    "MONIT_PROGRAM_STATUS": "0",
}
CHECK_CRIT = "sh -c 'echo \"IMAP CRITICAL - refused | time=1s\"; echo detail; exit 2'"


@pytest.fixture
def n(tmp_path: Path) -> Notifier:
    return Notifier(tmp_path)


def _only_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 3, result
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("notify_on_change: ")
    assert text in result.stderr
    assert "Traceback" not in result.stderr


# --- the monit cycle, recoveries, exit codes ----------------------------------------


def test_monit_every_cycle_gives_one_problem_then_one_recovery(n: Notifier) -> None:
    codes = []
    for batch in range(10):  # 100 invocations, 10 at a time
        n.now = 1_700_000_000.0 + batch * 30
        codes += n.parallel([(n.command("{type}", "{key}"), MONIT_FAILED)] * 10)
    assert codes == [0] * 100
    n.now += 600
    assert n.run(*n.command("{type}"), env=MONIT_OK).returncode == 0
    assert n.run(*n.command("{type}"), env=MONIT_OK).returncode == 0
    records = n.records()
    assert [r["argv"] for r in records] == [["PROBLEM", "imap"], ["RECOVERY"]]
    assert records[0]["env"] == {
        "NOTIFY_KEY": "imap",
        "NOTIFY_STATE": "CRITICAL",
        "NOTIFY_PREVIOUS_STATE": "",
        "NOTIFY_TYPE": "PROBLEM",
        # monit's description without the plugin's perfdata (" | time=...")
        "NOTIFY_MESSAGE": "status failed (2) -- IMAP CRITICAL - refused",
        "NOTIFY_SINCE": "2023-11-14T22:13:20Z",
        "NOTIFY_SUPPRESSED": "",
    }
    assert records[1]["env"]["NOTIFY_PREVIOUS_STATE"] == "CRITICAL"
    assert records[1]["env"]["NOTIFY_STATE"] == "OK"


def test_check_mode_is_transparent(n: Notifier) -> None:
    first = n.run("--check", CHECK_CRIT, *n.command("{key}", "{message}"))
    again = n.run("--check", CHECK_CRIT, *n.command("{key}", "{message}"))
    for result in (first, again):
        assert result.returncode == 2
        assert result.stdout == "IMAP CRITICAL - refused | time=1s\ndetail\n"
        assert result.stderr == ""
    (record,) = n.records()
    key, message = record["argv"]
    assert key.startswith("sh#") and len(key) == 11
    assert "refused" in message and message == "IMAP CRITICAL - refused"
    ok = n.run("--check", "true", "--key", key, *n.command("{type}"))
    assert (ok.returncode, ok.stdout) == (0, "")
    assert n.types() == ["PROBLEM", "RECOVERY"]


def test_check_under_monit_uses_monit_service_as_key(n: Notifier) -> None:
    result = n.run("--check", CHECK_CRIT, *n.command("{key}"), env={"MONIT_SERVICE": "imap"})
    assert result.returncode == 2
    assert [r["argv"] for r in n.records()] == [["imap"]]


def test_check_key_hides_arguments(n: Notifier) -> None:
    n.run("--check", "sh -c 'exit 2' --password=s3cret", *n.command())
    status = n.run("status")
    assert "s3cret" not in status.stdout + repr(n.stored()["keys"])
    assert "sh#" in status.stdout


def test_check_timeout_is_unknown_and_kills_the_group(n: Notifier) -> None:
    pidfile = n.tmp / "grandchild.pid"
    line = f"sh -c 'sleep 60 & echo $! > {pidfile}; wait'"
    start = time.monotonic()
    result = n.run("--check", line, "--check-timeout", "0.5", *n.command("{state}"))
    assert time.monotonic() - start < 10
    assert result.returncode == 3
    assert result.stdout == "UNKNOWN - check timed out after 0.5 s: sh\n"
    assert [r["argv"] for r in n.records()] == [["UNKNOWN"]]
    _assert_dead(int(pidfile.read_text()))


def test_check_that_cannot_run_is_unknown(n: Notifier) -> None:
    result = n.run("--check", "/nonexistent/check_x -H h", *n.command("{state}"))
    assert result.returncode == 3
    assert result.stdout == (
        "UNKNOWN - cannot run check /nonexistent/check_x: No such file or directory\n"
    )


def test_exit_codes(n: Notifier) -> None:
    """0 nothing due or sent, 1 failed and queued, 3 usage: what Icinga and Nagios read."""
    nothing = n.run("--state", "ok", "--key", "k", *n.command())
    assert (nothing.returncode, nothing.stdout, nothing.stderr) == (0, "", "")
    sent = n.run("--state", "2", "--key", "k", *n.command())
    assert (sent.returncode, sent.stdout, sent.stderr) == (0, "", "")
    assert n.run("--state", "DOWN", "--key", "k", *n.command()).returncode == 0
    failing = n.run(
        "--state", "1", "--key", "k", "--retries", "0", *n.command(), env={"REC_EXIT": "1"}
    )
    assert failing.returncode == 1
    assert failing.stderr.splitlines() == [
        f"notify_on_change: k: PROBLEM not delivered: {sys.executable} exited with 1; "
        "retry after 30 s"
    ]
    _only_error(n.run("--state", "bogus", "--key", "k", *n.command()), "unknown state 'bogus'")
    assert n.types() == ["PROBLEM", "PROBLEM"]


# --- reminders, confirmation, budget, flapping, retries -----------------------------


def test_reminders(n: Notifier) -> None:
    args = ("--state", "critical", "--key", "k", "--remind", "1h", *n.command("{type}"))
    assert n.run(*args).returncode == 0
    n.now += 3599
    assert n.run(*args).returncode == 0
    assert n.types() == ["PROBLEM"]
    n.now += 1
    assert n.run(*args).returncode == 0
    assert n.types() == ["PROBLEM", "REMINDER"]


def test_confirmation(n: Notifier) -> None:
    def feed(state: str) -> int:
        n.now += 60
        return n.run("--state", state, "--key", "k", "--confirm", "3", *n.command()).returncode

    assert [feed(s) for s in ("ok", "critical", "critical")] == [0, 0, 0]
    status = n.run("status").stdout
    assert "pending CRITICAL (2x)" in status
    assert n.types() == []
    assert feed("critical") == 0
    assert n.types() == ["PROBLEM"]
    assert [feed(s) for s in ("ok", "ok", "ok")] == [0, 0, 0]
    assert n.types() == ["PROBLEM", "RECOVERY"]


def test_budget_with_summary_and_late_recovery(n: Notifier) -> None:
    def feed(key: str, state: str) -> int:
        opts = ("--state", state, "--key", key, "--max", "2", "--per", "1h")
        return n.run(*opts, *n.command("{type} {key}", "{suppressed}")).returncode

    assert [feed("a", "critical"), feed("b", "critical")] == [0, 0]
    assert [feed("c", "critical"), feed("c", "critical"), feed("d", "warning")] == [0, 0, 0]
    assert [feed("a", "ok"), feed("b", "critical")] == [0, 0]  # a's recovery suppressed
    assert [feed("d", "ok")] == [0]  # d: problem and recovery cancel
    status = json.loads(n.run("status", "--json").stdout)
    assert status["suppressed"] == "3 suppressed: c, d, a"
    n.now += 3601
    assert feed("e", "critical") == 0
    assert feed("a", "ok") == 0  # budget is back and a is still OK
    assert feed("d", "ok") == 0
    assert [r["argv"] for r in n.records()] == [
        ["PROBLEM a", ""],
        ["PROBLEM b", ""],
        ["PROBLEM e", "3 suppressed: c, d, a"],
        ["RECOVERY a", ""],
    ]
    assert n.records()[2]["env"]["NOTIFY_SUPPRESSED"] == "3 suppressed: c, d, a"


def test_flapping(n: Notifier) -> None:
    codes = []
    for state in ["critical", "ok"] * 5:
        n.now += 60
        codes.append(n.run("--state", state, "--key", "k", "--flap", *n.command()).returncode)
    assert n.types() == ["PROBLEM", "RECOVERY"] * 3 + ["FLAPPINGSTART"]
    assert codes == [0] * 10
    assert "flapping" in n.run("status").stdout
    for _ in range(21):
        n.now += 60
        n.run("--state", "ok", "--key", "k", "--flap", *n.command())
    assert n.types()[7:] == ["FLAPPINGSTOP"]
    assert n.records()[-1]["env"]["NOTIFY_STATE"] == "OK"


# --- hostile text -------------------------------------------------------------------

NASTY = (
    "ü 🚨 $(touch PWNED) `touch PWNED`; rm -rf nothing | cat > x\nline 2\t'q' \"dq\" {key} %s \\"
)


def test_messages_arrive_unchanged_and_are_never_executed(n: Notifier) -> None:
    key = "host!svc; $(touch PWNED)"
    result = n.run(
        "--state",
        "critical",
        "--key",
        key,
        "--message",
        NASTY,
        *n.command("{message}", "[{key}]", "{message}{state}"),
    )
    assert result.returncode == 0
    (record,) = n.records()
    assert record["argv"] == [NASTY, f"[{key}]", NASTY + "CRITICAL"]
    assert record["env"]["NOTIFY_MESSAGE"] == NASTY
    assert record["env"]["NOTIFY_KEY"] == key
    assert not any(p.name == "PWNED" for p in n.tmp.rglob("*"))
    assert not Path("PWNED").exists()


def test_status_escapes_control_characters(n: Notifier) -> None:
    n.run("--state", "critical", "--key", "evil\x1b[2J\nkey", *n.command())
    status = n.run("status")
    assert status.returncode == 0
    assert "evil\\x1b[2J\\nkey" in status.stdout
    assert "\x1b" not in status.stdout
    assert json.loads(n.run("status", "--json").stdout)["keys"][0]["key"] == "evil\x1b[2J\nkey"


# --- environment sources ------------------------------------------------------------


def test_nagios_environment(n: Notifier) -> None:
    env = {
        "NAGIOS_HOSTNAME": "mail",
        "NAGIOS_SERVICEDESC": "IMAP",
        "NAGIOS_SERVICESTATE": "WARNING",
        "NAGIOS_SERVICEOUTPUT": "IMAP WARNING - slow",
        "NAGIOS_HOSTSTATE": "UP",
        "NAGIOS_NOTIFICATIONTYPE": "PROBLEM",
    }
    assert n.run(*n.command("{key}|{state}|{message}"), env=env).returncode == 0
    host = {"NAGIOS_HOSTNAME": "mail", "NAGIOS_HOSTSTATE": "DOWN", "NAGIOS_HOSTOUTPUT": "dead"}
    assert n.run(*n.command("{key}|{state}|{message}"), env=host).returncode == 0
    assert [r["argv"] for r in n.records()] == [
        ["mail!IMAP|WARNING|IMAP WARNING - slow"],
        ["mail|CRITICAL|dead"],
    ]


def test_icinga2_environment(n: Notifier) -> None:
    env = {
        "HOSTNAME": "mail",
        "SERVICENAME": "imap",
        "SERVICESTATE": "CRITICAL",
        "SERVICEOUTPUT": "IMAP CRITICAL",
        "NOTIFICATIONTYPE": "PROBLEM",
    }
    assert n.run(*n.command("{key}"), env=env).returncode == 0
    ack = {**env, "NOTIFICATIONTYPE": "ACKNOWLEDGEMENT", "SERVICESTATE": "OK"}
    assert n.run("-v", *n.command("{key}"), env=ack).returncode == 0
    recovery = {**env, "NOTIFICATIONTYPE": "RECOVERY", "SERVICESTATE": "OK"}
    assert n.run(*n.command("{type}"), env=recovery).returncode == 0
    assert [r["argv"] for r in n.records()] == [["mail!imap"], ["RECOVERY"]]


def test_monit_connection_event_and_explicit_key(n: Notifier) -> None:
    env = {"MONIT_EVENT": "Connection failed", "MONIT_SERVICE": "imaps"}
    assert n.run("--key", "mine", *n.command("{key} {state}"), env=env).returncode == 0
    env = {"MONIT_EVENT": "Connection succeeded", "MONIT_SERVICE": "imaps"}
    assert n.run("--key", "mine", *n.command("{key} {state}"), env=env).returncode == 0
    assert [r["argv"] for r in n.records()] == [["mine CRITICAL"], ["mine OK"]]


def test_unrecognisable_environment(n: Notifier) -> None:
    # What Nagios gives without enable_environment_macros=1: the hint names the setting.
    _only_error(n.run(*n.command()), "no state: use --check or --state")
    _only_error(n.run(*n.command()), "set enable_environment_macros=1 in nagios.cfg")
    _only_error(
        n.run(*n.command(), env={"SERVICESTATE": "PENDING", "HOSTNAME": "h", "SERVICEDESC": "s"}),
        "unrecognised state 'PENDING' from Icinga 2",
    )
    _only_error(n.run("--state", "ok", *n.command()), "no key: give --key")


# --- usage --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("--state", "ok", "--key", "k"), "missing '-- COMMAND [ARG...]'"),
        (("--remind", "5x", "--", "true"), "bad duration '5x'"),
        (("--remind", "-5", "--", "true"), "bad duration '-5'"),
        (("--per", "0", "--max", "1", "--", "true"), "must be more than 0"),
        (("--max", "3", "--", "true"), "--max and --per go together"),
        (("--confirm", "0", "--", "true"), "from 1 to 1000000"),
        (("--check", "x", "--state", "ok", "--", "true"), "exclude each other"),
        (("--check", "'unbalanced", "--", "true"), "--check: No closing quotation"),
        (("--no-such-option", "--", "true"), "unrecognized arguments: --no-such-option"),
        (("--remind", "1e3", "--", "true"), "bad duration '1e3'"),
        (("--remind", "inf", "--", "true"), "bad duration 'inf'"),
        (("--remind", "nan", "--", "true"), "bad duration 'nan'"),
        (("--remind", "\u0663s", "--", "true"), "bad duration"),  # Arabic-Indic three
        (("--remind", "99999d", "--", "true"), "more than ten years"),
        (("--command-timeout", "9" * 50, "--", "true"), "bad duration"),
        (("--confirm", "2000000", "--", "true"), "from 1 to 1000000"),
        (("--retries", "11", "--", "true"), "from 0 to 10"),
        (("--retries", "-1", "--", "true"), "from 0 to 10"),
    ],
)
def test_bad_usage_exits_3_with_one_line(n: Notifier, args: tuple[str, ...], text: str) -> None:
    _only_error(n.run(*args), text)
    assert not n.state.exists()


@pytest.mark.parametrize("fake", ["soon", "nan", "inf", "-5", "1e9", "1" * 30, "\u0661\u0662"])
def test_bad_fake_clock_is_a_usage_error(n: Notifier, fake: str) -> None:
    result = n.run("--state", "ok", "--key", "k", *n.command(), env={"NOTIFY_ON_CHANGE_NOW": fake})
    _only_error(result, "NOTIFY_ON_CHANGE_NOW is not a number of epoch seconds")


def test_help_shows_examples_and_exits_0(n: Notifier) -> None:
    result = n.run("--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout
    assert "exit codes:" in result.stdout
    assert "notify_on_change status [--state-file PATH] [--json]" in result.stdout
    assert "notify_on_change flush [--state-file PATH]" in result.stdout
    for flag in ("--version", "-V"):
        version = n.run(flag)
        assert (version.returncode, version.stdout) == (0, "notify_on_change 0.1.0\n")


def test_forget(n: Notifier) -> None:
    n.run("--state", "critical", "--key", "k", *n.command())
    n.run("--state", "critical", "--key", "other", *n.command())
    result = n.run("forget", "k", "--state-file", str(n.state))
    assert (result.returncode, result.stdout) == (0, "forgot k\n")
    assert sorted(n.stored()["keys"]) == ["other"]
    _only_error(n.run("forget", "k"), "no such key: k")
    # forgotten: the next problem is a fresh baseline and notifies again
    assert n.run("--state", "critical", "--key", "k", *n.command()).returncode == 0
    assert n.types() == ["PROBLEM", "PROBLEM", "PROBLEM"]


def test_status_table(n: Notifier) -> None:
    empty = n.run("status")
    assert (empty.returncode, empty.stderr) == (0, "")
    assert empty.stdout == "KEY  STATE  SINCE  CONFIRMED  LAST NOTIFIED  SUPPRESSED  OUTBOX\n"
    assert not n.state.parent.exists()  # status creates nothing
    n.run("--state", "critical", "--key", "k", *n.command())
    lines = n.run("status").stdout.splitlines()
    assert lines[1].split() == [
        "k",
        "CRITICAL",
        "2023-11-14T22:13:20Z",
        "confirmed",
        "2023-11-14T22:13:20Z",
        "(CRITICAL)",
        "0",
        "-",
    ]


def test_console_script_is_installed(n: Notifier) -> None:
    script = command("notify_on_change")  # the venv's, installed from scripts/notify_on_change
    result = subprocess.run(
        [script, "--state", "critical", "--key", "k", *n.command()],
        env=n.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert n.types() == ["PROBLEM"]


def _assert_dead(pid: int) -> None:
    deadline = time.monotonic() + 5
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # A killed child of init may linger as a zombie for a moment.
        stat_file = Path(f"/proc/{pid}/stat")
        if stat_file.exists() and stat_file.read_text().split(") ")[1].startswith("Z"):
            return
        assert time.monotonic() < deadline, f"process {pid} survived"
        time.sleep(0.02)


def test_nul_byte_in_check_output_is_replaced_and_delivered(n: Notifier) -> None:
    plugin = n.tmp / "nul_plugin.py"
    plugin.write_text(
        "import sys\n"
        "sys.stdout.buffer.write(b'IMAP CRITICAL - a\\x00b | t=1s\\nsecond\\n')\n"
        "sys.exit(2)\n"
    )
    check = f"{sys.executable} {plugin}"
    for _ in range(2):  # the second run sees the stored state: no crash, no repeat
        result = n.run("--check", check, "--key", "k", *n.command("{message}"))
        assert result.returncode == 2, result
        assert result.stdout == "IMAP CRITICAL - a\0b | t=1s\nsecond\n"
        assert result.stderr == ""
    (record,) = n.records()
    assert record["argv"] == ["IMAP CRITICAL - a\ufffdb"]
    assert record["env"]["NOTIFY_MESSAGE"] == "IMAP CRITICAL - a\ufffdb"


def test_core_says_new_problem_after_a_recovery_we_never_heard_of(n: Notifier) -> None:
    """Nagios suppressed the RECOVERY (flapping, downtime, notification period): the next
    PROBLEM has a newer LASTSERVICESTATECHANGE, so it is a new problem and is sent."""
    base = {
        "NAGIOS_HOSTNAME": "mail",
        "NAGIOS_SERVICEDESC": "IMAP",
        "NAGIOS_SERVICESTATE": "CRITICAL",
        "NAGIOS_SERVICEOUTPUT": "IMAP CRITICAL - refused",
        "NAGIOS_NOTIFICATIONTYPE": "PROBLEM",
        "NAGIOS_LASTSERVICESTATECHANGE": "1700000000",
    }
    cmd = n.command("{type} {state} {since}")
    assert n.run(*cmd, env=base).returncode == 0
    n.now += 60
    assert n.run(*cmd, env=base).returncode == 0  # a re-notification: same change, no send
    n.now += 600
    second = {**base, "NAGIOS_LASTSERVICESTATECHANGE": "1700000600"}
    assert n.run(*cmd, env=second).returncode == 0
    assert n.run(*cmd, env=second).returncode == 0
    assert [r["argv"] for r in n.records()] == [
        ["PROBLEM CRITICAL 2023-11-14T22:13:20Z"],
        ["PROBLEM CRITICAL 2023-11-14T22:24:20Z"],
    ]
    # The same for Icinga 2, whose contrib NotificationCommand passes the variable.
    icinga = {"HOSTNAME": "h", "SERVICENAME": "s", "SERVICESTATE": "WARNING",
              "NOTIFICATIONTYPE": "PROBLEM", "LASTSERVICESTATECHANGE": "1700000000.5"}  # fmt: skip
    assert n.run(*cmd, env=icinga).returncode == 0
    garbage = {**icinga, "LASTSERVICESTATECHANGE": "nan"}  # not a time: ignored, no crash
    assert n.run(*cmd, env=garbage).returncode == 0
    later = {**icinga, "LASTSERVICESTATECHANGE": "1700000900.25"}
    assert n.run(*cmd, env=later).returncode == 0
    assert n.types() == ["PROBLEM"] * 4
