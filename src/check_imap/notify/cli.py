"""The notify_on_change command line: arguments, the three ways in, status/forget/flush."""

from __future__ import annotations

import argparse
import os
import sys

from check_imap import __version__
from check_imap.notify import StateError, UsageError, engine, policy
from check_imap.notify.children import Interrupted, run_check
from check_imap.notify.sources import EnvInfo, check_key, from_environment
from check_imap.notify.store import Store, default_path
from check_imap.text import help_width

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

PROG = "notify_on_change"
EXIT_OK = 0  # nothing was due, or the notification was sent
EXIT_FAILED = 1  # the command failed or timed out; it is queued and retried later
EXIT_ERROR = 3  # usage, environment or state problem
MAX_SECONDS = 10 * 366 * 86400.0  # the longest duration accepted (ten years)
MAX_COUNT = 1_000_000

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

  # retries of failed sends for callers that call only once per change (cron, timer)
  notify_on_change flush

  notify_on_change status --json
  notify_on_change forget 'mail.example!IMAP'

placeholders in COMMAND's arguments (also in the environment as NOTIFY_<NAME>):
  {key} {state} {previous} {type} {message} {since} {suppressed}
  NOTIFY_TYPE is PROBLEM, RECOVERY, REMINDER, FLAPPINGSTART or FLAPPINGSTOP.
  {suppressed} reads "3 suppressed: key1, key2" after a budget stop, else "".
  COMMAND runs without a shell; values are never interpreted; NUL becomes U+FFFD.

delivery: at least once. A failed send stays in the outbox and any later run (any
  key) or `flush` retries it: 30 s, doubling, at most 1 h apart.

exit codes:
  0 nothing due or sent   1 send failed or timed out, queued for retry
  3 usage or state-file error.  With --check: always the check's exit code
  (3 and an "UNKNOWN - ..." line if the check cannot run or times out).

state: $NOTIFY_ON_CHANGE_STATE, else $XDG_STATE_HOME/notify_on_change/state.db
  (~/.local/state/...), or /var/lib/notify_on_change/state.db for root.
testing aid: NOTIFY_ON_CHANGE_NOW=<epoch seconds> replaces the clock.
"""


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, width=help_width())  # no shutil import


class Parser(argparse.ArgumentParser):
    """The one parser of notify_on_change: every input error is a UsageError (exit 3)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(formatter_class=_formatter, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


# --- input parsing ------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def finite_number(text: str, what: str, high: float) -> float:
    """An ASCII decimal number from 0 to ``high``: no signs, exponents, inf or NaN."""
    value = text.strip()
    digits = value.replace(".", "", 1)
    if not value or len(value) > 40 or not digits.isascii() or not digits.isdigit():
        raise ValueError(f"bad {what} {text!r}")
    number = float(value)
    if number > high:
        raise ValueError(f"{what} {text!r} is out of range (at most {high:g})")
    return number


def parse_duration(text: str) -> float:
    """'30s', '15m', '4h', '1d' or plain seconds; ValueError on anything else."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:], 0)
    try:
        number = finite_number(value[:-1] if unit else value, "duration", MAX_SECONDS)
    except ValueError:
        raise ValueError(
            f"bad duration {text!r} (use e.g. 30s, 15m, 4h, 1d or seconds, up to ten years)"
        ) from None
    seconds = number * (unit or 1)
    if seconds > MAX_SECONDS:
        raise ValueError(f"bad duration {text!r}: more than ten years")
    return seconds


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_duration(text: str) -> float:
    value = _duration(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
    return value


def _count(text: str, low: int = 1, high: int = MAX_COUNT) -> int:
    value = text.strip()
    if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
        raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}: {text!r}")
    return int(value)


def retries_arg(text: str) -> int:
    return _count(text, 0, 10)


def _state_arg(text: str) -> str:
    state = policy.parse_state(text)
    if state is None:
        raise argparse.ArgumentTypeError(
            f"unknown state {text!r} (OK, WARNING, CRITICAL, UNKNOWN, UP, DOWN or 0-3)"
        )
    return state


def read_now() -> float:
    fake = os.environ.get("NOTIFY_ON_CHANGE_NOW", "")
    if fake:
        try:
            return finite_number(fake, "NOTIFY_ON_CHANGE_NOW", policy.MAX_TIME)
        except ValueError:
            raise UsageError(
                f"NOTIFY_ON_CHANGE_NOW is not a number of epoch seconds: {fake!r}"
            ) from None
    import time

    return time.time()


def clock() -> Callable[[], float]:
    fixed = read_now()
    if os.environ.get("NOTIFY_ON_CHANGE_NOW"):
        return lambda: fixed
    import time

    return time.time


def warn(text: str) -> None:
    print(f"{PROG}: {printable(text)}", file=sys.stderr, flush=True)


def printable(text: str) -> str:
    """Escape control characters so keys cannot rewrite the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


# --- the store ----------------------------------------------------------------------


def _store_path(option: str | None) -> tuple[str, str | None]:
    """The state path, and the old default's state.json to import when it is a default."""
    if option:
        return option, None
    env, euid = dict(os.environ), os.geteuid()
    if env.get("NOTIFY_ON_CHANGE_STATE"):
        return default_path(env, euid), None
    return default_path(env, euid), default_path(env, euid, "state.json")


def with_store(
    option: str | None, busy: float, action: Callable[[Store], int], create: bool = True
) -> int:
    """Open the store and run ``action``; a corrupt database is moved aside, started
    afresh and ``action`` runs once more. Database trouble is a StateError."""
    import sqlite3

    path, legacy = _store_path(option)
    store = Store(path, busy)
    found = os.path.lexists(store.path) or bool(legacy and os.path.lexists(legacy))
    if not create and not found:
        store = _empty_store()  # `status` creates nothing
    now = read_now()
    try:
        for attempt in (1, 2):
            try:
                if not store.is_open:
                    store.open(now, warn, legacy)
                return action(store)
            except sqlite3.DatabaseError as exc:
                store.rollback()
                if type(exc) is not sqlite3.DatabaseError or attempt == 2:
                    raise StateError(f"state file {store.path}: {exc}") from None
                store.recover(exc, now, warn)
        raise AssertionError("unreachable")
    finally:
        store.close()


def _empty_store() -> Store:
    """An in-memory store of our schema, for `status` when there is no state file yet."""
    import sqlite3

    from check_imap.notify import store as store_module

    empty = Store(":memory:")
    db = sqlite3.connect(":memory:", isolation_level=None)
    for sql in store_module.SCHEMA_SQL:
        db.execute(sql)
    empty.attach(db)
    return empty


# --- the main run -------------------------------------------------------------------


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
    read_now()  # a bad NOTIFY_ON_CHANGE_NOW is a usage error before anything runs
    env_info = from_environment(dict(os.environ))
    if args.check is None:
        return _observe_given(args, command, env_info)
    import shlex

    try:
        check_argv = shlex.split(args.check)
    except ValueError as exc:
        raise UsageError(f"--check: {exc}") from None
    if not check_argv:
        raise UsageError("--check: empty command line")
    try:
        code, first_line = run_check(check_argv, args.check_timeout)
    except Interrupted as stop:
        print(f"UNKNOWN - interrupted by {stop.name} while the check ran", flush=True)
        return EXIT_ERROR
    # From here on the check's result must reach the caller whatever happens.
    try:
        # monit sets MONIT_SERVICE for every program it runs, `check program` included.
        key = args.key or os.environ.get("MONIT_SERVICE", "") or check_key(check_argv)
        message = first_line if args.message is None else args.message
        obs = engine.Observation(policy.state_from_exit(code), message)
        _deliver(args, command, key, obs)
    except (UsageError, StateError) as exc:
        warn(str(exc))
    except Interrupted as stop:
        if not stop.queued:
            warn(f"interrupted by {stop.name}")
    except Exception as exc:
        warn(f"internal error: {exc!r}")
    return code


def _observe_given(args: argparse.Namespace, command: list[str], env_info: EnvInfo | None) -> int:
    core_change, core_problem = 0.0, False
    if args.state is not None:
        state = args.state
    elif env_info is None:
        raise UsageError(
            "no state: use --check or --state, or run from monit (MONIT_EVENT), Nagios "
            "(NAGIOS_SERVICESTATE) or Icinga 2 (SERVICESTATE/HOSTSTATE in env)"
        )
    elif env_info.skip:
        if args.verbose:
            warn(f"ignored: {env_info.skip} from {env_info.source} is not a state change")
        return EXIT_OK
    else:
        found = env_info.state
        if found is None:
            raise UsageError(f"unrecognised state {env_info.raw_state!r} from {env_info.source}")
        state = found
        core_change, core_problem = env_info.core_change, env_info.kind == "PROBLEM"
    key = args.key or (env_info.key if env_info else "")
    if not key:
        raise UsageError("no key: give --key (nothing in the environment names the service)")
    message = args.message
    if message is None:
        message = env_info.message if env_info else ""
    obs = engine.Observation(state, message, core_change, core_problem)
    return _deliver(args, command, key, obs)


def _options(args: argparse.Namespace) -> policy.Options:
    return policy.Options(
        confirm=args.confirm,
        remind=args.remind,
        budget_max=args.max or 0,
        budget_per=args.per or 0.0,
        flap=args.flap,
    )


def _deliver(
    args: argparse.Namespace, command: list[str], key: str, obs: engine.Observation
) -> int:
    from check_imap.notify.children import arm_signals

    arm_signals()
    opts = _options(args)
    tpl = engine.template(command, obs.message, args.command_timeout, opts)

    def action(store: Store) -> int:
        ctx = engine.Context(
            store, clock(), warn, opts, args.retries, args.verbose, args.check is not None
        )
        code = engine.settle(ctx, key, obs, tpl)
        engine.flush(ctx, engine.OUTBOX_BATCH, args.command_timeout, exclude=key)
        return code

    return with_store(args.state_file, args.lock_timeout, action)


def _main_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        usage=(
            f"{PROG} [options] -- COMMAND [ARG...]\n"
            f"       {PROG} status [--state-file PATH] [--json]\n"
            f"       {PROG} forget KEY [--state-file PATH]\n"
            f"       {PROG} flush [--state-file PATH] [--retries N] [-v]"
        ),
        description="Run COMMAND only when a monitored state changes: confirmed, "
        "rate-limited, retried until delivered, safe against crashes and concurrent runs.",
        epilog=EPILOG,
    )
    add = parser.add_argument
    add("-V", "--version", action="version", version=f"{PROG} {__version__}")
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
    add("--per", type=positive_duration, metavar="DURATION", help="... per DURATION")
    add("--flap", action="store_true", help="flap detection (21 results, 20/30 %%)")
    add("--command-timeout", type=positive_duration, default=30.0, metavar="DURATION")
    add(
        "--retries",
        type=retries_arg,
        default=2,
        metavar="N",
        help="quick retries within the timeout",
    )
    add("--check-timeout", type=positive_duration, default=60.0, metavar="DURATION")
    add("--lock-timeout", type=positive_duration, default=10.0, metavar="DURATION",
        help="how long to wait for a busy state database")  # fmt: skip
    add("-v", "--verbose", action="store_true", help="say on stderr what was decided")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] in ("status", "forget", "flush"):
            from check_imap.notify.admin import admin

            return admin(argv)
        return _run(argv)
    except (UsageError, StateError) as exc:
        warn(str(exc))
    except Interrupted as stop:
        if stop.queued:
            return EXIT_FAILED
        warn(f"interrupted by {stop.name}")
    except KeyboardInterrupt:
        warn("interrupted")
    except Exception as exc:
        warn(f"internal error: {exc!r}")
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
