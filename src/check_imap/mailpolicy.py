"""Judging capabilities, mailboxes and quota: pure functions over a handshake Outcome.

Capabilities are judged per stage (see protocol.records.Outcome):

- ``--require-logindisabled`` reads the list the server gave *in clear*: before
  STARTTLS, or on a plain connection before login;
- "LOGINDISABLED after TLS: nobody can log in" reads the list after TLS and
  *before* login (Cyrus lists LOGINDISABLED once logged in, which means nothing);
- ``--require-capability``/``--forbid-capability`` read the union of every stage,
  so STARTTLS, which servers must drop after TLS, counts where it was offered.
"""

from __future__ import annotations

from .options import CapabilityPolicy, Target
from .protocol import MailboxStatus, Outcome

KIB = 1024  # RFC 9208: STORAGE is counted in units of 1024 octets
LABEL_LENGTH = 20  # of the mailbox part of a perfdata label
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def capability_problems(policy: CapabilityPolicy, target: Target, outcome: Outcome) -> list[str]:
    """Violations of --require/--forbid-capability and --require-logindisabled."""
    problems: list[str] = []
    advertised = outcome.all_capabilities()
    if policy.require or policy.forbid:
        problems += [
            f"capability {c} not advertised" for c in policy.require if c not in advertised
        ]
        problems += [
            f"forbidden capability {c} advertised" for c in policy.forbid if c in advertised
        ]
    if policy.require_logindisabled:
        clear = outcome.caps_in_clear if target.starttls else None
        if not target.encrypted:
            clear = outcome.caps_before_login
        if clear is not None and "LOGINDISABLED" not in clear:
            where = "before STARTTLS" if target.starttls else "in clear"
            problems.append(
                f"LOGINDISABLED not advertised {where}: passwords could cross the network in clear"
            )
        after_tls = outcome.caps_before_login if target.encrypted else None
        if after_tls is not None and "LOGINDISABLED" in after_tls:
            problems.append("LOGINDISABLED advertised after TLS: nobody can log in")
    return problems


def mailbox_labels(names: tuple[str, ...]) -> dict[str, str]:
    """Each mailbox's perfdata suffix: ``""`` for one mailbox, else ``_<safe name>``.

    The safe name keeps ASCII letters, digits and ``_`` (others become ``_``) and is
    cut to 20 characters. When that cuts the name, or two names come out the same,
    the label gets ``_`` and the first 4 hex digits of the SHA-256 of the full name:
    the same mailbox always gets the same label, so graphs stay continuous.
    """
    if len(names) <= 1:
        return dict.fromkeys(names, "")
    safe = {name: "".join(ch if ch in _SAFE else "_" for ch in name) for name in names}
    counts: dict[str, int] = {}
    for name in names:
        short = safe[name][:LABEL_LENGTH]
        counts[short] = counts.get(short, 0) + 1
    labels: dict[str, str] = {}
    for name in names:
        short = safe[name][:LABEL_LENGTH]
        if len(safe[name]) > LABEL_LENGTH or counts[short] > 1 or not short.strip("_"):
            short = f"{short}_{_hash4(name)}"
        labels[name] = f"_{short}"
    taken: set[str] = set()
    for name in names:  # a literal "X_1a2b" next to "X" cut to the same: still unique
        label = labels[name]
        index = 1
        while label in taken:
            index += 1
            label = f"{labels[name]}_{index}"
        labels[name] = label
        taken.add(label)
    return labels


def _hash4(name: str) -> str:
    import hashlib

    return hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:4]


def quota_percent(box: MailboxStatus) -> tuple[str, float] | None:
    """The fullest quota resource of a mailbox as (resource, percent), None without limits."""
    worst: tuple[str, float] | None = None
    for resource, (usage, limit) in (box.quota or {}).items():
        if limit <= 0:
            continue
        percent = 100.0 * usage / limit  # ints of at most 20 digits: a float, never overflow
        if worst is None or percent > worst[1]:
            worst = (resource, percent)
    return worst


def quota_bytes(box: MailboxStatus) -> tuple[int, int] | None:
    usage_limit = (box.quota or {}).get("STORAGE")
    if usage_limit is None:
        return None
    return usage_limit[0] * KIB, usage_limit[1] * KIB


def first_of_each_root(boxes: list[MailboxStatus]) -> set[str]:
    """Names of the mailboxes whose quota is reported: the first of each quota root."""
    seen: set[str | None] = set()
    first: set[str] = set()
    for box in boxes:
        if box.quota is None and box.quota_error is None:
            continue
        if box.quota_root is None or box.quota_root not in seen:
            seen.add(box.quota_root)
            first.add(box.name)
    return first
