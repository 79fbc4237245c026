"""check_imap against a real Cyrus IMAP 3.6 (tests/support/cyrus.py).

Cyrus's own behaviour, named where a test depends on it (docs/servers.md):
- ``allowplaintext: no``: LOGINDISABLED and STARTTLS in clear; after TLS STARTTLS is
  gone (RFC 3501) and AUTH=PLAIN AUTH=LOGIN appear;
- after a successful login it lists LOGINDISABLED (in the tagged OK's CAPABILITY);
- a ``msg/shutdown`` file (maintenance mode) still greets OK and accepts the login, then
  answers the next command with ``* BYE [ALERT] <text>``;
- INBOX has a 10 MiB quota root of its own.
Every test asserts the exit code and the whole first line.
"""

from __future__ import annotations

import pytest

from support.assertions import expect
from support.cyrus import QUOTA_KIB, SHUTDOWN_TEXT, cyrus, shutdown_file
from support.expected import logged_in, ok, where
from support.processes import check_imap
from support.realservers import MESSAGES, UNSEEN, USER, RealServer

pytestmark = pytest.mark.servers
__all__ = ["cyrus"]  # the fixture, imported for pytest

QUOTA = rf"quota_storage=\d+B;;;0;{QUOTA_KIB * 1024} "
SUMMARY = logged_in(USER, MESSAGES, UNSEEN, r", quota \d+\.\d% used")


def login_ok(port: int) -> str:
    return ok(
        port, tls=True, summary=SUMMARY, login=True, messages=MESSAGES, unseen=UNSEEN, quota=QUOTA
    )


def test_greetings_are_cyrus(cyrus: RealServer) -> None:
    assert cyrus.greetings["plain"].startswith(
        "* OK [CAPABILITY IMAP4rev1 LITERAL+ ID ENABLE STARTTLS LOGINDISABLED] imap.test Cyrus IMAP 3.6"
    )
    assert cyrus.greetings["tls"].startswith(
        "* OK [CAPABILITY IMAP4rev1 LITERAL+ ID ENABLE AUTH=PLAIN AUTH=LOGIN SASL-IR] imap.test Cyrus IMAP 3.6"
    )


def test_plain(cyrus: RealServer) -> None:
    port = cyrus.ports["plain"]
    expect(check_imap("-H", cyrus.host, "-p", str(port)), 0, ok(port, tls=False))


def test_logindisabled_in_clear(cyrus: RealServer) -> None:
    port = cyrus.ports["plain"]
    result = check_imap("-H", cyrus.host, "-p", str(port), "--require-logindisabled")
    expect(result, 0, ok(port, tls=False))


def test_starttls(cyrus: RealServer) -> None:
    port = cyrus.ports["plain"]
    result = check_imap("-H", cyrus.host, "-p", str(port), "--starttls", *cyrus.tls_args())
    expect(result, 0, ok(port, tls=True))


def test_tls(cyrus: RealServer) -> None:
    port = cyrus.ports["tls"]
    result = check_imap("-H", cyrus.host, "-p", str(port), "--tls", *cyrus.tls_args())
    expect(result, 0, ok(port, tls=True))


def test_login_mailbox_and_quota_over_tls(cyrus: RealServer) -> None:
    port = cyrus.ports["tls"]
    result = check_imap(
        "-H", cyrus.host, "-p", str(port), "--tls", *cyrus.tls_args(),
        *cyrus.login_args(), "--mailbox", "INBOX",
    )  # fmt: skip
    expect(result, 0, login_ok(port))


def test_login_after_starttls(cyrus: RealServer) -> None:
    port = cyrus.ports["plain"]
    result = check_imap(
        "-H", cyrus.host, "-p", str(port), "--starttls", *cyrus.tls_args(), *cyrus.login_args()
    )  # fmt: skip
    expect(result, 0, login_ok(port))


def test_maintenance_mode_shows_after_login(cyrus: RealServer) -> None:
    """Cyrus greets OK and accepts the login, then ends the session with BYE [ALERT]."""
    port = cyrus.ports["tls"]
    flag = shutdown_file(cyrus)
    flag.write_text(SHUTDOWN_TEXT + "\n")
    try:
        plain = check_imap("-H", cyrus.host, "-p", str(port), "--tls", *cyrus.tls_args())
        login = check_imap(
            "-H", cyrus.host, "-p", str(port), "--tls", *cyrus.tls_args(), *cyrus.login_args()
        )  # fmt: skip
    finally:
        flag.unlink()
    expect(plain, 0, ok(port, tls=True))
    expect(
        login,
        2,
        rf"IMAP CRITICAL - {where(port)}: server closed the session with BYE: {SHUTDOWN_TEXT}",
    )


def test_require_logindisabled_with_login_over_tls(cyrus: RealServer) -> None:
    """#16 item 2 (bug 2): LOGINDISABLED after a successful login is not "nobody can log
    in"; the after-TLS check judges the capabilities before login."""
    port = cyrus.ports["tls"]
    result = check_imap(
        "-H", cyrus.host, "-p", str(port), "--tls", *cyrus.tls_args(),
        *cyrus.login_args(), "--require-logindisabled",
    )  # fmt: skip
    expect(result, 0, login_ok(port))


def test_require_logindisabled_with_login_after_starttls(cyrus: RealServer) -> None:
    """#16 item 2: in clear LOGINDISABLED (required and there), after TLS absent, after
    login listed again by Cyrus: all as it should be."""
    port = cyrus.ports["plain"]
    result = check_imap(
        "-H", cyrus.host, "-p", str(port), "--starttls", *cyrus.tls_args(),
        *cyrus.login_args(), "--require-logindisabled",
    )  # fmt: skip
    expect(result, 0, login_ok(port))


def test_require_starttls_capability_with_starttls(cyrus: RealServer) -> None:
    """#16 item 2 (bug 3): STARTTLS advertised in clear counts, though Cyrus drops it after TLS."""
    port = cyrus.ports["plain"]
    result = check_imap(
        "-H", cyrus.host, "-p", str(port), "--starttls", *cyrus.tls_args(),
        "--require-capability", "STARTTLS",
    )  # fmt: skip
    expect(result, 0, ok(port, tls=True))


def test_cleartext_login_against_logindisabled_is_unknown(cyrus: RealServer) -> None:
    """#16 item 6: --allow-cleartext-login against a server that rightly advertises
    LOGINDISABLED is a configuration mismatch: UNKNOWN, not CRITICAL."""
    port = cyrus.ports["plain"]
    result = check_imap(
        "-H", cyrus.host, "-p", str(port), *cyrus.login_args(), "--allow-cleartext-login"
    )  # fmt: skip
    expect(
        result,
        3,
        rf"IMAP UNKNOWN - {where(port)}: the server refuses login in clear \(LOGINDISABLED\): "
        r"use --starttls or --tls",
    )
