"""check_imap against a real Courier-IMAP 5.0 (tests/support/courier.py).

Courier's own behaviour, named where a test depends on it (docs/servers.md):
- in clear it advertises STARTTLS but neither AUTH= nor LOGINDISABLED, and accepts
  LOGIN in clear; AUTH=PLAIN appears after TLS;
- run without imaplogin (our ``preauth`` port), imapd greets ``* PREAUTH Ready.``.
Every test asserts the exit code and the whole first line.
"""

from __future__ import annotations

import pytest

from support.assertions import expect
from support.courier import courier
from support.expected import logged_in, ok, perfdata, where
from support.processes import check_imap
from support.realservers import MESSAGES, UNSEEN, USER, RealServer, write_password_file

pytestmark = pytest.mark.servers
__all__ = ["courier"]  # the fixture, imported for pytest


def test_greetings_are_courier(courier: RealServer) -> None:
    assert courier.greetings["plain"].startswith("* OK [CAPABILITY IMAP4rev1 ")
    assert " STARTTLS " in courier.greetings["plain"]
    assert "AUTH=" not in courier.greetings["plain"]
    assert "Courier-IMAP ready." in courier.greetings["plain"]
    assert "STARTTLS" not in courier.greetings["tls"]
    assert "AUTH=PLAIN" in courier.greetings["tls"]
    assert courier.greetings["preauth"] == "* PREAUTH Ready."


def test_plain(courier: RealServer) -> None:
    port = courier.ports["plain"]
    expect(check_imap("-H", courier.host, "-p", str(port)), 0, ok(port, tls=False))


def test_starttls(courier: RealServer) -> None:
    port = courier.ports["plain"]
    result = check_imap("-H", courier.host, "-p", str(port), "--starttls", *courier.tls_args())
    expect(result, 0, ok(port, tls=True))


def test_tls(courier: RealServer) -> None:
    port = courier.ports["tls"]
    result = check_imap("-H", courier.host, "-p", str(port), "--tls", *courier.tls_args())
    expect(result, 0, ok(port, tls=True))


def test_login_and_mailbox_over_tls(courier: RealServer) -> None:
    port = courier.ports["tls"]
    result = check_imap(
        "-H", courier.host, "-p", str(port), "--tls", *courier.tls_args(),
        *courier.login_args(), "--mailbox", "INBOX",
    )  # fmt: skip
    summary = logged_in(USER, MESSAGES, UNSEEN)
    expect(
        result, 0, ok(port, tls=True, summary=summary, login=True, messages=MESSAGES, unseen=UNSEEN)
    )


def test_login_after_starttls(courier: RealServer) -> None:
    """AUTH=PLAIN is advertised only after STARTTLS; check_imap authenticates with it."""
    port = courier.ports["plain"]
    result = check_imap(
        "-H", courier.host, "-p", str(port), "--starttls", *courier.tls_args(), *courier.login_args()
    )  # fmt: skip
    summary = logged_in(USER, MESSAGES, UNSEEN)
    expect(
        result, 0, ok(port, tls=True, summary=summary, login=True, messages=MESSAGES, unseen=UNSEEN)
    )


def test_cleartext_login_when_allowed(courier: RealServer) -> None:
    """Courier advertises no LOGINDISABLED in clear and accepts LOGIN there."""
    port = courier.ports["plain"]
    result = check_imap(
        "-H", courier.host, "-p", str(port), *courier.login_args(), "--allow-cleartext-login"
    )  # fmt: skip
    summary = logged_in(USER, MESSAGES, UNSEEN)
    expect(
        result,
        0,
        ok(port, tls=False, summary=summary, login=True, messages=MESSAGES, unseen=UNSEEN),
    )


def test_wrong_password(courier: RealServer) -> None:
    port = courier.ports["tls"]
    wrong = write_password_file(courier.root, "not-the-password", "wrong-password")
    result = check_imap(
        "-H", courier.host, "-p", str(port), "--tls", *courier.tls_args(),
        "-u", USER, "--password-file", str(wrong),
    )  # fmt: skip
    expect(result, 2, rf"IMAP CRITICAL - {where(port)}: login failed: NO Login failed\.")


def test_no_logindisabled_in_clear_is_reported(courier: RealServer) -> None:
    port = courier.ports["plain"]
    result = check_imap("-H", courier.host, "-p", str(port), "--require-logindisabled")
    expect(
        result,
        1,
        rf"IMAP WARNING - {where(port)}: LOGINDISABLED not advertised in clear: passwords could "
        rf"cross the network in clear \| {perfdata(tls=False)}",
    )


def test_preauth_greeting_without_user(courier: RealServer) -> None:
    port = courier.ports["preauth"]
    result = check_imap("-H", courier.host, "-p", str(port), "--tls", *courier.tls_args())
    expect(result, 0, ok(port, tls=True, summary="greeting PREAUTH"))


def test_preauth_with_user_is_not_a_login(courier: RealServer) -> None:
    """#16 item 1: with -u and a PREAUTH greeting no password is sent, so the user is not
    checked: WARNING by default, and never "logged in as"."""
    port = courier.ports["preauth"]
    result = check_imap(
        "-H", courier.host, "-p", str(port), "--tls", *courier.tls_args(),
        "-u", "someoneelse", "--password-file", str(courier.password_file),
    )  # fmt: skip
    assert "logged in as" not in result.out, result.out
    expect(
        result,
        1,
        rf"IMAP WARNING - {where(port)}: pre-authenticated by the server, user someoneelse "
        r"not checked \| .*",
    )


def test_tls_options_on_a_plain_check_are_accepted(courier: RealServer) -> None:
    """#16 item 5: one command template for every port: --sni/--ca-file on a plain check
    are ignored (a -v note at most), not UNKNOWN."""
    port = courier.ports["plain"]
    result = check_imap("-H", courier.host, "-p", str(port), *courier.tls_args())
    expect(result, 0, ok(port, tls=False))


def test_require_starttls_capability_with_starttls(courier: RealServer) -> None:
    """#16 item 2: STARTTLS advertised in clear counts, though gone after TLS (RFC 3501)."""
    port = courier.ports["plain"]
    result = check_imap(
        "-H", courier.host, "-p", str(port), "--starttls", *courier.tls_args(),
        "--require-capability", "STARTTLS",
    )  # fmt: skip
    expect(result, 0, ok(port, tls=True))
