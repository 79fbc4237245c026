"""Byte-transcript tests of the sans-I/O handshake: no sockets, no clock."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import pytest

from check_imap.protocol import (
    BYE_SILENCE,
    LOGOUT_GRACE,
    Credentials,
    Done,
    GreetingKind,
    Handshake,
    LogoutEnding,
    Outcome,
    Plan,
    ProtocolError,
    Receive,
    Send,
    Severity,
    StartTLS,
)
from check_imap.protocol.reader import MAX_LINE, ResponseReader, parse_response
from check_imap.steps import Step

DOVECOT = (
    b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS "
    b"AUTH=PLAIN AUTH=LOGIN] Dovecot (Debian) ready.\r\n"
)


@dataclass
class Script:
    """Drive a Handshake with server chunks; ``None`` = idle timeout, ``"lost"`` = reset."""

    hs: Handshake
    sent: list[bytes] = field(default_factory=list)
    starttls: int = 0
    waits: list[float | None] = field(default_factory=list)

    def run(self, *chunks: bytes | str | None) -> Outcome:
        feed = list(chunks)
        while True:
            action = self.hs.next_action()
            if isinstance(action, Done):
                return action.outcome
            if isinstance(action, Send):
                self.sent.append(action.data)
            elif isinstance(action, StartTLS):
                self.starttls += 1
                self.hs.tls_established()
            elif isinstance(action, Receive):
                self.waits.append(action.idle)
                if not feed:
                    raise AssertionError(f"handshake wants more data; sent {self.sent}")
                chunk = feed.pop(0)
                if chunk is None:
                    self.hs.idle_elapsed()
                elif isinstance(chunk, str):
                    self.hs.connection_lost(chunk)
                else:
                    self.hs.receive_data(chunk)


def run(*chunks: bytes | str | None, **kwargs: Any) -> tuple[Outcome, Script]:
    script = Script(Handshake(Plan(**kwargs)))
    return script.run(*chunks), script


# ----------------------------------------------------------------- greeting


@pytest.mark.parametrize(
    ("greeting", "kind"),
    [
        (b"* OK ready\r\n", GreetingKind.OK),
        (b"* ok ready\r\n", GreetingKind.OK),
        (b"* OK ready\n", GreetingKind.OK),
        (b"* PREAUTH welcome back\r\n", GreetingKind.PREAUTH),
        (b"* preauth lowercase\n", GreetingKind.PREAUTH),
    ],
)
def test_healthy_greetings_lead_to_logout(greeting: bytes, kind: GreetingKind) -> None:
    outcome, script = run(greeting, b"* BYE bye\r\na1 OK done\r\n")
    assert outcome.failure is None
    assert outcome.greeting is not None and outcome.greeting.kind is kind
    assert script.sent == [b"a1 LOGOUT\r\n"]
    assert outcome.logout is not None and outcome.logout.ending is LogoutEnding.CLEAN


def test_greeting_drip_fed_byte_by_byte() -> None:
    chunks = [bytes([b]) for b in DOVECOT]
    outcome, _script = run(*chunks, b"* BYE Logging out\r\n", b"a1 OK Logout completed.\r\n")
    assert outcome.greeting is not None and outcome.greeting.text == "Dovecot (Debian) ready."
    assert outcome.caps_before_login is not None and "STARTTLS" in outcome.caps_before_login
    assert outcome.logout is not None and outcome.logout.ending is LogoutEnding.CLEAN


def test_bye_greeting_fails_with_server_text() -> None:
    outcome, script = run(b"* BYE Too many connections\r\n")
    assert outcome.failure == "server refused the session with a BYE greeting"
    assert outcome.greeting is not None and outcome.greeting.text == "Too many connections"
    assert script.sent == []


@pytest.mark.parametrize(
    "banner",
    [
        b"HTTP/1.1 400 Bad Request\r\n",
        b"220 mail.example.org ESMTP Postfix\r\n",
        b"+OK POP3 ready\r\n",
        b"* NO go away\r\n",
        b"a1 OK not a greeting\r\n",
        b"\x00\x01\x02\xff\xfe binary\r\n",
    ],
)
def test_foreign_greeting_is_not_imap(banner: bytes) -> None:
    outcome, script = run(banner)
    assert outcome.failure == "not an IMAP greeting"
    assert outcome.greeting is not None and outcome.greeting.kind is GreetingKind.NOT_IMAP
    assert outcome.greeting.raw == banner.rstrip(b"\r\n")
    assert script.sent == []


def test_binary_banner_without_line_end_fails_fast() -> None:
    # A TLS alert record, as a TLS port answers a plain client that sends anything.
    outcome, _ = run(b"\x15\x03\x03\x00\x02\x02\x46")
    assert outcome.failure == "not an IMAP greeting"
    assert outcome.failure_step is Step.GREETING


def test_close_before_greeting() -> None:
    outcome, _ = run(b"")
    assert outcome.failure == "server closed the connection before the greeting"


def test_close_mid_greeting() -> None:
    outcome, _ = run(b"* OK half a gree", b"")
    assert outcome.failure == "server closed the connection in the middle of the greeting"


def test_reset_before_greeting() -> None:
    outcome, _ = run("reset by the server")
    assert outcome.failure == "connection reset by the server before the greeting"


def test_endless_greeting_is_bounded() -> None:
    hs = Handshake(Plan())
    chunk = b"* OK " + b"x" * 16384
    for _ in range(3):
        hs.receive_data(chunk)
        assert not hs.finished
    hs.receive_data(b"x" * 16384)
    assert hs.finished
    assert hs.outcome.failure == f"server sent a line longer than {MAX_LINE} bytes"


# ----------------------------------------------------------------- logout


@pytest.mark.parametrize(
    ("chunks", "ending"),
    [
        ((b"* BYE Logging out\r\na1 OK Logout completed.\r\n",), LogoutEnding.CLEAN),
        ((b"* BYE Logging out\r\n", b"a1 OK Logout completed.\r\n"), LogoutEnding.CLEAN),
        ((b"* BYE Logging out\r\n", b""), LogoutEnding.BYE_THEN_CLOSE),
        ((b"* BYE Logging out\r\n", "reset by the server"), LogoutEnding.BYE_THEN_CLOSE),
        ((b"* BYE Logging out\r\n", None), LogoutEnding.BYE_THEN_SILENCE),
        ((b"a1 OK Logout completed.\r\n",), LogoutEnding.OK_WITHOUT_BYE),
        ((b"",), LogoutEnding.CLOSED_NO_REPLY),
        (("reset by the server",), LogoutEnding.LOST_NO_REPLY),
        (("closed without TLS close_notify",), LogoutEnding.LOST_NO_REPLY),
        ((None,), LogoutEnding.NO_REPLY),
        ((b"a1 BAD unknown command\r\n",), LogoutEnding.REJECTED),
        ((b"* BYE x\r\na1 NO not now\r\n",), LogoutEnding.REJECTED),
        ((b". OK bye\r\n",), LogoutEnding.FOREIGN_TAG),
        ((b"* 3 EXISTS\r\n* BYE later\r\na1 OK\r\n",), LogoutEnding.CLEAN),
        ((b"* bye lower\r\na1 ok lower\r\n",), LogoutEnding.CLEAN),
    ],
)
def test_logout_endings(chunks: tuple[bytes | str | None, ...], ending: LogoutEnding) -> None:
    outcome, _ = run(b"* OK hi\r\n", *chunks)
    assert outcome.failure is None
    assert outcome.logout is not None
    assert outcome.logout.ending is ending


def test_logout_tolerance_classification() -> None:
    tolerated = {e for e in LogoutEnding if e.tolerated}
    assert tolerated == {
        LogoutEnding.CLEAN,
        LogoutEnding.BYE_THEN_CLOSE,
        LogoutEnding.BYE_THEN_SILENCE,
        LogoutEnding.OK_WITHOUT_BYE,
        LogoutEnding.CLOSED_NO_REPLY,
        LogoutEnding.LOST_NO_REPLY,
    }
    assert {e for e in LogoutEnding if e.saw_bye} == {
        LogoutEnding.CLEAN,
        LogoutEnding.BYE_THEN_CLOSE,
        LogoutEnding.BYE_THEN_SILENCE,
    }


def test_logout_details_keep_server_text_and_foreign_tag() -> None:
    outcome, _ = run(b"* OK hi\r\n", b"a1 BAD Unknown command\r\n")
    assert outcome.logout is not None and outcome.logout.detail == "BAD Unknown command"
    outcome, _ = run(b"* OK hi\r\n", b". OK bye\r\n")
    assert outcome.logout is not None and outcome.logout.detail == "."


def test_waits_after_logout_are_bounded() -> None:
    # First the grace for any reply, then only a brief silence once BYE has arrived.
    outcome, script = run(b"* OK hi\r\n", b"* BYE bye\r\n", None)
    assert script.waits == [None, LOGOUT_GRACE, BYE_SILENCE]
    assert outcome.logout is not None and outcome.logout.ending is LogoutEnding.BYE_THEN_SILENCE


def test_returns_at_once_after_tagged_ok_even_if_connection_stays_open() -> None:
    # Courier over TLS: BYE, OK, close_notify, TCP left open: no further Receive asked.
    outcome, script = run(b"* OK Courier\r\n", b"* BYE bye\r\na1 OK LOGOUT completed\r\n")
    assert script.waits == [None, LOGOUT_GRACE]
    assert outcome.logout is not None and outcome.logout.ending is LogoutEnding.CLEAN


# ----------------------------------------------------------------- STARTTLS


def test_starttls_with_capabilities_in_greeting() -> None:
    outcome, script = run(
        DOVECOT,
        b"a1 OK Begin TLS negotiation now.\r\n",
        b"* BYE Logging out\r\na2 OK Logout completed.\r\n",
        starttls=True,
    )
    assert script.sent == [b"a1 STARTTLS\r\n", b"a2 LOGOUT\r\n"]
    assert script.starttls == 1
    assert outcome.failure is None
    # RFC 3501 §6.2.1: what the server said in clear is forgotten after TLS.
    assert outcome.caps_before_login is None
    assert outcome.caps_in_clear is not None
    assert "STARTTLS" in outcome.caps_in_clear


def test_starttls_asks_capability_when_greeting_has_none() -> None:
    outcome, script = run(
        b"* OK ready\r\n",
        b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\na1 OK done\r\n",
        b"a2 OK go\r\n",
        b"* BYE\r\na3 OK\r\n",
        starttls=True,
    )
    assert script.sent == [b"a1 CAPABILITY\r\n", b"a2 STARTTLS\r\n", b"a3 LOGOUT\r\n"]
    assert outcome.caps_in_clear == ("IMAP4REV1", "STARTTLS", "LOGINDISABLED")
    assert outcome.logout is not None and outcome.logout.ending is LogoutEnding.CLEAN


def test_capabilities_after_starttls_are_asked_again_when_wanted() -> None:
    outcome, script = run(
        DOVECOT,
        b"a1 OK go\r\n",
        b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\na2 OK\r\n",
        b"* BYE\r\na3 OK\r\n",
        starttls=True,
        want_capabilities=True,
    )
    assert script.sent == [b"a1 STARTTLS\r\n", b"a2 CAPABILITY\r\n", b"a3 LOGOUT\r\n"]
    assert outcome.caps_before_login == ("IMAP4REV1", "AUTH=PLAIN")


def test_starttls_not_advertised() -> None:
    outcome, script = run(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n", starttls=True)
    assert outcome.failure == "STARTTLS is not advertised"
    assert script.sent == []


@pytest.mark.parametrize(
    ("reply", "failure"),
    [
        (b"a1 NO not now\r\n", "STARTTLS refused: NO"),
        (b"a1 BAD what\r\n", "STARTTLS refused: BAD"),
        (b". OK go\r\n", "STARTTLS answered with tag '.' instead of 'a1'"),
        (b"* BYE shutting down\r\n", "server closed the session with BYE: shutting down"),
    ],
)
def test_starttls_refused(reply: bytes, failure: str) -> None:
    outcome, script = run(DOVECOT, reply, starttls=True)
    assert outcome.failure == failure
    assert script.starttls == 0


def test_starttls_injection_is_refused() -> None:
    # Data after the tagged OK, before TLS, must never be trusted (CVE-2011-0411).
    outcome, script = run(DOVECOT, b"a1 OK go\r\n* OK injected\r\n", starttls=True)
    assert outcome.failure == "server sent data after STARTTLS OK, before TLS"
    assert script.starttls == 0
    outcome, script = run(DOVECOT, b"a1 OK go\r\n* OK partial", starttls=True)
    assert outcome.failure == "server sent data after STARTTLS OK, before TLS"


def test_preauth_in_clear_makes_starttls_impossible() -> None:
    outcome, script = run(b"* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n", starttls=True)
    assert outcome.failure == "server sent PREAUTH in clear, so STARTTLS is impossible"
    assert script.sent == []


def test_server_closes_after_starttls_command() -> None:
    outcome, _ = run(DOVECOT, b"", starttls=True)
    assert outcome.failure == "server closed the connection after STARTTLS"


# ----------------------------------------------------------------- reader


def test_reader_handles_literals_and_bare_lf() -> None:
    reader = ResponseReader()
    out = reader.feed(b'* LIST () "/" {5}\r\nIN|BX\r\n* OK x\n')
    assert [r.raw for r in out] == [b'* LIST () "/" {5}\r\nIN|BX', b"* OK x"]
    assert reader.buffered == b""


def test_reader_literal_split_across_chunks() -> None:
    reader = ResponseReader()
    assert reader.feed(b"* 1 FETCH (BODY {3}\r\nab") == []
    out = reader.feed(b"c)\r\n")
    assert [r.raw for r in out] == [b"* 1 FETCH (BODY {3}\r\nabc)"]


def test_reader_bounds_literals() -> None:
    reader = ResponseReader(max_line=100)
    with pytest.raises(ProtocolError):
        reader.feed(b"* X {1000}\r\n")


def test_parse_response_code_and_text() -> None:
    r = parse_response(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] Dovecot ready.")
    assert (r.tag, r.kind, r.code, r.text) == (
        "*",
        "OK",
        "CAPABILITY IMAP4rev1 STARTTLS",
        "Dovecot ready.",
    )
    r = parse_response(b"a1 bad")
    assert (r.tag, r.kind, r.code, r.text) == ("a1", "BAD", "", "")


def test_transcript_is_bounded() -> None:
    hs = Handshake(Plan())
    hs.receive_data(b"* OK hi\r\n")
    hs.next_action()  # Send LOGOUT
    hs.receive_data(b"* 1 EXISTS\r\n" * 500)
    assert len(hs.transcript) == 65
    assert hs.transcript[-1] == ("-", b"[transcript truncated]")
    assert hs.transcript[0] == ("S", b"* OK hi")
    assert hs.transcript[1] == ("C", b"a1 LOGOUT")


# ----------------------------------------------------------------- login, mailboxes, quota

CREDS = Credentials("probe", "s3cret pass")
PLAIN_TOKEN = base64.b64encode(b"\0probe\0s3cret pass")


def test_authenticate_plain_with_sasl_ir_then_mailbox_and_quota() -> None:
    outcome, script = run(
        b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready\r\n",
        b"a1 OK [CAPABILITY IMAP4rev1 QUOTA] Logged in\r\n",
        b"* STATUS INBOX (MESSAGES 5 RECENT 2 UNSEEN 1)\r\na2 OK done\r\n",
        b"* FLAGS ()\r\n* 5 EXISTS\r\n* 2 RECENT\r\na3 OK [READ-ONLY] Examine completed\r\n",
        b'* QUOTAROOT INBOX "User quota"\r\n* QUOTA "User quota" (STORAGE 10 1024 MESSAGE 5 100)\r\na4 OK\r\n',
        b"* BYE\r\na5 OK\r\n",
        credentials=CREDS,
        mailboxes=("INBOX",),
        quota=True,
    )
    assert script.sent == [
        b"a1 AUTHENTICATE PLAIN " + PLAIN_TOKEN + b"\r\n",
        b'a2 STATUS "INBOX" (MESSAGES RECENT UNSEEN)\r\n',
        b'a3 EXAMINE "INBOX"\r\n',
        b'a4 GETQUOTAROOT "INBOX"\r\n',
        b"a5 LOGOUT\r\n",
    ]
    assert outcome.failure is None
    assert outcome.login_mechanism == "AUTHENTICATE PLAIN"
    (box,) = outcome.mailboxes
    assert (box.messages, box.recent, box.unseen, box.exists) == (5, 2, 1, 5)
    assert box.quota == {"STORAGE": (10, 1024), "MESSAGE": (5, 100)}
    assert box.quota_root == "User quota"


def test_authenticate_plain_waits_for_continuation_without_sasl_ir() -> None:
    outcome, script = run(
        b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n",
        b"+ \r\n",
        b"a1 OK Logged in\r\n",
        b"* BYE\r\na2 OK\r\n",
        credentials=CREDS,
    )
    assert script.sent == [b"a1 AUTHENTICATE PLAIN\r\n", PLAIN_TOKEN + b"\r\n", b"a2 LOGOUT\r\n"]
    assert outcome.failure is None


def test_login_command_when_no_auth_plain_and_password_never_in_transcript() -> None:
    outcome, script = run(
        b"* OK [CAPABILITY IMAP4rev1] ready\r\n",
        b"a1 OK Logged in\r\n",
        b"* BYE\r\na2 OK\r\n",
        credentials=CREDS,
    )
    assert script.sent[0] == b'a1 LOGIN "probe" "s3cret pass"\r\n'
    assert outcome.login_mechanism == "LOGIN"
    assert ("C", b'a1 LOGIN "probe" [password redacted]') in script.hs.transcript
    assert all(
        b"s3cret" not in data and PLAIN_TOKEN not in data for _, data in script.hs.transcript
    )


def test_password_needing_a_literal_waits_for_continuation() -> None:
    creds = Credentials("probe", "line\r\nbreak")
    _, script = run(
        b"* OK [CAPABILITY IMAP4rev1] ready\r\n",
        b"+ go ahead\r\n",
        b"a1 OK Logged in\r\n",
        b"* BYE\r\na2 OK\r\n",
        credentials=creds,
    )
    assert script.sent[:2] == [b'a1 LOGIN "probe" {11}\r\n', b"line\r\nbreak\r\n"]
    assert all(b"break" not in data for _, data in script.hs.transcript)


def test_login_refused_shows_server_text() -> None:
    outcome, _ = run(
        b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready\r\n",
        b"a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
        credentials=CREDS,
    )
    assert outcome.failure == "login failed: NO [AUTHENTICATIONFAILED] Authentication failed."
    assert outcome.failure_step is Step.LOGIN


def test_logindisabled_without_auth_plain_cannot_log_in() -> None:
    outcome, script = run(
        b"* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] ready\r\n", credentials=CREDS, encrypted=True
    )
    assert outcome.failure == "no way to log in: LOGINDISABLED and no AUTH=PLAIN"
    assert script.sent == []


def test_capabilities_asked_before_login_when_greeting_has_none() -> None:
    _, script = run(
        b"* OK ready\r\n",
        b"* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR\r\na1 OK\r\n",
        b"a2 OK\r\n",
        b"* BYE\r\na3 OK\r\n",
        credentials=CREDS,
    )
    assert script.sent[0] == b"a1 CAPABILITY\r\n"
    assert script.sent[1].startswith(b"a2 AUTHENTICATE PLAIN ")


def test_quota_skipped_when_not_advertised_after_login() -> None:
    outcome, script = run(
        b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready\r\n",
        b"a1 OK Logged in\r\n",
        b"* CAPABILITY IMAP4rev1 IDLE\r\na2 OK\r\n",
        b"* STATUS INBOX (MESSAGES 0 RECENT 0 UNSEEN 0)\r\na3 OK\r\n",
        b"a4 OK\r\n",
        b"* BYE\r\na5 OK\r\n",
        credentials=CREDS,
        mailboxes=("INBOX",),
        quota=True,
    )
    assert [s.split()[1] for s in script.sent] == [
        b"AUTHENTICATE",
        b"CAPABILITY",
        b"STATUS",
        b"EXAMINE",
        b"LOGOUT",
    ]
    assert outcome.caps_after_login == ("IMAP4REV1", "IDLE")
    assert outcome.mailboxes[0].quota is None


def test_missing_mailbox_is_recorded_and_session_still_logs_out() -> None:
    outcome, script = run(
        b"* PREAUTH [CAPABILITY IMAP4rev1] welcome\r\n",
        b"a1 NO Mailbox doesn't exist: Nope\r\n",
        b"a2 NO Mailbox doesn't exist: Nope\r\n",
        b"* BYE\r\na3 OK\r\n",
        credentials=CREDS,
        mailboxes=("Nope",),
    )
    assert outcome.preauth and outcome.login_mechanism is None  # PREAUTH is no login
    assert outcome.mailboxes[0].error == "STATUS NO Mailbox doesn't exist: Nope"
    assert outcome.logout is not None and outcome.logout.ending is LogoutEnding.CLEAN
    assert script.sent[-1] == b"a3 LOGOUT\r\n"


def test_mailbox_names_are_quoted_utf7_or_literal() -> None:
    _, script = run(
        b"* PREAUTH [CAPABILITY IMAP4rev1] hi\r\n",
        b'* STATUS "Entw&APw-rfe" (MESSAGES 1 RECENT 0 UNSEEN 1)\r\na1 OK\r\n',
        b"a2 OK\r\n",
        b'* STATUS "say \\"hi\\"" (MESSAGES 2 RECENT 0 UNSEEN 0)\r\na3 OK\r\n',
        b"a4 OK\r\n",
        b"* BYE\r\na5 OK\r\n",
        credentials=CREDS,
        mailboxes=("Entwürfe", 'say "hi"'),
    )
    assert script.sent[0] == b'a1 STATUS "Entw&APw-rfe" (MESSAGES RECENT UNSEEN)\r\n'
    assert script.sent[2] == b'a3 STATUS "say \\"hi\\"" (MESSAGES RECENT UNSEEN)\r\n'
    assert script.hs.outcome.mailboxes[1].messages == 2


def test_control_characters_in_mailbox_names_are_utf7_and_literal_replies_parse() -> None:
    # Modified UTF-7 encodes anything unprintable, so a name never needs a literal out;
    # a server may still answer with one.
    _, script = run(
        b"* PREAUTH [CAPABILITY IMAP4rev1] hi\r\n",
        b"* STATUS {8}\r\nodd\nname (MESSAGES 4 RECENT 0 UNSEEN 0)\r\na1 OK\r\n",
        b"a2 OK\r\n",
        b"* BYE\r\na3 OK\r\n",
        credentials=CREDS,
        mailboxes=("odd\nname",),
    )
    assert script.sent[0] == b'a1 STATUS "odd&AAo-name" (MESSAGES RECENT UNSEEN)\r\n'
    assert script.hs.outcome.mailboxes[0].messages == 4


def test_non_ascii_password_goes_as_literal_plus_when_offered() -> None:
    creds = Credentials("probe", "pässwort")
    _, script = run(
        b"* OK [CAPABILITY IMAP4rev1 LITERAL+] hi\r\n",
        b"a1 OK\r\n",
        b"* BYE\r\na2 OK\r\n",
        credentials=creds,
    )
    assert script.sent[0] == 'a1 LOGIN "probe" {9+}\r\npässwort\r\n'.encode()
    assert script.hs.transcript[1] == ("C", b'a1 LOGIN "probe" [password redacted]')


def test_cleartext_login_against_logindisabled_is_a_configuration_mismatch() -> None:
    """--allow-cleartext-login meets a server that rightly refuses: UNKNOWN, not CRITICAL."""
    outcome, script = run(b"* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] ready\r\n", credentials=CREDS)
    assert outcome.failure == (
        "the server refuses login in clear (LOGINDISABLED): use --starttls or --tls"
    )
    assert outcome.severity is Severity.UNKNOWN
    assert outcome.failure_step is Step.LOGIN
    assert script.sent == []  # not a byte of the credentials, and nothing else
