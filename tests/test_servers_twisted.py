"""check_imap against Twisted's IMAP4 server (tests/support/twisted_imap.py).

Twisted's own behaviour, named where a test depends on it (docs/servers.md):
- in clear: LOGINDISABLED and STARTTLS, no AUTH=; after STARTTLS: AUTH=LOGIN AUTH=PLAIN;
- implicit TLS: no AUTH= at all, so check_imap logs in with LOGIN.
It needs no root and no Debian package, so it runs wherever the test extra is installed.
Every test asserts the exit code and the whole first line.
"""

from __future__ import annotations

import pytest

from support.assertions import expect
from support.expected import logged_in, ok
from support.processes import check_imap
from support.realservers import MESSAGES, UNSEEN, USER, RealServer
from support.twisted_imap import twisted_imap

pytestmark = pytest.mark.servers
__all__ = ["twisted_imap"]  # the fixture, imported for pytest

SUMMARY = logged_in(USER, MESSAGES, UNSEEN)


def login_ok(port: int) -> str:
    return ok(port, tls=True, summary=SUMMARY, login=True, messages=MESSAGES, unseen=UNSEEN)


def test_greetings_are_twisted(twisted_imap: RealServer) -> None:
    assert twisted_imap.greetings == {
        "plain": "* OK [CAPABILITY IMAP4rev1 LOGINDISABLED STARTTLS NAMESPACE IDLE] Twisted IMAP4rev1 Ready",
        "tls": "* OK [CAPABILITY IMAP4rev1 NAMESPACE IDLE] Twisted IMAP4rev1 Ready",
    }


def test_plain(twisted_imap: RealServer) -> None:
    port = twisted_imap.ports["plain"]
    expect(check_imap("-H", twisted_imap.host, "-p", str(port)), 0, ok(port, tls=False))


def test_logindisabled_in_clear(twisted_imap: RealServer) -> None:
    port = twisted_imap.ports["plain"]
    result = check_imap("-H", twisted_imap.host, "-p", str(port), "--require-logindisabled")
    expect(result, 0, ok(port, tls=False))


def test_starttls(twisted_imap: RealServer) -> None:
    port = twisted_imap.ports["plain"]
    result = check_imap(
        "-H", twisted_imap.host, "-p", str(port), "--starttls", *twisted_imap.tls_args()
    )
    expect(result, 0, ok(port, tls=True))


def test_tls(twisted_imap: RealServer) -> None:
    port = twisted_imap.ports["tls"]
    result = check_imap("-H", twisted_imap.host, "-p", str(port), "--tls", *twisted_imap.tls_args())
    expect(result, 0, ok(port, tls=True))


def test_login_with_login_command_over_tls(twisted_imap: RealServer) -> None:
    """No AUTH= over implicit TLS: check_imap falls back to LOGIN."""
    port = twisted_imap.ports["tls"]
    result = check_imap(
        "-H", twisted_imap.host, "-p", str(port), "--tls", *twisted_imap.tls_args(),
        *twisted_imap.login_args(), "--mailbox", "INBOX",
    )  # fmt: skip
    expect(result, 0, login_ok(port))


def test_login_after_starttls(twisted_imap: RealServer) -> None:
    port = twisted_imap.ports["plain"]
    result = check_imap(
        "-H", twisted_imap.host, "-p", str(port), "--starttls", *twisted_imap.tls_args(),
        *twisted_imap.login_args(), "--require-logindisabled",
    )  # fmt: skip
    expect(result, 0, login_ok(port))


def test_require_starttls_capability_with_starttls(twisted_imap: RealServer) -> None:
    """#16 item 2 (bug 3): STARTTLS advertised in clear counts, though gone after TLS."""
    port = twisted_imap.ports["plain"]
    result = check_imap(
        "-H", twisted_imap.host, "-p", str(port), "--starttls", *twisted_imap.tls_args(),
        "--require-capability", "STARTTLS",
    )  # fmt: skip
    expect(result, 0, ok(port, tls=True))
