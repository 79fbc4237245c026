"""What the caller passes in: the arguments of a main run, and what monit, Nagios and
Icinga 2 tell notify_on_change through the environment.

The usual run (monit, Nagios, Icinga 2 calling with a few known options) is parsed by
a small loop; anything else (help, an unknown or abbreviated option, a bad value) goes
to argparse (usage.py), which explains it. argparse with re, gettext and locale costs
about as much as the rest of a no-change run, so the common case does without it.
"""

import os

from check_imap.notify import policy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

PROG = "notify_on_change"
MAX_SECONDS = 10 * 366 * 86400.0  # the longest duration accepted (ten years)
MAX_COUNT = 1_000_000


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


class Args:
    """The parsed options of a main run (what argparse's Namespace would hold)."""

    check: "str | None"
    state: "str | None"
    key: "str | None"
    message: "str | None"
    state_file: "str | None"
    confirm: int
    remind: float
    max: "int | None"
    per: "float | None"
    flap: bool
    command_timeout: float
    retries: int
    check_timeout: float
    lock_timeout: float
    verbose: bool

    def __init__(self, **values: "Any") -> None:
        self.__dict__.update(values)


_DEFAULTS: "dict[str, Any]" = {
    "check": None, "state": None, "key": None, "message": None, "state_file": None,
    "confirm": 1, "remind": 0.0, "max": None, "per": None, "flap": False,
    "command_timeout": 30.0, "retries": 2, "check_timeout": 60.0, "lock_timeout": 10.0,
    "verbose": False,
}  # fmt: skip
_FLAGS = {"--flap": "flap", "-v": "verbose", "--verbose": "verbose"}
_VALUES: "dict[str, tuple[str, Callable[[str], Any]]]" = {
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


def quick_parse(argv: list[str]) -> "Args | None":
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


def parse_main(argv: list[str]) -> "Args":
    quick = quick_parse(argv)
    if quick is not None:
        return quick
    from check_imap.notify.usage import main_parser

    return Args(**vars(main_parser().parse_args(argv)))


# --- the environment of monit, Nagios and Icinga 2 ----------------------------------

SKIPPED_TYPES = (
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
_MONIT_OK_ENDINGS = ("succeeded", " ok", "recovery", " up", "not changed")


class EnvInfo:
    """What the environment of monit, Nagios or Icinga 2 says about one result."""

    __slots__ = ("core_change", "key", "kind", "message", "raw_state", "skip", "source")

    def __init__(
        self,
        source: str,
        raw_state: str,
        key: str,
        message: str,
        skip: str = "",
        kind: str = "",
        core_change: float = 0.0,
    ) -> None:
        self.source, self.raw_state, self.key, self.message = source, raw_state, key, message
        self.skip = skip  # why this call is not a state observation (e.g. ACKNOWLEDGEMENT)
        self.kind = kind  # the core's notification type (PROBLEM, RECOVERY, ...), or ""
        self.core_change = core_change  # the core's last state change (epoch), 0 unknown

    @property
    def state(self) -> "str | None":
        return policy.parse_state(self.raw_state)


def _monit_state(event: str, status: str) -> str:
    code: int | None = None
    if status.strip().lstrip("-").isdigit() and status.isascii() and len(status) < 10:
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


def epoch(text: str) -> float:
    """A core's timestamp (``1700000000`` or ``1700000000.25``); 0 when not one."""
    value = text.strip()
    if not value or len(value) > 32 or not value.isascii():
        return 0.0
    if not value.replace(".", "", 1).isdigit():
        return 0.0
    return policy.moment(float(value))


def from_environment(env: "Mapping[str, str]") -> "EnvInfo | None":
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
        skip = f"notification type {kind}" if kind in SKIPPED_TYPES else ""
        if service_state and service:
            output = env.get(prefix + "SERVICEOUTPUT", "")
            change = epoch(env.get(prefix + "LASTSERVICESTATECHANGE", ""))
            return EnvInfo(source, service_state, f"{host}!{service}", output, skip, kind, change)
        change = epoch(env.get(prefix + "LASTHOSTSTATECHANGE", ""))
        output = env.get(prefix + "HOSTOUTPUT", "")
        return EnvInfo(source, host_state, host, output, skip, kind, change)
    return None


def check_key(argv: list[str]) -> str:
    """A key for --check without --key: program name plus a checksum of the whole line.

    The checksum keeps passwords given on the check's command line out of the key,
    which appears in `status` and in the notification.
    """
    import zlib

    line = "\0".join(argv).encode("utf-8", "surrogateescape")
    return f"{os.path.basename(argv[0])}#{zlib.crc32(line):08x}"
