"""Server quirks as S:/C: transcripts against the sans-I/O core (h11 style)."""

from __future__ import annotations

import pytest

from check_imap.protocol import Credentials, GreetingKind, LogoutEnding, Plan, Severity
from check_imap.protocol.commands import Known, Next, next_command
from check_imap.steps import Step
from support.transcript import TranscriptMismatch, converse

CREDS = Credentials("probe", "s3cret")


def test_dovecot_plain_greeting_then_logout() -> None:
    outcome = converse(
        Plan(),
        """
        S: * OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] Dovecot ready.
        C: a1 LOGOUT
        S: * BYE Logging out
        S: a1 OK Logout completed.
        """,
    )
    assert outcome.logout is not None and outcome.logout.ending is LogoutEnding.CLEAN


def test_courier_over_tls_bye_then_close_without_tagged_ok() -> None:
    outcome = converse(
        Plan(),
        """
        S: * OK [CAPABILITY IMAP4rev1 UIDPLUS CHILDREN NAMESPACE] Courier-IMAP ready.
        C: a1 LOGOUT
        S: * BYE Courier-IMAP server shutting down
        S: <close>
        """,
    )
    assert outcome.logout is not None and outcome.logout.ending is LogoutEnding.BYE_THEN_CLOSE


def test_bye_then_silence_is_not_a_timeout() -> None:
    outcome = converse(
        Plan(),
        """
        S: * OK ready
        C: a1 LOGOUT
        S: * BYE bye
        S: <silence>
        """,
    )
    assert outcome.logout is not None and outcome.logout.ending is LogoutEnding.BYE_THEN_SILENCE


def test_starttls_then_capabilities_again() -> None:
    outcome = converse(
        Plan(starttls=True, want_capabilities=True),
        """
        S: * OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready
        C: a1 STARTTLS
        S: a1 OK Begin TLS negotiation now
        C: <starttls>
        C: a2 CAPABILITY
        S: * CAPABILITY IMAP4rev1 AUTH=PLAIN
        S: a2 OK done
        C: a3 LOGOUT
        S: * BYE
        S: a3 OK
        """,
    )
    assert outcome.caps_in_clear == ("IMAP4REV1", "STARTTLS", "LOGINDISABLED")
    assert outcome.caps_before_login == ("IMAP4REV1", "AUTH=PLAIN")


def test_cyrus_lists_logindisabled_only_after_login() -> None:
    """Cyrus adds LOGINDISABLED once logged in; the stage after login keeps it apart."""
    outcome = converse(
        Plan(encrypted=True, credentials=Credentials("probe", "pw")),
        """
        S: * OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] Cyrus IMAP ready
        C: a1 AUTHENTICATE PLAIN
        S: +
        C: AHByb2JlAHB3
        S: a1 OK [CAPABILITY IMAP4rev1 LOGINDISABLED QUOTA] Success
        C: a2 LOGOUT
        S: * BYE LOGOUT received
        S: a2 OK Completed
        """,
    )
    assert outcome.caps_before_login == ("IMAP4REV1", "AUTH=PLAIN")
    assert outcome.caps_after_login == ("IMAP4REV1", "LOGINDISABLED", "QUOTA")


def test_uw_preauth_is_a_session_without_login() -> None:
    outcome = converse(
        Plan(encrypted=True, credentials=CREDS),
        """
        S: * PREAUTH [CAPABILITY IMAP4rev1] Pre-authenticated user someone
        C: a1 LOGOUT
        S: * BYE UW closing
        S: a1 OK LOGOUT completed
        """,
    )
    assert outcome.greeting is not None and outcome.greeting.kind is GreetingKind.PREAUTH
    assert outcome.preauth and outcome.login_mechanism is None


def test_reply_before_any_command_is_a_violation_not_a_logout_reply() -> None:
    outcome = converse(
        Plan(),
        """
        S: * OK hi
        S: a1 OK x
        """,
    )
    assert outcome.failure == "server sent a tagged reply ('a1') before any command was sent"
    assert outcome.logout is None


def test_untagged_noise_before_the_first_command_is_counted_not_judged() -> None:
    outcome = converse(
        Plan(),
        """
        S: * OK hi
        S: * garbage the server felt like saying
        C: a1 LOGOUT
        S: * BYE
        S: a1 OK
        """,
    )
    assert outcome.noise == 1 and outcome.failure is None


def test_greeted_then_closed_is_its_own_warning() -> None:
    outcome = converse(
        Plan(),
        """
        S: * OK hi
        S: <close>
        """,
    )
    assert outcome.failure == "server closed the connection right after the greeting"
    assert outcome.severity is Severity.WARNING


def test_foreign_logout_tag() -> None:
    outcome = converse(
        Plan(),
        """
        S: * OK hi
        C: a1 LOGOUT
        S: x9 OK not yours
        """,
    )
    assert outcome.logout is not None and outcome.logout.ending is LogoutEnding.FOREIGN_TAG


def test_starttls_injection_is_refused() -> None:
    outcome = converse(
        Plan(starttls=True),
        """
        S: * OK [CAPABILITY IMAP4rev1 STARTTLS] ready
        C: a1 STARTTLS
        S: a1 OK go
        S: * OK injected before TLS
        """,
    )
    assert outcome.failure == "server sent data after STARTTLS OK, before TLS"
    assert outcome.failure_step is Step.TLS


def test_a_mismatch_fails_at_the_first_differing_client_line() -> None:
    with pytest.raises(TranscriptMismatch, match="line 2: expected C: a1 NOOP"):
        converse(Plan(), "S: * OK hi\nC: a1 NOOP\n")


# --------------------------------------------------------------- which command next


def known(**kw: object) -> Known:
    return Known(**kw)  # type: ignore[arg-type]


TABLE = [
    # plan, what is known, next command
    (Plan(), known(caps=None), Next.LOGOUT),
    (Plan(want_capabilities=True), known(caps=None), Next.CAPABILITY),
    (Plan(want_capabilities=True), known(caps=("IMAP4REV1",)), Next.LOGOUT),
    (Plan(starttls=True), known(caps=None), Next.CAPABILITY),
    (Plan(starttls=True), known(caps=("STARTTLS",)), Next.STARTTLS),
    (Plan(starttls=True), known(caps=("IMAP4REV1",)), Next.NO_STARTTLS),
    (Plan(starttls=True), known(tls_done=True, caps=None), Next.LOGOUT),
    (Plan(credentials=CREDS), known(caps=None), Next.CAPABILITY),
    (Plan(credentials=CREDS), known(caps=("AUTH=PLAIN",)), Next.LOGIN),
    (Plan(credentials=CREDS), known(caps=(), authenticated=True), Next.LOGOUT),
    (
        Plan(credentials=CREDS, mailboxes=("INBOX",), quota=True),
        known(caps=("X",), authenticated=True),
        Next.CAPABILITY,
    ),
    (
        Plan(credentials=CREDS, mailboxes=("INBOX",), quota=True),
        known(caps=("X",), authenticated=True, caps_after_login=True),
        Next.MAILBOXES,
    ),
    (
        Plan(credentials=CREDS, mailboxes=("INBOX",)),
        known(caps=("X",), authenticated=True, mailboxes_planned=True, work_left=True),
        Next.MAILBOXES,
    ),
    (
        Plan(credentials=CREDS, mailboxes=("INBOX",)),
        known(caps=("X",), authenticated=True, mailboxes_planned=True, work_left=False),
        Next.LOGOUT,
    ),
]


@pytest.mark.parametrize(("plan", "state", "expected"), TABLE)
def test_next_command_table(plan: Plan, state: Known, expected: Next) -> None:
    assert next_command(plan, state) is expected
