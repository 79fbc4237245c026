"""notify_on_change end to end: real processes, a recording notifier, a fake clock."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

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
    for batch in range(10):  # 100 invocations, 10 at a time (the lock serialises them)
        n.now = 1_700_000_000.0 + batch * 30
        codes += n.parallel([(n.command("{type}", "{key}"), MONIT_FAILED)] * 10)
    assert sorted(codes) == [0] * 99 + [10]
    n.now += 600
    assert n.run(*n.command("{type}"), env=MONIT_OK).returncode == 10
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
    assert "s3cret" not in status.stdout + json.dumps(n.stored())
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


def test_exit_codes_are_distinct(n: Notifier) -> None:
    assert n.run("--state", "ok", "--key", "k", *n.command()).returncode == 0
    assert n.run("--state", "2", "--key", "k", *n.command()).returncode == 10
    assert n.run("--state", "DOWN", "--key", "k", *n.command()).returncode == 0
    failing = n.run("--state", "1", "--key", "k", *n.command(), env={"REC_EXIT": "1"})
    assert failing.returncode == 11
    assert "exited with 1" in failing.stderr
    assert n.run("--state", "bogus", "--key", "k", *n.command()).returncode == 3


# --- reminders, confirmation, budget, flapping, retries -----------------------------


def test_reminders(n: Notifier) -> None:
    args = ("--state", "critical", "--key", "k", "--remind", "1h", *n.command("{type}"))
    assert n.run(*args).returncode == 10
    n.now += 3599
    assert n.run(*args).returncode == 0
    n.now += 1
    assert n.run(*args).returncode == 10
    assert n.types() == ["PROBLEM", "REMINDER"]


def test_confirmation(n: Notifier) -> None:
    def feed(state: str) -> int:
        n.now += 60
        return n.run("--state", state, "--key", "k", "--confirm", "3", *n.command()).returncode

    assert [feed(s) for s in ("ok", "critical", "critical")] == [0, 0, 0]
    status = n.run("status").stdout
    assert "pending CRITICAL (2x)" in status
    assert feed("critical") == 10
    assert [feed(s) for s in ("ok", "ok", "ok")] == [0, 0, 10]
    assert n.types() == ["PROBLEM", "RECOVERY"]


def test_budget_with_summary_and_late_recovery(n: Notifier) -> None:
    def feed(key: str, state: str) -> int:
        opts = ("--state", state, "--key", key, "--max", "2", "--per", "1h")
        return n.run(*opts, *n.command("{type} {key}", "{suppressed}")).returncode

    assert [feed("a", "critical"), feed("b", "critical")] == [10, 10]
    assert [feed("c", "critical"), feed("c", "critical"), feed("d", "warning")] == [0, 0, 0]
    assert [feed("a", "ok"), feed("b", "critical")] == [0, 0]  # a's recovery suppressed
    assert [feed("d", "ok")] == [0]  # d: problem and recovery cancel
    status = json.loads(n.run("status", "--json").stdout)
    assert status["suppressed"] == "3 suppressed: c, d, a"
    n.now += 3601
    assert feed("e", "critical") == 10
    assert feed("a", "ok") == 10  # budget is back and a is still OK
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
    assert codes == [10] * 7 + [0] * 3
    assert "flapping" in n.run("status").stdout
    for _ in range(21):
        n.now += 60
        n.run("--state", "ok", "--key", "k", "--flap", *n.command())
    assert n.types()[7:] == ["FLAPPINGSTOP"]
    assert n.records()[-1]["env"]["NOTIFY_STATE"] == "OK"


def test_failed_command_is_retried_with_backoff(n: Notifier) -> None:
    args = ("--state", "critical", "--key", "k", *n.command("{type}"))
    failed = n.run(*args, env={"REC_EXIT": "7"})
    assert failed.returncode == 11
    assert failed.stderr.endswith("k: PROBLEM not delivered; retry after 30 s\n")
    assert n.run(*args).returncode == 0  # backing off: not run
    assert len(n.records()) == 1
    n.now += 30
    assert n.run(*args).returncode == 10
    assert n.run(*args).returncode == 0
    assert n.types() == ["PROBLEM", "PROBLEM"]
    assert n.stored()["data"]["keys"]["k"]["notified"] == "CRITICAL"


def test_command_timeout_kills_its_process_group(n: Notifier) -> None:
    pidfile = n.tmp / "child.pid"
    cmd = ["--", "sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"]
    start = time.monotonic()
    result = n.run("--state", "critical", "--key", "k", "--command-timeout", "0.5", *cmd)
    assert time.monotonic() - start < 10
    assert result.returncode == 11
    assert "timed out after 0.5 s and was killed" in result.stderr
    _assert_dead(int(pidfile.read_text()))
    assert n.stored()["data"]["keys"]["k"]["notified"] is None


def test_missing_command_is_a_failed_delivery(n: Notifier) -> None:
    result = n.run("--state", "critical", "--key", "k", "--", "/nonexistent/notifier")
    assert result.returncode == 11
    assert "cannot run /nonexistent/notifier: No such file or directory" in result.stderr


# --- concurrency and crashes --------------------------------------------------------


def test_fifty_concurrent_invocations_on_one_key_notify_once(n: Notifier) -> None:
    opts = ["--state", "critical", "--key", "k", "--lock-timeout", "60", *n.command()]
    codes = n.parallel([(opts, {})] * 50)
    assert sorted(codes) == [0] * 49 + [10]
    assert len(n.records()) == 1


def test_fifty_concurrent_keys_lose_nothing(n: Notifier) -> None:
    calls: list[tuple[list[str], dict[str, str]]] = [
        (["--state", "critical", "--key", f"k{i}", "--lock-timeout", "60", *n.command()], {})
        for i in range(50)
    ]
    assert n.parallel(calls) == [10] * 50
    assert sorted(r["env"]["NOTIFY_KEY"] for r in n.records()) == sorted(f"k{i}" for i in range(50))
    keys = n.stored()["data"]["keys"]
    assert sorted(keys) == sorted(f"k{i}" for i in range(50))
    assert all(k["notified"] == "CRITICAL" for k in keys.values())


def test_kill_9_mid_run_leaves_valid_state_and_next_run_retries(n: Notifier) -> None:
    assert n.run("--state", "critical", "--key", "old", *n.command()).returncode == 10
    before = n.state.read_text()
    started = n.tmp / "started"
    proc = n.popen(
        "--state",
        "critical",
        "--key",
        "k",
        *n.command(),
        env={"REC_SLEEP": "60", "REC_STARTED": str(started)},
    )
    deadline = time.monotonic() + 30
    while not started.exists() or not started.read_text():  # the command is running
        assert time.monotonic() < deadline, "the notifier never started"
        assert proc.poll() is None
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the wrapper, holding the lock
    # The command runs in its own session and survives; it holds the output pipes.
    os.kill(int(started.read_text()), signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert n.state.read_text() == before
    assert [p.name for p in n.state.parent.iterdir() if ".tmp." in p.name] == []
    retry = n.run("--state", "critical", "--key", "k", "--lock-timeout", "5", *n.command())
    assert retry.returncode == 10  # not recorded as sent, so sent again
    assert [r["env"]["NOTIFY_KEY"] for r in n.records()] == ["old", "k", "k"]
    assert n.stored()["data"]["keys"]["k"]["notified"] == "CRITICAL"


def test_lock_timeout(n: Notifier) -> None:
    n.state.parent.mkdir(mode=0o700)
    fd = os.open(str(n.state) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        plain = n.run("--state", "critical", "--key", "k", "--lock-timeout", "0.3", *n.command())
        _only_error(plain, "is locked by another notify_on_change; gave up after 0.3 s")
        check = n.run("--check", CHECK_CRIT, "--lock-timeout", "0.3", *n.command())
        assert check.returncode == 2
        assert check.stdout == "IMAP CRITICAL - refused | time=1s\ndetail\n"
        assert "is locked by another notify_on_change" in check.stderr
    finally:
        os.close(fd)
    assert n.records() == []


# --- state file trouble -------------------------------------------------------------


def test_corrupt_state_is_moved_aside_without_phantom_recovery(n: Notifier) -> None:
    assert n.run("--state", "critical", "--key", "k", *n.command()).returncode == 10
    n.state.write_text('{"version": 1, "data": {"keys": {"k": "half-writ')
    result = n.run("--state", "ok", "--key", "k", *n.command())
    assert result.returncode == 0
    aside = f"{n.state}.corrupt-20231114T221320Z"
    assert result.stderr == (
        f"notify_on_change: state file {n.state} was corrupt (not valid JSON: "
        "Unterminated string starting at: line 1 column 39 (char 38)); "
        f"moved to {aside}; keys start afresh\n"
    )
    assert Path(aside).read_text().startswith('{"version": 1')
    assert len(n.records()) == 1  # no recovery for a problem we forgot
    assert n.run("--state", "critical", "--key", "k", *n.command()).returncode == 10


def test_state_of_wrong_shape_is_moved_aside(n: Notifier) -> None:
    n.state.parent.mkdir(mode=0o700)
    n.state.write_text('{"version": 1, "data": {"keys": {"k": {"observed": "OK"}}}}')
    result = n.run("--state", "critical", "--key", "k", *n.command())
    assert result.returncode == 10
    assert "was corrupt (unexpected content" in result.stderr


def _drop_root_privileges() -> tuple[str, ...]:
    """As root, file modes are not enforced; setpriv removes that power."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root without setpriv cannot test a read-only directory")
    return (setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--")


def test_read_only_state_directory(n: Notifier) -> None:
    assert n.run("--state", "ok", "--key", "k", *n.command()).returncode == 0
    prefix = _drop_root_privileges()
    n.state.parent.chmod(0o500)
    try:
        plain = n.run("--state", "critical", "--key", "k", *n.command(), prefix=prefix)
        _only_error(plain, f"state directory {n.state.parent} is not writable")
        check = n.run("--check", CHECK_CRIT, "--key", "k", *n.command(), prefix=prefix)
        assert (check.returncode, check.stdout) == (
            2,
            "IMAP CRITICAL - refused | time=1s\ndetail\n",
        )
        assert (
            check.stderr == f"notify_on_change: state directory {n.state.parent} is not writable\n"
        )
    finally:
        n.state.parent.chmod(0o700)
    assert n.records() == []  # nothing sent that could not be recorded


def test_world_writable_state_is_refused(n: Notifier) -> None:
    n.run("--state", "ok", "--key", "k", *n.command())
    n.state.chmod(0o666)
    result = n.run("--state", "critical", "--key", "k", *n.command())
    _only_error(result, "it is world-writable")
    assert n.records() == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_state_of_another_user_is_refused(n: Notifier) -> None:
    n.run("--state", "ok", "--key", "k", *n.command())
    os.chown(n.state, 65534, 65534)
    _only_error(n.run("--state", "critical", "--key", "k", *n.command()), "owned by uid 65534")


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
    assert result.returncode == 10
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
    assert n.run(*n.command("{key}|{state}|{message}"), env=env).returncode == 10
    host = {"NAGIOS_HOSTNAME": "mail", "NAGIOS_HOSTSTATE": "DOWN", "NAGIOS_HOSTOUTPUT": "dead"}
    assert n.run(*n.command("{key}|{state}|{message}"), env=host).returncode == 10
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
    assert n.run(*n.command("{key}"), env=env).returncode == 10
    ack = {**env, "NOTIFICATIONTYPE": "ACKNOWLEDGEMENT", "SERVICESTATE": "OK"}
    assert n.run("-v", *n.command("{key}"), env=ack).returncode == 0
    recovery = {**env, "NOTIFICATIONTYPE": "RECOVERY", "SERVICESTATE": "OK"}
    assert n.run(*n.command("{type}"), env=recovery).returncode == 10
    assert [r["argv"] for r in n.records()] == [["mail!imap"], ["RECOVERY"]]


def test_monit_connection_event_and_explicit_key(n: Notifier) -> None:
    env = {"MONIT_EVENT": "Connection failed", "MONIT_SERVICE": "imaps"}
    assert n.run("--key", "mine", *n.command("{key} {state}"), env=env).returncode == 10
    env = {"MONIT_EVENT": "Connection succeeded", "MONIT_SERVICE": "imaps"}
    assert n.run("--key", "mine", *n.command("{key} {state}"), env=env).returncode == 10
    assert [r["argv"] for r in n.records()] == [["mine CRITICAL"], ["mine OK"]]


def test_unrecognisable_environment(n: Notifier) -> None:
    _only_error(n.run(*n.command()), "no state: use --check or --state")
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
        (("--confirm", "0", "--", "true"), "at least 1"),
        (("--check", "x", "--state", "ok", "--", "true"), "exclude each other"),
        (("--check", "'unbalanced", "--", "true"), "--check: No closing quotation"),
        (("--no-such-option", "--", "true"), "unrecognized arguments: --no-such-option"),
        (("--state", "ok", "--key", "k", "--", "true"), "NOTIFY_ON_CHANGE_NOW is not a number"),
    ],
)
def test_bad_usage_exits_3_with_one_line(n: Notifier, args: tuple[str, ...], text: str) -> None:
    env = {"NOTIFY_ON_CHANGE_NOW": "soon"} if "NOW" in text else None
    _only_error(n.run(*args, env=env), text)


def test_help_shows_examples_and_exits_0(n: Notifier) -> None:
    result = n.run("--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout
    assert "exit codes:" in result.stdout
    assert "notify_on_change status [--state-file PATH] [--json]" in result.stdout
    version = n.run("--version")
    assert (version.returncode, version.stdout) == (0, "notify_on_change 0.1.0\n")


def test_forget(n: Notifier) -> None:
    n.run("--state", "critical", "--key", "k", *n.command())
    n.run("--state", "critical", "--key", "other", *n.command())
    result = n.run("forget", "k", "--state-file", str(n.state))
    assert (result.returncode, result.stdout) == (0, "forgot k\n")
    assert sorted(n.stored()["data"]["keys"]) == ["other"]
    _only_error(n.run("forget", "k"), "no such key: k")
    # forgotten: the next problem is a fresh baseline and notifies again
    assert n.run("--state", "critical", "--key", "k", *n.command()).returncode == 10


def test_status_table(n: Notifier) -> None:
    assert n.run("status").stdout == "KEY  STATE  SINCE  CONFIRMED  LAST NOTIFIED  SUPPRESSED\n"
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
    ]


def test_console_script_is_installed(n: Notifier) -> None:
    script = shutil.which("notify_on_change")
    if script is None:
        pytest.skip("notify_on_change is not on PATH")
    result = subprocess.run(
        [script, "--state", "critical", "--key", "k", *n.command()],
        env=n.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 10, result.stderr


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
