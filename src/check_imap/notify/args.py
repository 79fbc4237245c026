"""The arguments of notify_on_change, and one parser that makes every input error exit 3.

The usual run (monit, Nagios, Icinga 2 calling with a few known options) is parsed by
a small loop; anything else (help, an unknown or abbreviated option, a bad value) goes
to argparse, which explains it. argparse with re, gettext and locale costs about as
much as the rest of a no-change run, so the common case does without it.
"""

from __future__ import annotations

from check_imap import __version__
from check_imap.notify import UsageError, policy
from check_imap.text import help_width

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any

PROG = "notify_on_change"
MAX_SECONDS = 10 * 366 * 86400.0  # the longest duration accepted (ten years)
MAX_COUNT = 1_000_000

EPILOG = """\
examples:
  # monit / cron / NRPE: wrap the check; its output and exit code pass through
  notify_on_change --check '/opt/check_imap/bin/check_imap -H mail.example --tls' \\
      --confirm 2 --remind 4h -- /usr/local/bin/sms '{type} {key} is {state}: {message}'

  # monit (state from MONIT_EVENT, MONIT_PROGRAM_STATUS, MONIT_SERVICE); "repeat"
  # makes monit call on every failing cycle, which also retries a failed send
  if status != 0 then exec "/opt/check_imap/bin/notify_on_change -- /usr/local/bin/mailme"
      repeat every 1 cycle
      else if succeeded then exec "/opt/check_imap/bin/notify_on_change -- /usr/local/bin/mailme"

  # Icinga 2 / Nagios: dedupe and cap at 10 per hour overall; Debian's stock mail script
  # needs its options (contrib/icinga2/notifications.conf passes them from macros)
  notify_on_change --max 10 --per 1h -- /etc/icinga2/scripts/mail-service-notification.sh \\
      -d "$LONGDATETIME" -e "$SERVICENAME" -l "$HOSTNAME" -n "$HOSTDISPLAYNAME" \\
      -u "$SERVICEDISPLAYNAME" -r "$USEREMAIL" -t '{type}' -s '{state}' -o '{message}'

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


def duration(text: str) -> float:
    return parse_duration(text)


def positive_duration(text: str) -> float:
    value = parse_duration(text)
    if value <= 0:
        raise ValueError(f"must be more than 0: {text!r}")
    return value


def count(text: str, low: int = 1, high: int = MAX_COUNT) -> int:
    value = text.strip()
    if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
        raise ValueError(f"expected a whole number from {low} to {high}: {text!r}")
    return int(value)


def retries_arg(text: str) -> int:
    return count(text, 0, 10)


def state_arg(text: str) -> str:
    state = policy.parse_state(text)
    if state is None:
        raise ValueError(
            f"unknown state {text!r} (OK, WARNING, CRITICAL, UNKNOWN, UP, DOWN or 0-3)"
        )
    return state


def typed(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """``convert`` for argparse: its ValueError message becomes the usage error."""
    import argparse

    def conv(text: str) -> Any:
        try:
            return convert(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    conv.__name__ = convert.__name__
    return conv


def parser_class() -> type[argparse.ArgumentParser]:
    import argparse

    class Parser(argparse.ArgumentParser):
        """The one parser of notify_on_change: every input error is a UsageError (exit 3)."""

        def __init__(self, **kwargs: Any) -> None:
            formatter = lambda prog: argparse.RawDescriptionHelpFormatter(  # noqa: E731
                prog,
                width=help_width(),  # no shutil import
            )
            super().__init__(formatter_class=formatter, **kwargs)

        def error(self, message: str) -> Any:
            raise UsageError(message)

    return Parser


class Args:
    """The parsed options of a main run (what argparse's Namespace would hold)."""

    check: str | None
    state: str | None
    key: str | None
    message: str | None
    state_file: str | None
    confirm: int
    remind: float
    max: int | None
    per: float | None
    flap: bool
    command_timeout: float
    retries: int
    check_timeout: float
    lock_timeout: float
    verbose: bool

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


_DEFAULTS: dict[str, Any] = {
    "check": None, "state": None, "key": None, "message": None, "state_file": None,
    "confirm": 1, "remind": 0.0, "max": None, "per": None, "flap": False,
    "command_timeout": 30.0, "retries": 2, "check_timeout": 60.0, "lock_timeout": 10.0,
    "verbose": False,
}  # fmt: skip
_FLAGS = {"--flap": "flap", "-v": "verbose", "--verbose": "verbose"}
_VALUES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "--check": ("check", str),
    "--state": ("state", state_arg),
    "--key": ("key", str),
    "--message": ("message", str),
    "--state-file": ("state_file", str),
    "--confirm": ("confirm", count),
    "--remind": ("remind", duration),
    "--max": ("max", count),
    "--per": ("per", positive_duration),
    "--command-timeout": ("command_timeout", positive_duration),
    "--retries": ("retries", retries_arg),
    "--check-timeout": ("check_timeout", positive_duration),
    "--lock-timeout": ("lock_timeout", positive_duration),
}


def quick_parse(argv: list[str]) -> Args | None:
    """The options the way callers write them; None for anything argparse must judge."""
    values = dict(_DEFAULTS)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _FLAGS:
            values[_FLAGS[arg]] = True
            i += 1
            continue
        name, eq, value = arg.partition("=")
        if name not in _VALUES:
            return None
        if not eq:
            if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                return None
            value = argv[i + 1]
        i += 1 if eq else 2
        dest, convert = _VALUES[name]
        try:
            values[dest] = convert(value)
        except ValueError:
            return None
    return Args(**values)


def parse_main(argv: list[str]) -> Args:
    quick = quick_parse(argv)
    if quick is not None:
        return quick
    return Args(**vars(main_parser().parse_args(argv)))


def main_parser() -> argparse.ArgumentParser:
    parser = parser_class()(
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
        "--state",
        type=typed(state_arg),
        metavar="S",
        help="OK WARNING CRITICAL UNKNOWN UP DOWN 0-3",
    )
    add("--key", help="name of what is monitored (default: from the environment or --check)")
    add("--message", metavar="TEXT", help="default: check output, MONIT_DESCRIPTION, *OUTPUT")
    add("--state-file", metavar="PATH", help="default: see below")
    add("--confirm", type=typed(count), default=1, metavar="N", help="results needed for a change")
    add(
        "--remind", type=typed(duration), default=0.0, metavar="DURATION", help="0: never (default)"
    )
    add("--max", type=typed(count), metavar="N", help="at most N notifications (all keys) ...")
    add("--per", type=typed(positive_duration), metavar="DURATION", help="... per DURATION")
    add("--flap", action="store_true", help="flap detection (21 results, 20/30 %%)")
    add("--command-timeout", type=typed(positive_duration), default=30.0, metavar="DURATION")
    add(
        "--retries",
        type=typed(retries_arg),
        default=2,
        metavar="N",
        help="quick retries within the timeout",
    )
    add("--check-timeout", type=typed(positive_duration), default=60.0, metavar="DURATION")
    add("--lock-timeout", type=typed(positive_duration), default=10.0, metavar="DURATION",
        help="how long to wait for a busy state database")  # fmt: skip
    add("-v", "--verbose", action="store_true", help="say on stderr what was decided")
    return parser
