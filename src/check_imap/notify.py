"""notify_on_change: run a notification command only when something changed.

Stdlib only and few imports at start-up: monit or cron may call this every cycle,
and the usual "nothing changed" run must cost little more than starting Python.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from check_imap import __version__, policy
from check_imap.state import CorruptState, StateError, StateFile, default_path
from check_imap.text import help_width

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms)
if TYPE_CHECKING:
    from typing import Any, NoReturn

PROG = "notify_on_change"
EXIT_NOTHING = 0  # nothing was due, or it was held back (budget, retry back-off)
EXIT_ERROR = 3  # usage, environment, lock or state-file problem
EXIT_SENT = 10  # the command ran and exited 0
EXIT_FAILED = 11  # the command failed or timed out; it will be retried
UNKNOWN_EXIT = 3  # what a Nagios plugin exits with when it cannot tell
_SKIPPED_TYPES = (
    "ACKNOWLEDGEMENT",
    "CUSTOM",
    "DOWNTIMESTART",
    "DOWNTIMEEND",
    "DOWNTIMEREMOVED",
    "DOWNTIMECANCELLED",
    "FLAPPINGSTART",
    "FLAPPINGSTOP",
    "FLAPPINGEND",
    "FLAPPINGDISABLED",
)

EPILOG = """\
examples:
  # monit / cron / NRPE: wrap the check; its output and exit code pass through
  notify_on_change --check '/usr/lib/nagios/plugins/check_imap -H mail.example' \\
      --confirm 2 --remind 4h -- /usr/local/bin/sms '{type} {key} is {state}: {message}'

  # monit exec action (state from MONIT_EVENT, MONIT_PROGRAM_STATUS, MONIT_SERVICE)
  if status != 0 then exec "/usr/local/bin/notify_on_change -- /usr/local/bin/mailme"
      else if succeeded then exec "/usr/local/bin/notify_on_change -- /usr/local/bin/mailme"

  # Icinga 2 / Nagios notification command: dedupe and cap at 10 per hour overall
  notify_on_change --max 10 --per 1h -- /etc/icinga2/scripts/mail-service-notification.sh

  # explicit state and key, flap detection
  notify_on_change --state "$RESULT" --key backup --flap -- logger -t backup '{message}'

  notify_on_change status --json
  notify_on_change forget 'mail.example!IMAP'

placeholders in COMMAND's arguments (also in the environment as NOTIFY_<NAME>):
  {key} {state} {previous} {type} {message} {since} {suppressed}
  NOTIFY_TYPE is PROBLEM, RECOVERY, REMINDER, FLAPPINGSTART or FLAPPINGSTOP.
  {suppressed} reads "3 suppressed: key1, key2" after a budget stop, else "".
  COMMAND runs without a shell; values are never interpreted.

exit codes:
  0 nothing to do   10 notification sent   11 command failed or timed out (retried later)
  3 usage, lock or state-file error.  With --check: always the check's exit code
  (3 and an "UNKNOWN - ..." line if the check cannot run or times out).

state file: $NOTIFY_ON_CHANGE_STATE, else $XDG_STATE_HOME/notify_on_change/state.json
  (~/.local/state/...), or /var/lib/notify_on_change/state.json for root.
testing aid: NOTIFY_ON_CHANGE_NOW=<epoch seconds> replaces the clock.
"""


class UsageError(Exception):
    """Bad input: one line on stderr, exit 3."""


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, width=help_width())  # no shutil import


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse would exit 2; here every input error is a 3.
        raise UsageError(message)


# --- input parsing ------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """'30s', '15m', '4h', '1d' or plain seconds; ValueError on anything else."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:], 0)
    number = value[:-1] if unit else value
    unit = unit or 1
    if not number or number.count(".") > 1 or not number.replace(".", "").isdigit():
        raise ValueError(f"bad duration {text!r} (use e.g. 30s, 15m, 4h, 1d or seconds)")
    return float(number) * unit


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_duration(text: str) -> float:
    value = _duration(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
    return value


def _count(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1: {text!r}")
    return int(text)


def _state_arg(text: str) -> str:
    state = policy.parse_state(text)
    if state is None:
        raise argparse.ArgumentTypeError(
            f"unknown state {text!r} (OK, WARNING, CRITICAL, UNKNOWN, UP, DOWN or 0-3)"
        )
    return state


class EnvInfo:
    """What the environment of monit, Nagios or Icinga 2 says about one result."""

    __slots__ = ("key", "message", "raw_state", "skip", "source")

    def __init__(self, source: str, raw_state: str, key: str, message: str, skip: str) -> None:
        self.source, self.raw_state, self.key, self.message = source, raw_state, key, message
        self.skip = skip  # why this call is not a state observation (e.g. ACKNOWLEDGEMENT)

    @property
    def state(self) -> str | None:
        return policy.parse_state(self.raw_state)


_MONIT_OK_ENDINGS = ("succeeded", " ok", "recovery", " up", "not changed")


def _monit_state(event: str, status: str) -> str:
    code: int | None = None
    if status.strip().lstrip("-").isdigit():
        code = int(status)
    text = event.strip().lower()
    if not text:
        return policy.state_from_exit(code) if code is not None else ""
    if text.endswith(_MONIT_OK_ENDINGS) or text == "exists":
        return policy.OK
    # monit calls every failure "failed"; the program's exit code says how bad.
    if code is not None and code > 0:
        return policy.state_from_exit(code)
    return policy.CRITICAL


def from_environment(env: dict[str, str]) -> EnvInfo | None:
    """The first recognised source: monit exec, Nagios macros, Icinga 2 env; else None."""
    event, status = env.get("MONIT_EVENT", ""), env.get("MONIT_PROGRAM_STATUS", "")
    if event or status:
        skip = "monit action event" if event.strip().lower() == "action done" else ""
        state = _monit_state(event, status)
        # For `check program` monit appends the plugin's whole output, perfdata included:
        # too long for an SMS, and no reader wants it. Keep what comes before " | ".
        description = env.get("MONIT_DESCRIPTION", "").split(" | ", 1)[0].rstrip()
        return EnvInfo("monit", state, env.get("MONIT_SERVICE", ""), description, skip)
    for source, prefix in (("Nagios", "NAGIOS_"), ("Icinga 2", "")):
        service_state = env.get(prefix + "SERVICESTATE", "")
        host_state = env.get(prefix + "HOSTSTATE", "")
        if not (service_state or host_state):
            continue
        host = env.get(prefix + "HOSTNAME", "")
        service = env.get(prefix + "SERVICEDESC", "") or env.get(prefix + "SERVICENAME", "")
        kind = env.get(prefix + "NOTIFICATIONTYPE", "").strip().upper()
        skip = f"notification type {kind}" if kind in _SKIPPED_TYPES else ""
        if service_state and service:
            output = env.get(prefix + "SERVICEOUTPUT", "")
            return EnvInfo(source, service_state, f"{host}!{service}", output, skip)
        return EnvInfo(source, host_state, host, env.get(prefix + "HOSTOUTPUT", ""), skip)
    return None


def check_key(argv: list[str]) -> str:
    """A key for --check without --key: program name plus a checksum of the whole line.

    The checksum keeps passwords given on the check's command line out of the key,
    which appears in `status` and in the notification.
    """
    import zlib

    line = "\0".join(argv).encode("utf-8", "surrogateescape")
    return f"{os.path.basename(argv[0])}#{zlib.crc32(line):08x}"


def expand(arg: str, values: dict[str, str]) -> str:
    """Replace {name} placeholders in one pass, so inserted text is never re-expanded."""
    out: list[str] = []
    pos = 0
    while True:
        start = arg.find("{", pos)
        end = arg.find("}", start + 1) if start >= 0 else -1
        if end < 0:
            out.append(arg[pos:])
            return "".join(out)
        name = arg[start + 1 : end]
        if name in values:
            out.append(arg[pos:start] + values[name])
            pos = end + 1
        else:
            out.append(arg[pos : start + 1])
            pos = start + 1


def iso(moment: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment)) if moment else ""


def _warn(text: str) -> None:
    print(f"{PROG}: {text}", file=sys.stderr)


# --- child processes ----------------------------------------------------------------


def _kill_group(proc: Any) -> None:
    import signal

    with contextlib.suppress(OSError):  # already gone
        os.killpg(proc.pid, signal.SIGKILL)


def run_check(argv: list[str], timeout: float) -> tuple[int, str]:
    """Run the plugin, pass its output through; return its exit code and message."""
    import subprocess

    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        line = f"UNKNOWN - cannot run check {argv[0]}: {exc.strerror or exc}"
        print(line, flush=True)
        return UNKNOWN_EXIT, line
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate()
        line = f"UNKNOWN - check timed out after {timeout:g} s: {os.path.basename(argv[0])}"
        print(line, flush=True)
        return UNKNOWN_EXIT, line
    sys.stdout.flush()
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()
    sys.stderr.buffer.write(err)
    sys.stderr.buffer.flush()
    text = out.decode("utf-8", "surrogateescape")
    first = text.splitlines()[0] if text else ""
    # A negative code means a signal killed it: UNKNOWN, like Nagios.
    code = proc.returncode if proc.returncode >= 0 else UNKNOWN_EXIT
    return code, first.split("|", 1)[0].strip()


def run_command(
    command: list[str], note: policy.Notification, message: str, timeout: float, quiet: bool
) -> bool:
    """Run the notification command; True only if it exited 0 in time."""
    import subprocess

    values = {
        "key": note.key,
        "state": note.state,
        "previous": note.previous,
        "type": note.type,
        "message": message,
        "since": iso(note.since),
        "suppressed": note.suppressed,
    }
    argv = [expand(arg, values) for arg in command]
    env = dict(os.environ)
    env.update({f"NOTIFY_{name.upper()}": value for name, value in values.items()})
    env["NOTIFY_PREVIOUS_STATE"] = env.pop("NOTIFY_PREVIOUS")
    try:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            # With --check our stdout belongs to the plugin's output (NRPE, monit).
            stdout=sys.stderr.fileno() if quiet else None,
            start_new_session=True,
        )
    except OSError as exc:
        _warn(f"cannot run {argv[0]}: {exc.strerror or exc}")
        return False
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.wait()
        _warn(f"{argv[0]} timed out after {timeout:g} s and was killed")
        return False
    if code != 0:
        _warn(f"{argv[0]} exited with {code}")
        return False
    return True


# --- the main run -------------------------------------------------------------------


def _now() -> float:
    fake = os.environ.get("NOTIFY_ON_CHANGE_NOW", "")
    if fake:
        try:
            return float(fake)
        except ValueError:
            raise UsageError(f"NOTIFY_ON_CHANGE_NOW is not a number: {fake!r}") from None
    import time

    return time.time()


def _state_file(path: str | None) -> StateFile:
    return StateFile(path or default_path(dict(os.environ), os.geteuid()))


def _load(sf: StateFile, now: float) -> policy.Store:
    """The store; a corrupt file is moved aside and every key starts as a baseline."""
    try:
        return policy.Store.from_dict(sf.load())
    except CorruptState as exc:
        reason = str(exc)
    except (ValueError, OverflowError) as exc:
        reason = f"unexpected content: {exc}"
    aside = sf.move_aside(now)
    _warn(f"state file {sf.path} was corrupt ({reason}); moved to {aside}; keys start afresh")
    return policy.Store()


def _deliver(
    args: argparse.Namespace, command: list[str], key: str, state: str, message: str, now: float
) -> int:
    opts = policy.Options(
        confirm=args.confirm,
        remind=args.remind,
        budget_max=args.max or 0,
        budget_per=args.per or 0.0,
        flap=args.flap,
    )
    sf = _state_file(args.state_file)
    sf.prepare()
    sf.lock(args.lock_timeout)
    try:
        store = _load(sf, now)
        before = store.to_dict()
        policy.observe(store, key, state, now, opts)
        decision = policy.decide(store, key, now, opts)
        note = decision.notification
        code = EXIT_NOTHING
        if note is None:
            if args.verbose:
                _warn(f"{key}: {state}: {decision.reason}")
        elif run_command(command, note, message, args.command_timeout, args.check is not None):
            policy.record_success(store, note, now)
            code = EXIT_SENT
            if args.verbose:
                _warn(f"{key}: {note.type} {note.state} sent")
        else:
            delay = policy.record_failure(store, note, now)
            code = EXIT_FAILED
            _warn(f"{key}: {note.type} not delivered; retry after {delay:.0f} s")
        after = store.to_dict()
        if after != before:
            try:
                sf.save(after)
            except StateError as exc:
                lost = (
                    "; the notification was sent and may be repeated" if code == EXIT_SENT else ""
                )
                raise StateError(f"{exc}{lost}") from None
        return code
    finally:
        sf.unlock()


def _run(argv: list[str]) -> int:
    split = argv.index("--") if "--" in argv else len(argv)
    command = argv[split + 1 :]
    args = _main_parser().parse_args(argv[:split])
    if not command:
        raise UsageError("missing '-- COMMAND [ARG...]' (see --help)")
    if (args.max is None) != (args.per is None):
        raise UsageError("--max and --per go together")
    if args.check is not None and args.state is not None:
        raise UsageError("--check and --state exclude each other")
    now = _now()
    env_info = from_environment(dict(os.environ))
    if args.check is None:
        return _observe_given(args, command, env_info, now)
    import shlex

    try:
        check_argv = shlex.split(args.check)
    except ValueError as exc:
        raise UsageError(f"--check: {exc}") from None
    if not check_argv:
        raise UsageError("--check: empty command line")
    code, first_line = run_check(check_argv, args.check_timeout)
    # From here on the check's result must reach the caller whatever happens.
    try:
        # monit sets MONIT_SERVICE for every program it runs, `check program` included.
        key = args.key or os.environ.get("MONIT_SERVICE", "") or check_key(check_argv)
        message = first_line if args.message is None else args.message
        _deliver(args, command, key, policy.state_from_exit(code), message, now)
    except (UsageError, StateError) as exc:
        _warn(str(exc))
    except Exception as exc:
        _warn(f"internal error: {exc!r}")
    return code


def _observe_given(
    args: argparse.Namespace, command: list[str], env_info: EnvInfo | None, now: float
) -> int:
    if args.state is not None:
        state = args.state
    elif env_info is None:
        raise UsageError(
            "no state: use --check or --state, or run from monit (MONIT_EVENT), Nagios "
            "(NAGIOS_SERVICESTATE) or Icinga 2 (SERVICESTATE/HOSTSTATE in env)"
        )
    elif env_info.skip:
        if args.verbose:
            _warn(f"ignored: {env_info.skip} from {env_info.source} is not a state change")
        return EXIT_NOTHING
    else:
        found = env_info.state
        if found is None:
            raise UsageError(f"unrecognised state {env_info.raw_state!r} from {env_info.source}")
        state = found
    key = args.key or (env_info.key if env_info else "")
    if not key:
        raise UsageError("no key: give --key (nothing in the environment names the service)")
    message = args.message
    if message is None:
        message = env_info.message if env_info else ""
    return _deliver(args, command, key, state, message, now)


# --- status and forget --------------------------------------------------------------


def _printable(text: str) -> str:
    """Escape control characters so keys cannot rewrite the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def status_rows(store: policy.Store) -> list[dict[str, Any]]:
    rows = []
    for key, ks in sorted(store.keys.items()):
        pending = ks.observed != ks.confirmed
        rows.append(
            {
                "key": key,
                "state": ks.confirmed,
                "since": iso(ks.since) or None,
                "confirmed": not pending,
                "pending_state": ks.observed if pending else None,
                "pending_count": ks.streak if pending else 0,
                "last_notified": iso(ks.last_notified) or None,
                "notified_state": ks.notified,
                "suppressed": sum(1 for s in store.suppressed if s.key == key),
                "flapping": ks.flapping,
                "failed_sends": ks.failures,
            }
        )
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    head = ("KEY", "STATE", "SINCE", "CONFIRMED", "LAST NOTIFIED", "SUPPRESSED")
    lines = [head]
    for row in rows:
        confirmed = "confirmed"
        if not row["confirmed"]:
            confirmed = f"pending {row['pending_state']} ({row['pending_count']}x)"
        if row["flapping"]:
            confirmed += ", flapping"
        if row["failed_sends"]:
            confirmed += f", {row['failed_sends']} failed sends"
        last = row["last_notified"] or "-"
        if row["notified_state"] and row["last_notified"]:
            last += f" ({row['notified_state']})"
        lines.append(
            (
                _printable(row["key"]),
                row["state"] or "-",
                row["since"] or "-",
                confirmed,
                last,
                str(row["suppressed"]),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines
    )


def _admin(argv: list[str]) -> int:
    action = argv[0]
    parser = _Parser(prog=f"{PROG} {action}", formatter_class=_formatter)
    if action == "forget":
        parser.add_argument("key", metavar="KEY")
        parser.add_argument("--lock-timeout", type=_positive_duration, default=10.0)
    else:
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--state-file", metavar="PATH")
    args = parser.parse_args(argv[1:])
    sf = _state_file(args.state_file)
    if action == "status":
        try:
            store = policy.Store.from_dict(sf.load())
        except (CorruptState, ValueError, OverflowError) as exc:
            raise StateError(f"state file {sf.path} is corrupt: {exc}") from None
        rows = status_rows(store)
        if args.json:
            import json

            print(json.dumps({"keys": rows, "suppressed": policy.summary(store.suppressed)}))
        else:
            print(_table(rows))
        return EXIT_NOTHING
    sf.prepare()
    sf.lock(args.lock_timeout)
    try:
        try:
            store = policy.Store.from_dict(sf.load())
        except (CorruptState, ValueError, OverflowError) as exc:
            raise StateError(f"state file {sf.path} is corrupt: {exc}") from None
        if not policy.forget(store, args.key):
            raise UsageError(f"no such key: {_printable(args.key)}")
        sf.save(store.to_dict())
    finally:
        sf.unlock()
    print(f"forgot {_printable(args.key)}")
    return EXIT_NOTHING


def _main_parser() -> _Parser:
    parser = _Parser(
        prog=PROG,
        usage=(
            f"{PROG} [options] -- COMMAND [ARG...]\n"
            f"       {PROG} status [--state-file PATH] [--json]\n"
            f"       {PROG} forget KEY [--state-file PATH]"
        ),
        description="Run COMMAND only when a monitored state changes: confirmed, "
        "rate-limited, retried until delivered, safe against crashes and concurrent runs.",
        epilog=EPILOG,
        formatter_class=_formatter,
    )
    add = parser.add_argument
    add("--version", action="version", version=f"{PROG} {__version__}")
    src = parser.add_argument_group("where the state comes from (default: the environment)")
    src.add_argument("--check", metavar="'CHECK COMMAND LINE'", help="run a Nagios plugin")
    src.add_argument(
        "--state", type=_state_arg, metavar="S", help="OK WARNING CRITICAL UNKNOWN UP DOWN 0-3"
    )
    add("--key", help="name of what is monitored (default: from the environment or --check)")
    add("--message", metavar="TEXT", help="default: check output, MONIT_DESCRIPTION, *OUTPUT")
    add("--state-file", metavar="PATH", help="default: see below")
    add("--confirm", type=_count, default=1, metavar="N", help="results needed for a change")
    add("--remind", type=_duration, default=0.0, metavar="DURATION", help="0: never (default)")
    add("--max", type=_count, metavar="N", help="at most N notifications (all keys) ...")
    add("--per", type=_positive_duration, metavar="DURATION", help="... per DURATION")
    add("--flap", action="store_true", help="flap detection (21 results, 20/30 %%)")
    add("--command-timeout", type=_positive_duration, default=30.0, metavar="DURATION")
    add("--check-timeout", type=_positive_duration, default=60.0, metavar="DURATION")
    add("--lock-timeout", type=_positive_duration, default=10.0, metavar="DURATION")
    add("-v", "--verbose", action="store_true", help="say on stderr what was decided")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] in ("status", "forget"):
            return _admin(argv)
        return _run(argv)
    except (UsageError, StateError) as exc:
        _warn(str(exc))
    except KeyboardInterrupt:
        _warn("interrupted")
    except Exception as exc:
        _warn(f"internal error: {exc!r}")
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
