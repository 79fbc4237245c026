"""Expected first lines of check_imap against the real servers: exact text, with regular
expressions only for the numbers that vary between runs (timings, days, dates)."""

from __future__ import annotations

import re

NUM = r"\d+\.\d+"
CERT = r"TLSv1\.3, certificate 'imap\.test' expires \d{4}-\d\d-\d\d"
LOGOUT = r"logout: BYE \+ tagged OK"
CERT_PERF = r"cert_days=\d+;21:;7: chain_days=\d+;21:;7: "


def where(port: int) -> str:
    return re.escape(f"127.0.0.1:{port}")


def perfdata(
    *, tls: bool, login: bool = False, messages: int = 0, unseen: int = 0, quota: str = ""
) -> str:
    """check_imap's perfdata (sorted by label) for one check; ``quota`` a regex or ''."""
    parts = [CERT_PERF if tls else ""]
    if login:
        parts.append(f"messages={messages};;;0 ")
        parts.append(quota)
        parts.append(r"recent=\d+;;;0 ")
    # CAPABILITY is timed where the session needed the round trip.
    parts.append(rf"time={NUM}s;;;0;{NUM} (?:time_capability={NUM}s;;;0 )?")
    parts.append(rf"time_connect={NUM}s;;;0 time_greeting={NUM}s;;;0 ")
    if login:
        parts.append(rf"time_login={NUM}s;;;0 ")
    parts.append(rf"time_logout={NUM}s;;;0")
    if login:
        parts.append(rf" time_mailbox={NUM}s;;;0")
    if tls:
        parts.append(rf" time_tls={NUM}s;;;0")
    if login:
        parts.append(f" unseen={unseen};;;0")
    return "".join(parts)


def ok(
    port: int,
    *,
    tls: bool,
    summary: str = "",
    login: bool = False,
    messages: int = 0,
    unseen: int = 0,
    quota: str = "",
) -> str:
    """``IMAP OK - HOST:PORT answered in Ns, [TLS, cert, ]SUMMARY, logout: ... | perfdata``."""
    cert = f"{CERT}, " if tls else ""
    middle = f"{summary}, " if summary else ""
    perf = perfdata(tls=tls, login=login, messages=messages, unseen=unseen, quota=quota)
    return f"IMAP OK - {where(port)} answered in {NUM}s, {cert}{middle}{LOGOUT} \\| {perf}"


def logged_in(user: str, messages: int, unseen: int, extra: str = "") -> str:
    """The login part of a summary: ``logged in as U, 'INBOX' N messages (M unseen)``."""
    return f"logged in as {user}, 'INBOX' {messages} messages \\({unseen} unseen\\){extra}"
