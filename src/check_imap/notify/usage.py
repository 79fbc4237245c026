"""--help and every argument the quick parser leaves to argparse; loaded only then."""

from __future__ import annotations

from check_imap import __version__
from check_imap.notify import UsageError
from check_imap.notify.args import (
    PROG,
    count,
    duration,
    positive_duration,
    retries_arg,
    state_arg,
)
from check_imap.text import help_width

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any

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
