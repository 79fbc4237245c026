"""Sans-I/O IMAP handshake: bytes in, actions and a classified outcome out.

No socket, no ssl, no clock lives here (h11 style). A driver (transport.py) asks
``Handshake.next_action()`` what to do, performs it, and feeds back what happened:
``receive_data(b"")`` means an orderly close, ``connection_lost()`` a reset or a TLS
EOF without close_notify, ``idle_elapsed()`` that a ``Receive(idle=...)`` wait ran out.
Every server quirk can therefore be tested as a byte transcript.
"""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass, field

from .imapstr import astring_parts, encode_mailbox, paren_pairs, quota_triples, read_astring

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms)
if TYPE_CHECKING:
    from typing import Union

MAX_LINE = 64 * 1024
"""No response line (literals included) longer than this is ever buffered."""

LOGOUT_GRACE = 2.0
"""Seconds to wait for any reply to LOGOUT before giving up on it."""

BYE_SILENCE = 0.3
"""Seconds of quiet after a BYE before we stop waiting for the tagged OK.

Courier over TLS sends BYE, OK and close_notify but keeps TCP open for minutes;
a server that sends BYE and then nothing must not cost us the whole timeout."""

TRANSCRIPT_LIMIT = 64
"""Transcript entries kept for -v output; a chatty server cannot grow it further."""


class ProtocolError(Exception):
    """The byte stream cannot be an IMAP conversation (e.g. an endless line)."""


class Phase(str, enum.Enum):
    """Where the conversation is; the transport charges elapsed time to it."""

    GREETING = "greeting"
    CAPABILITY = "capability"
    STARTTLS = "tls"
    LOGIN = "login"
    MAILBOX = "mailbox"
    LOGOUT = "logout"
    DONE = "done"


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Response:
    """One server response: ``tag`` is ``*``, ``+`` or a command tag."""

    tag: str
    kind: str  # first atom after the tag, upper-cased: OK, NO, BAD, BYE, PREAUTH, CAPABILITY ...
    code: str  # text inside a leading [...] response code, "" if none
    text: str  # human-readable rest of the line (after the code)
    raw: bytes  # the whole response without its final line ending


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def parse_response(line: bytes) -> Response:
    """Split a response line; tolerant of anything (never raises)."""
    tag, _, rest = line.partition(b" ")
    kind_b, _, after = rest.partition(b" ")
    kind = _decode(kind_b).upper()
    code = ""
    if kind in ("OK", "NO", "BAD", "BYE", "PREAUTH") and after.startswith(b"["):
        end = after.find(b"]")
        if end > 0:
            code = _decode(after[1:end])
            after = after[end + 1 :].lstrip(b" ")
    return Response(tag=_decode(tag), kind=kind, code=code, text=_decode(after), raw=line)


class ResponseReader:
    """Splits a byte stream into responses: CRLF or bare LF, ``{n}`` literals, bounded."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._max = max_line
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf already searched for a line end: O(n) on drip-feed
        self._literal_left = 0
        self._pending = bytearray()  # a response being assembled across literals

    def feed(self, data: bytes) -> list[Response]:
        self._buf += data
        out: list[Response] = []
        while True:
            if self._literal_left:
                take = min(self._literal_left, len(self._buf))
                self._pending += self._buf[:take]
                del self._buf[:take]
                self._literal_left -= take
                self._check_size(len(self._pending))
                if self._literal_left:
                    return out
                self._scanned = 0
            nl = self._buf.find(b"\n", self._scanned)
            if nl < 0:
                self._scanned = len(self._buf)
                self._check_size(len(self._pending) + len(self._buf))
                return out
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            self._scanned = 0
            if line.endswith(b"\r"):
                line = line[:-1]
            self._pending += line
            self._check_size(len(self._pending))
            size = _literal_size(line)
            if size is not None:
                self._pending += b"\r\n"
                self._literal_left = size
                self._check_size(len(self._pending) + size)
                continue
            out.append(parse_response(bytes(self._pending)))
            self._pending.clear()

    @property
    def buffered(self) -> bytes:
        """Bytes received but not yet part of a complete response."""
        return bytes(self._pending + self._buf)

    def _check_size(self, size: int) -> None:
        if size > self._max:
            raise ProtocolError(f"server sent a line longer than {self._max} bytes")


def _literal_size(line: bytes) -> int | None:
    """``{123}`` (or ``{123+}``) at the end of a line announces a literal."""
    if not line.endswith(b"}"):
        return None
    start = line.rfind(b"{")
    if start < 0:
        return None
    digits = line[start + 1 : -1].rstrip(b"+")
    if not digits.isdigit() or len(digits) > 10:
        return None
    return int(digits)


def capabilities_from(text: str) -> tuple[str, ...]:
    """``CAPABILITY IMAP4rev1 STARTTLS`` (code or untagged text) -> upper-cased atoms."""
    return tuple(atom.upper() for atom in text.split())


# --------------------------------------------------------------------------- results


class GreetingKind(str, enum.Enum):
    OK = "OK"
    PREAUTH = "PREAUTH"
    BYE = "BYE"
    NOT_IMAP = "not IMAP"


@dataclass(frozen=True)
class Greeting:
    kind: GreetingKind
    text: str
    raw: bytes


def classify_greeting(resp: Response) -> Greeting:
    if resp.tag == "*" and resp.kind in ("OK", "PREAUTH", "BYE"):
        return Greeting(GreetingKind(resp.kind), resp.text, resp.raw)
    return Greeting(GreetingKind.NOT_IMAP, _decode(resp.raw), resp.raw)


class LogoutEnding(str, enum.Enum):
    """How the server ended the session after our LOGOUT (RFC 3501 §6.1.3 wants BYE, then OK)."""

    CLEAN = "BYE + tagged OK"
    BYE_THEN_CLOSE = "BYE, then close without tagged OK"
    BYE_THEN_SILENCE = "BYE, then silence without tagged OK"
    OK_WITHOUT_BYE = "tagged OK without BYE"
    CLOSED_NO_REPLY = "closed without reply"
    LOST_NO_REPLY = "connection lost without reply"
    NO_REPLY = "no reply"
    REJECTED = "LOGOUT rejected"
    FOREIGN_TAG = "reply with a foreign tag"

    @property
    def saw_bye(self) -> bool:
        return self in (
            LogoutEnding.CLEAN,
            LogoutEnding.BYE_THEN_CLOSE,
            LogoutEnding.BYE_THEN_SILENCE,
        )

    @property
    def tolerated(self) -> bool:
        """Endings of a usable service: OK by default, whatever the RFC says."""
        return self not in (LogoutEnding.REJECTED, LogoutEnding.FOREIGN_TAG, LogoutEnding.NO_REPLY)


@dataclass(frozen=True)
class Logout:
    ending: LogoutEnding
    detail: str = ""  # server text of a NO/BAD, the foreign tag, or how the connection was lost


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str = field(repr=False)


@dataclass
class MailboxStatus:
    """What STATUS and EXAMINE said of one mailbox; ``error`` if either was refused."""

    name: str
    messages: int | None = None
    recent: int | None = None
    unseen: int | None = None
    exists: int | None = None
    error: str | None = None
    quota: dict[str, tuple[int, int]] | None = None  # resource -> (usage, limit), RFC 9208 units
    quota_root: str | None = None
    quota_error: str | None = None


@dataclass
class Outcome:
    """Everything the handshake learnt; ``failure`` set means the session failed."""

    greeting: Greeting | None = None
    capabilities_before_tls: tuple[str, ...] | None = None
    capabilities: tuple[str, ...] | None = None
    capabilities_after_login: tuple[str, ...] | None = None
    login_mechanism: str | None = None
    mailboxes: list[MailboxStatus] = field(default_factory=list)
    logout: Logout | None = None
    failure: str | None = None
    failure_phase: Phase | None = None


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Send:
    data: bytes


@dataclass(frozen=True)
class Receive:
    """Read more. ``idle``: seconds of silence after which to call ``idle_elapsed()``."""

    idle: float | None = None


@dataclass(frozen=True)
class StartTLS:
    """Upgrade the connection now, then call ``tls_established()``."""


@dataclass(frozen=True)
class Done:
    outcome: Outcome


if TYPE_CHECKING:
    Action = Union[Send, Receive, StartTLS, Done]


class _Await(enum.Enum):
    GREETING = enum.auto()
    COMMAND = enum.auto()
    LOGOUT = enum.auto()


@dataclass
class _Command:
    tag: str
    name: str
    mailbox: MailboxStatus | None = None
    untagged: list[Response] = field(default_factory=list)
    pending: list[bytes] = field(default_factory=list)  # parts sent after a "+" continuation


class Handshake:
    """Greeting, optional STARTTLS, login, mailboxes and quota, then a tolerant LOGOUT.

    ``starttls``: require and perform STARTTLS. ``want_capabilities``: make sure the
    capabilities are known (asking CAPABILITY if the greeting did not carry them).
    ``credentials``: log in (AUTHENTICATE PLAIN, with SASL-IR when offered, else LOGIN).
    ``mailboxes``: STATUS and EXAMINE each; ``quota``: GETQUOTAROOT each when offered.
    """

    def __init__(
        self,
        *,
        starttls: bool = False,
        want_capabilities: bool = False,
        credentials: Credentials | None = None,
        mailboxes: tuple[str, ...] = (),
        quota: bool = False,
    ) -> None:
        self._starttls = starttls
        self._want_caps = want_capabilities
        self._credentials = credentials
        self._mailboxes = mailboxes
        self._quota = quota
        self._reader = ResponseReader()
        self._queue: list[Action] = [Receive()]
        self._await = _Await.GREETING
        self._cmd: _Command | None = None
        self._tag_seq = 0
        self._bye: Response | None = None
        self._tls_done = False
        self._logged_in = False
        self._work: list[tuple[str, MailboxStatus]] | None = None
        self.outcome = Outcome()
        self.phase = Phase.GREETING
        self.transcript: list[tuple[str, bytes]] = []
        self._secrets = _secret_forms(credentials)
        self.received = 0  # bytes from the server, complete responses or not

    # -- driver API -------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.phase is Phase.DONE

    def next_action(self) -> Action:
        if not self._queue:
            self._queue.append(self._receive())
        return self._queue.pop(0)

    def receive_data(self, data: bytes) -> None:
        """Bytes from the server; ``b""`` is an orderly close (EOF or TLS close_notify)."""
        if self.finished:
            return
        if not data:
            self._closed(lost=None)
            return
        self.received += len(data)
        try:
            responses = self._reader.feed(data)
        except ProtocolError as exc:
            self._fail(str(exc))
            return
        for index, resp in enumerate(responses):
            self._record("S", resp.raw)
            self._handle(resp)
            if self.finished:
                return
            if self._upgrade_pending() and (index + 1 < len(responses) or self._reader.buffered):
                # Bytes after the STARTTLS OK but before TLS would later be trusted as if
                # they had been encrypted (the CVE-2011-0411 injection): refuse to go on.
                self._fail("server sent data after STARTTLS OK, before TLS")
                return
        if self.phase is Phase.GREETING:
            self._check_partial_greeting()

    def connection_lost(self, how: str) -> None:
        """The connection ended abnormally: ``how`` is e.g. "reset" or "TLS EOF"."""
        if not self.finished:
            self._closed(lost=how)

    def idle_elapsed(self) -> None:
        """The ``Receive(idle=...)`` wait ran out without data."""
        if self.phase is not Phase.LOGOUT:
            return
        if self._bye is not None:
            self._finish_logout(LogoutEnding.BYE_THEN_SILENCE)
        else:
            self._finish_logout(LogoutEnding.NO_REPLY, f"none within {LOGOUT_GRACE:g}s")

    def tls_established(self) -> None:
        """STARTTLS finished: forget what the server said in clear (RFC 3501 §6.2.1)."""
        self._tls_done = True
        self.outcome.capabilities_before_tls = self.outcome.capabilities
        self.outcome.capabilities = None
        self._next_step()

    # -- internals --------------------------------------------------------------

    def _receive(self) -> Receive:
        if self.phase is Phase.LOGOUT:
            return Receive(idle=BYE_SILENCE if self._bye is not None else LOGOUT_GRACE)
        return Receive()

    def _record(self, direction: str, data: bytes) -> None:
        if len(self.transcript) < TRANSCRIPT_LIMIT:
            self.transcript.append((direction, self._redact(data)))
        elif len(self.transcript) == TRANSCRIPT_LIMIT:
            # Say that it was cut, rather than end silently.
            self.transcript.append(("-", b"[transcript truncated]"))

    def _redact(self, data: bytes) -> bytes:
        """A server may echo our command (``NO Rejected LOGIN "u" "pw"``): never show it."""
        for secret in self._secrets:
            data = data.replace(secret, b"[redacted]")
        return data

    def _send(
        self,
        name: str,
        args: tuple[list[bytes], ...] = (),
        *,
        shown: str | None = None,
        mailbox: MailboxStatus | None = None,
    ) -> None:
        """Send a command; a literal argument waits for the server's continuation."""
        self._tag_seq += 1
        tag = f"a{self._tag_seq}"
        caps = self._current_caps() or ()
        segments: list[bytes] = []
        current = f"{tag} {name}".encode("ascii")
        for parts in args:
            current += b" " + parts[0]
            if len(parts) == 2:  # a literal: {n} CRLF, then its bytes
                if "LITERAL+" in caps:
                    current = current[:-1] + b"+}\r\n" + parts[1]
                else:
                    segments.append(current + b"\r\n")
                    current = parts[1]
        segments.append(current + b"\r\n")
        self._cmd = _Command(tag, name.split(" ", 1)[0], mailbox, pending=segments[1:])
        self._record("C", f"{tag} {shown}".encode() if shown else segments[0][:-2])
        self._queue.append(Send(segments[0]))

    def _fail(self, reason: str) -> None:
        reason = _decode(self._redact(reason.encode("utf-8")))
        self.outcome.failure = reason
        self.outcome.failure_phase = self.phase
        self._done()

    def _done(self) -> None:
        self.phase = Phase.DONE
        self._queue = [Done(self.outcome)]

    def _current_caps(self) -> tuple[str, ...] | None:
        if self._logged_in and self.outcome.capabilities_after_login is not None:
            return self.outcome.capabilities_after_login
        return self.outcome.capabilities

    def _handle(self, resp: Response) -> None:
        if self._await is _Await.GREETING:
            self._on_greeting(resp)
            return
        cmd = self._cmd
        if cmd is None:  # cannot happen: every later state has a command in flight
            return
        if resp.tag == "*":
            if resp.kind == "BYE":
                self._on_bye(resp)
            else:
                cmd.untagged.append(resp)
            return
        if resp.tag == "+":
            if cmd.pending:
                self._queue.append(Send(cmd.pending.pop(0)))
                if cmd.name in ("AUTHENTICATE", "LOGIN"):
                    self._record("C", b"[credentials redacted]")
            elif cmd.name == "AUTHENTICATE":
                self._queue.append(Send(b"*\r\n"))  # a challenge we cannot answer: cancel
            return
        if self._await is _Await.LOGOUT:
            self._on_logout_tagged(resp, cmd)
        elif resp.tag != cmd.tag:
            self._fail(f"{cmd.name} answered with tag {resp.tag!r} instead of {cmd.tag!r}")
        else:
            self._on_tagged(resp, cmd)

    def _on_tagged(self, resp: Response, cmd: _Command) -> None:
        ok = resp.kind == "OK"
        code = f"[{resp.code}] " if resp.code else ""
        said = f"{resp.kind or '(nothing)'} {code}{resp.text}".strip()
        if cmd.name == "CAPABILITY":
            if not ok:
                self._fail(f"CAPABILITY answered {resp.kind or '(nothing)'}")
                return
            caps: list[str] = []
            for untagged in cmd.untagged:
                if untagged.kind == "CAPABILITY":
                    caps.extend(capabilities_from(untagged.text))
            self._caps_from_code(resp)
            self._set_caps(tuple(caps) or self._current_caps() or ())
        elif cmd.name == "STARTTLS":
            if not ok:
                self._fail(f"STARTTLS refused: {resp.kind or '(nothing)'}")
                return
            self._queue.append(StartTLS())
            return
        elif cmd.name in ("LOGIN", "AUTHENTICATE"):
            if not ok:
                code = f"[{resp.code}] " if resp.code else ""
                self._fail(f"login failed: {resp.kind} {code}{resp.text}".strip())
                return
            self._logged_in = True
            self._caps_from_code(resp)
        elif cmd.mailbox is not None:
            self._on_mailbox_reply(cmd, cmd.mailbox, ok, said)
        self._next_step()

    def _caps_from_code(self, resp: Response) -> None:
        if resp.code.upper().startswith("CAPABILITY "):
            self._set_caps(capabilities_from(resp.code)[1:])

    def _set_caps(self, caps: tuple[str, ...]) -> None:
        if self._logged_in:
            self.outcome.capabilities_after_login = caps
        else:
            self.outcome.capabilities = caps

    def _on_mailbox_reply(self, cmd: _Command, box: MailboxStatus, ok: bool, said: str) -> None:
        if cmd.name == "GETQUOTAROOT":
            if not ok:
                box.quota_error = said
                return
            box.quota = {}
            for untagged in cmd.untagged:
                text = _decode(untagged.raw)
                if untagged.kind == "QUOTAROOT":
                    roots = read_astring(read_astring(untagged.text)[1])[0]
                    box.quota_root = roots or None
                elif untagged.kind == "QUOTA":
                    box.quota.update(quota_triples(text))
            return
        if not ok:
            box.error = box.error or _decode(self._redact(f"{cmd.name} {said}".encode()))
            return
        for untagged in cmd.untagged:
            if cmd.name == "STATUS" and untagged.kind == "STATUS":
                pairs = paren_pairs(_decode(untagged.raw))
                box.messages = pairs.get("MESSAGES", box.messages)
                box.recent = pairs.get("RECENT", box.recent)
                box.unseen = pairs.get("UNSEEN", box.unseen)
            elif untagged.kind.isdigit() and untagged.text.upper().startswith("EXISTS"):
                box.exists = int(untagged.kind)

    def _on_greeting(self, resp: Response) -> None:
        greeting = classify_greeting(resp)
        self.outcome.greeting = greeting
        if greeting.kind is GreetingKind.NOT_IMAP:
            self._fail("not an IMAP greeting")
            return
        if greeting.kind is GreetingKind.BYE:
            self._fail("server refused the session with a BYE greeting")
            return
        if resp.code.upper().startswith("CAPABILITY "):
            self.outcome.capabilities = capabilities_from(resp.code)[1:]
        if self._starttls and greeting.kind is GreetingKind.PREAUTH:
            # STARTTLS is only valid before authentication; PREAUTH in clear would
            # otherwise silently skip encryption (a known downgrade trick).
            self._fail("server sent PREAUTH in clear, so STARTTLS is impossible")
            return
        self._logged_in = greeting.kind is GreetingKind.PREAUTH and self._credentials is not None
        if self._logged_in:
            self.outcome.login_mechanism = "PREAUTH"
        self._await = _Await.COMMAND
        self._next_step()

    def _next_step(self) -> None:
        """Decide the next command from what is known so far."""
        caps = self._current_caps()
        if self._starttls and not self._tls_done:
            if caps is None:
                self._command_phase(Phase.CAPABILITY, "CAPABILITY")
            elif "STARTTLS" not in caps:
                self._fail("STARTTLS is not advertised")
            else:
                self._command_phase(Phase.STARTTLS, "STARTTLS")
            return
        logging_in = self._credentials is not None and not self._logged_in
        if caps is None and (self._want_caps or logging_in):
            self._command_phase(Phase.CAPABILITY, "CAPABILITY")
            return
        if logging_in:
            self._login(caps or ())
            return
        after_login = self.outcome.capabilities_after_login
        if self._work is None and self._logged_in and self._quota and after_login is None:
            # Servers may offer more (QUOTA) once logged in; ask unless the OK told us.
            self._command_phase(Phase.CAPABILITY, "CAPABILITY")
            return
        if self._work is None:
            self._work = self._plan_mailboxes()
        if self._work:
            self.phase = Phase.MAILBOX
            step, box = self._work.pop(0)
            name = astring_parts(encode_mailbox(box.name))
            extra = [b"(MESSAGES RECENT UNSEEN)"] if step == "STATUS" else []
            args = (name, extra) if extra else (name,)
            self._send(step, args, mailbox=box)
            return
        self.phase = Phase.LOGOUT
        self._await = _Await.LOGOUT
        self._send("LOGOUT")

    def _command_phase(self, phase: Phase, name: str) -> None:
        self.phase = phase
        self._send(name)

    def _plan_mailboxes(self) -> list[tuple[str, MailboxStatus]]:
        quota_ok = "QUOTA" in (self._current_caps() or ())
        work: list[tuple[str, MailboxStatus]] = []
        for name in self._mailboxes:
            box = MailboxStatus(name)
            self.outcome.mailboxes.append(box)
            # STATUS before EXAMINE: RFC 3501 discourages STATUS on the selected mailbox.
            work += [("STATUS", box), ("EXAMINE", box)]
            if self._quota and quota_ok:
                work.append(("GETQUOTAROOT", box))
        return work

    def _login(self, caps: tuple[str, ...]) -> None:
        creds = self._credentials
        if creds is None:
            return
        self.phase = Phase.LOGIN
        if "AUTH=PLAIN" in caps:
            token = base64.b64encode(
                b"\0" + creds.user.encode("utf-8") + b"\0" + creds.password.encode("utf-8")
            )
            self.outcome.login_mechanism = "AUTHENTICATE PLAIN"
            if "SASL-IR" in caps:
                self._send(
                    "AUTHENTICATE PLAIN",
                    ([token],),
                    shown="AUTHENTICATE PLAIN [credentials redacted]",
                )
            else:
                self._send("AUTHENTICATE PLAIN", shown="AUTHENTICATE PLAIN")
                if self._cmd is not None:
                    self._cmd.pending.append(token + b"\r\n")
            return
        if "LOGINDISABLED" in caps:
            self._fail("no way to log in: LOGINDISABLED and no AUTH=PLAIN")
            return
        self.outcome.login_mechanism = "LOGIN"
        user = astring_parts(creds.user)
        shown_user = sanitize_user(creds.user)
        self._send(
            "LOGIN",
            (user, astring_parts(creds.password)),
            shown=f"LOGIN {shown_user} [password redacted]",
        )

    def _upgrade_pending(self) -> bool:
        return bool(self._queue) and isinstance(self._queue[-1], StartTLS)

    def _check_partial_greeting(self) -> None:
        """Fail fast on binary or foreign banners that never send a line end."""
        partial = self._reader.buffered
        if len(partial) >= 2 and partial[:2] != b"* ":
            self._record("S", partial)
            self._on_greeting(parse_response(partial))

    def _on_bye(self, resp: Response) -> None:
        if self._await is _Await.LOGOUT:
            self._bye = resp
            return
        # An unsolicited BYE before LOGOUT: the server is shutting us out.
        self._fail(f"server closed the session with BYE: {resp.text}".rstrip(": "))

    def _on_logout_tagged(self, resp: Response, cmd: _Command) -> None:
        if resp.tag != cmd.tag:
            self._finish_logout(LogoutEnding.FOREIGN_TAG, resp.tag)
        elif resp.kind == "OK":
            ending = LogoutEnding.CLEAN if self._bye is not None else LogoutEnding.OK_WITHOUT_BYE
            self._finish_logout(ending)
        else:
            self._finish_logout(LogoutEnding.REJECTED, f"{resp.kind} {resp.text}".strip())

    def _finish_logout(self, ending: LogoutEnding, detail: str = "") -> None:
        self.outcome.logout = Logout(ending, detail)
        self._done()

    def _closed(self, lost: str | None) -> None:
        partial = self._reader.buffered
        if self.phase is Phase.GREETING and partial:
            self._record("S", partial)
            greeting = classify_greeting(parse_response(partial))
            if greeting.kind is GreetingKind.NOT_IMAP:
                self._on_greeting(parse_response(partial))
                return
        if self.phase is Phase.LOGOUT:
            if self._bye is not None:
                self._finish_logout(LogoutEnding.BYE_THEN_CLOSE, lost or "")
            elif lost:
                self._finish_logout(LogoutEnding.LOST_NO_REPLY, lost)
            else:
                self._finish_logout(LogoutEnding.CLOSED_NO_REPLY)
            return
        what = f"connection {lost}" if lost else "server closed the connection"
        where = {
            Phase.GREETING: "before the greeting",
            Phase.CAPABILITY: "after CAPABILITY",
            Phase.STARTTLS: "after STARTTLS",
            Phase.LOGIN: "during login",
            Phase.MAILBOX: "during the mailbox checks",
        }.get(self.phase, "")
        if self.phase is Phase.GREETING and partial:
            where = "in the middle of the greeting"
        self._fail(f"{what} {where}".strip())


def _secret_forms(credentials: Credentials | None) -> tuple[bytes, ...]:
    """The password as it can appear on the wire: raw, quoted, and in the PLAIN token."""
    if credentials is None or not credentials.password:
        return ()
    password = credentials.password.encode("utf-8")
    token = base64.b64encode(b"\0" + credentials.user.encode("utf-8") + b"\0" + password)
    forms = {password, token, astring_parts(credentials.password)[-1]}
    return tuple(sorted(forms, key=len, reverse=True))  # longest first: quoted before raw


def sanitize_user(user: str) -> str:
    """The user name as the transcript shows it (quoted, never the password)."""
    return '"' + "".join(ch if ch.isprintable() else "?" for ch in user)[:64] + '"'
