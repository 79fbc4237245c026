"""What monit, Nagios and Icinga 2 tell notify_on_change through the environment."""

from __future__ import annotations

import os

from check_imap.notify import policy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

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
    def state(self) -> str | None:
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


def from_environment(env: Mapping[str, str]) -> EnvInfo | None:
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
