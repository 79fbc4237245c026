"""Byte-transcript tests of the sans-I/O handshake: no sockets, no clock."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from check_imap.protocol import (
    BYE_SILENCE,
    LOGOUT_GRACE,
    MAX_LINE,
    Done,
    GreetingKind,
    Handshake,
    LogoutEnding,
    Outcome,
    Phase,
    ProtocolError,
    Receive,
    ResponseReader,
    Send,
    StartTLS,
    parse_response,
)

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


def run(*chunks: bytes | str | None, **kwargs: bool) -> tuple[Outcome, Script]:
    script = Script(Handshake(**kwargs))
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
    assert outcome.capabilities is not None and "STARTTLS" in outcome.capabilities
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
    assert outcome.failure_phase is Phase.GREETING


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
    hs = Handshake()
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
    assert outcome.capabilities is None
    assert outcome.capabilities_before_tls is not None
    assert "STARTTLS" in outcome.capabilities_before_tls


def test_starttls_asks_capability_when_greeting_has_none() -> None:
    outcome, script = run(
        b"* OK ready\r\n",
        b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\na1 OK done\r\n",
        b"a2 OK go\r\n",
        b"* BYE\r\na3 OK\r\n",
        starttls=True,
    )
    assert script.sent == [b"a1 CAPABILITY\r\n", b"a2 STARTTLS\r\n", b"a3 LOGOUT\r\n"]
    assert outcome.capabilities_before_tls == ("IMAP4REV1", "STARTTLS", "LOGINDISABLED")
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
    assert outcome.capabilities == ("IMAP4REV1", "AUTH=PLAIN")


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
        (b"* BYE shutting down\r\n", "server closed the session with BYE"),
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
    hs = Handshake()
    hs.receive_data(b"* OK hi\r\n")
    hs.next_action()  # Send LOGOUT
    hs.receive_data(b"* 1 EXISTS\r\n" * 500)
    assert len(hs.transcript) == 64
    assert hs.transcript[0] == ("S", b"* OK hi")
    assert hs.transcript[1] == ("C", b"a1 LOGOUT")
