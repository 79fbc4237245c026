"""Judging capabilities, mailboxes and quota: pure functions over a handshake Outcome."""

from __future__ import annotations

import re

from .options import Options
from .protocol import MailboxStatus, Outcome

KIB = 1024  # RFC 9208: STORAGE is counted in units of 1024 octets


def capability_problems(options: Options, outcome: Outcome) -> list[str]:
    """Violations of --require/--forbid-capability and --require-logindisabled."""
    problems: list[str] = []
    encrypted = options.tls or options.starttls
    # What the session offers now: before login plus what login added (QUOTA, NOTIFY ...).
    current = set(outcome.capabilities or ()) | set(outcome.capabilities_after_login or ())
    if outcome.capabilities is not None:
        missing = [c for c in options.require_capabilities if c not in current]
        problems += [f"capability {c} not advertised" for c in missing]
        present = [c for c in options.forbid_capabilities if c in current]
        problems += [f"forbidden capability {c} advertised" for c in present]
    if options.require_logindisabled:
        clear = outcome.capabilities_before_tls if options.starttls else None
        if not encrypted:
            clear = outcome.capabilities
        if clear is not None and "LOGINDISABLED" not in clear:
            where = "before STARTTLS" if options.starttls else "in clear"
            problems.append(
                f"LOGINDISABLED not advertised {where}: passwords could cross the network in clear"
            )
        if encrypted and "LOGINDISABLED" in current:
            problems.append("LOGINDISABLED advertised after TLS: nobody can log in")
    return problems


def perf_suffix(options: Options, box: MailboxStatus) -> str:
    """``""`` for a single mailbox, else ``_<name>`` made safe for a perfdata label."""
    if len(options.mailboxes) <= 1:
        return ""
    safe = re.sub(r"[^A-Za-z0-9_]", "_", box.name)[:20]
    index = options.mailboxes.index(box.name) + 1
    return f"_{safe}" if safe.strip("_") else f"_{index}"


def quota_percent(box: MailboxStatus) -> tuple[str, float] | None:
    """The fullest quota resource of a mailbox as (resource, percent), None without limits."""
    worst: tuple[str, float] | None = None
    for resource, (usage, limit) in (box.quota or {}).items():
        if limit <= 0:
            continue
        percent = 100.0 * usage / limit
        if worst is None or percent > worst[1]:
            worst = (resource, percent)
    return worst


def quota_bytes(box: MailboxStatus) -> tuple[int, int] | None:
    usage_limit = (box.quota or {}).get("STORAGE")
    if usage_limit is None:
        return None
    return usage_limit[0] * KIB, usage_limit[1] * KIB
