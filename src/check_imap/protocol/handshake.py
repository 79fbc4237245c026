"""The handshake: greeting, optional STARTTLS, login, mailboxes and quota, then LOGOUT."""

from __future__ import annotations

from ..steps import Step
from .commands import Known, Next, next_command
from .reader import Response, ResponseReader, capabilities_from, is_tag, parse_response
from .records import (
    Done,
    Greeting,
    GreetingKind,
    LocalProtocolError,
    Logout,
    LogoutEnding,
    MailboxStatus,
    Outcome,
    Plan,
    ProtocolError,
    Receive,
    Send,
    Severity,
    StartTLS,
)
from .state import (
    BYE_SILENCE,
    CLOSED_WHERE,
    FLOOD_LIMIT,
    HIDDEN,
    LOGOUT_GRACE,
    MAX_CAPABILITIES,
    TRANSCRIPT_LIMIT,
    Command,
    State,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    from . import mailboxes
    from .records import Action

# login and mailboxes (and imapstr, base64 under them) are imported when a run logs in
# or looks at a mailbox: most checks do neither (~2 M instructions and 4 modules).


class Handshake:
    """One IMAP session as a state machine; see the package docstring for the driver API."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.state = State.AWAIT_GREETING
        self.step = Step.GREETING  # where elapsed time is charged
        self.outcome = Outcome()
        self.transcript: list[tuple[str, bytes]] = []
        self.received = 0  # bytes from the server, complete responses or not
        self._reader = ResponseReader()
        self._queue: list[tuple[Action, bytes | None]] = []  # action, its transcript line
        self._cmd: Command | None = None
        self._tag_seq = 0
        self._bye: Response | None = None
        self._tls_done = False
        self._authenticated = False
        self._work: mailboxes.Work | None = None
        self._caps: list[str] = []  # being collected for the command in flight
        self._handlers: dict[str, Callable[[Response, Command], None]] = {
            "CAPABILITY": self._on_capability,
            "STARTTLS": self._on_starttls,
            "LOGIN": self._on_login,
            "AUTHENTICATE": self._on_login,
            "STATUS": self._on_mailbox,
            "EXAMINE": self._on_mailbox,
            "GETQUOTAROOT": self._on_mailbox,
        }

    # -- driver API -------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.state is State.DONE

    @property
    def _awaiting_tls(self) -> bool:
        return self.state is State.AWAIT_TLS

    @property
    def wants_to_write(self) -> bool:
        """The next action is a Send: the driver drains what is readable first."""
        return bool(self._queue) and isinstance(self._queue[0][0], Send)

    def next_action(self) -> Action:
        if self.state is State.DONE:
            return Done(self.outcome)
        if not self._queue:
            if self.state is State.AWAIT_TLS:
                raise LocalProtocolError("call tls_established() after StartTLS")
            return self._receive()
        action, shown = self._queue.pop(0)
        if shown is not None:
            self._record("C", shown)
        if isinstance(action, Send) and self._cmd is not None:
            self._cmd.written = True
        return action

    def receive_data(self, data: bytes) -> None:
        """Bytes from the server; ``b""`` is an orderly close (EOF or TLS close_notify)."""
        self._check_running("receive_data")
        if not data:
            self._closed(lost=None)
            return
        self.received += len(data)
        if self.state is State.AWAIT_TLS:
            # Bytes after the STARTTLS OK but before TLS would later be trusted as if
            # they had been encrypted (the CVE-2011-0411 injection): refuse to go on.
            self._record("S", data)
            self._fail("server sent data after STARTTLS OK, before TLS")
            return
        try:
            responses = self._reader.feed(data)
            for index, resp in enumerate(responses):
                self._record("S", resp.raw)
                self._handle(resp)
                if self.state is State.DONE:
                    return
                if self._awaiting_tls and (index + 1 < len(responses) or self._reader.buffered):
                    self._fail("server sent data after STARTTLS OK, before TLS")
                    return
            if self.state is State.AWAIT_GREETING:
                self._check_partial_greeting()
        except ProtocolError as exc:
            self._fail(str(exc))

    def send_failed(self, how: str) -> None:
        """The last Send could not be written: the command never reached the server."""
        self._check_running("send_failed")
        if self._cmd is not None and self._tag_seq == 1:
            self._cmd.written = False
        self._closed(lost=how)

    def connection_lost(self, how: str) -> None:
        """The connection ended abnormally: ``how`` is e.g. "reset by the server"."""
        self._check_running("connection_lost")
        self._closed(lost=how)

    def idle_elapsed(self) -> None:
        """The ``Receive(idle=...)`` wait ran out without data."""
        self._check_running("idle_elapsed")
        if self.state is not State.AWAIT_LOGOUT:
            raise LocalProtocolError("idle_elapsed() without a Receive(idle=...)")
        if self._bye is not None:
            self._finish_logout(LogoutEnding.BYE_THEN_SILENCE)
        else:
            self._finish_logout(LogoutEnding.NO_REPLY, f"none within {LOGOUT_GRACE:g}s")

    def tls_established(self) -> None:
        """STARTTLS finished: forget what the server said in clear (RFC 3501 §6.2.1)."""
        if self.state is not State.AWAIT_TLS or self._queue:
            raise LocalProtocolError("tls_established() without a StartTLS action taken")
        self._tls_done = True
        self.outcome.caps_in_clear = self.outcome.caps_before_login
        self.outcome.caps_before_login = None
        self._advance()

    # -- output of the decision --------------------------------------------------

    def _advance(self) -> None:
        """Queue the next command, as commands.next_command decides."""
        known = Known(
            tls_done=self._tls_done,
            caps=self._current_caps(),
            authenticated=self._authenticated,
            caps_after_login=self.outcome.caps_after_login is not None,
            mailboxes_planned=self._work is not None,
            work_left=bool(self._work),
        )
        decision = next_command(self.plan, known)
        if decision is Next.NO_STARTTLS:
            self._fail(decision.value)
        elif decision is Next.LOGIN:
            self._login(known.caps or ())
        elif decision is Next.MAILBOXES:
            from . import mailboxes

            if self._work is None:
                self._work = mailboxes.plan_mailboxes(self.plan, known.caps or ())
                self.outcome.mailboxes = list(dict.fromkeys(box for _, box in self._work))
            if not self._work:  # cannot be: plan.mailboxes is not empty here
                raise LocalProtocolError("no mailbox work planned")
            name, box = self._work.pop(0)
            self._send(name, mailboxes.arguments(name, box), mailbox=box)
        else:
            self._send(decision.value)
            if decision is Next.LOGOUT:
                self.state = State.AWAIT_LOGOUT

    def _login(self, caps: tuple[str, ...]) -> None:
        creds = self.plan.credentials
        if creds is None:
            raise LocalProtocolError("login without credentials")
        from .login import login_command

        command = login_command(creds, caps)
        if command is not None:
            self.outcome.login_mechanism = command.mechanism
            self._send(command.name, command.args, shown=command.shown)
            if self._cmd is not None:
                self._cmd.pending.extend(command.pending)
        elif self.plan.encrypted:
            self._fail("no way to log in: LOGINDISABLED and no AUTH=PLAIN", Step.LOGIN)
        else:  # our --allow-cleartext-login meets a server that rightly refuses it
            reason = "the server refuses login in clear (LOGINDISABLED): use --starttls or --tls"
            self._fail(reason, Step.LOGIN, Severity.UNKNOWN)

    def _send(
        self,
        name: str,
        args: tuple[list[bytes], ...] = (),
        *,
        shown: str | None = None,
        mailbox: MailboxStatus | None = None,
    ) -> None:
        """Queue a command; a literal argument waits for the server's continuation."""
        self._tag_seq += 1
        cmd = Command(f"a{self._tag_seq}", name, mailbox)
        literal_plus = "LITERAL+" in (self._current_caps() or ())
        segments: list[bytes] = []
        current = f"{cmd.tag} {name}".encode("ascii")
        for parts in args:
            current += b" " + parts[0]
            if len(parts) == 2:  # a literal: {n} CRLF, then its bytes
                if literal_plus:
                    current = current[:-1] + b"+}\r\n" + parts[1]
                else:
                    segments.append(current + b"\r\n")
                    current = parts[1]
        segments.append(current + b"\r\n")
        cmd.pending = segments[1:]
        self._cmd = cmd
        self.step = cmd.step
        self.state = State.AWAIT_REPLY
        self._caps = []
        line = f"{cmd.tag} {name} {shown}".encode() if shown else segments[0][:-2]
        self._queue.append((Send(segments[0]), line))

    # -- input: responses ----------------------------------------------------------

    def _handle(self, resp: Response) -> None:
        if self.state is State.AWAIT_GREETING:
            self._on_greeting(resp)
            return
        cmd = self._cmd
        if cmd is None or not cmd.written:
            self._before_command(resp)
            return
        if resp.tag == "*":
            self._untagged(resp, cmd)
        elif resp.tag == "+":
            if cmd.pending:
                secret = cmd.step is Step.LOGIN
                self._queue.append((Send(cmd.pending.pop(0)), (secret and HIDDEN) or None))
            elif cmd.name == "AUTHENTICATE":  # a challenge we cannot answer: cancel
                self._queue.append((Send(b"*\r\n"), b"*"))
        elif self.state is State.AWAIT_LOGOUT:
            self._on_logout_tagged(resp, cmd)
        elif resp.tag != cmd.tag:
            self._fail(f"{cmd.name} answered with tag {resp.tag!r} instead of {cmd.tag!r}")
        else:
            self._handlers[cmd.name](resp, cmd)

    def _before_command(self, resp: Response) -> None:
        """Between the greeting and our first write nothing can be a reply (RFC 9051 §2.2.2).

        Untagged lines and garbage (no valid tag) are noise; a tagged line is a violation.
        """
        if (resp.tag == "*" and resp.kind != "BYE") or not (resp.tag == "*" or is_tag(resp.tag)):
            self.outcome.noise += 1
            if self.outcome.noise >= FLOOD_LIMIT:
                self._fail(f"server sent {FLOOD_LIMIT} untagged responses after the greeting")
        elif resp.tag == "*":
            self._fail(f"server closed the session with BYE: {resp.text}".rstrip(": "))
        else:
            self._fail(f"server sent a tagged reply ({resp.tag!r}) before any command was sent")

    def _untagged(self, resp: Response, cmd: Command) -> None:
        cmd.untagged += 1
        if cmd.untagged >= FLOOD_LIMIT:
            self._fail(f"server sent {FLOOD_LIMIT} untagged responses to {cmd.name}")
        elif resp.kind == "BYE":
            if self.state is State.AWAIT_LOGOUT:
                self._bye = resp
            else:  # an unsolicited BYE before LOGOUT: the server is shutting us out
                self._fail(f"server closed the session with BYE: {resp.text}".rstrip(": "))
        elif resp.kind == "CAPABILITY" and cmd.name == "CAPABILITY":
            room = MAX_CAPABILITIES - len(self._caps)
            self._caps.extend(capabilities_from(resp.text)[: max(room, 0)])
        elif cmd.mailbox is None:
            self.outcome.noise += 1
        else:
            from . import mailboxes

            if not mailboxes.take_untagged(resp, cmd.name, cmd.mailbox):
                self.outcome.noise += 1

    def _on_greeting(self, resp: Response) -> None:
        kind = {"OK": GreetingKind.OK, "PREAUTH": GreetingKind.PREAUTH, "BYE": GreetingKind.BYE}
        found = kind.get(resp.kind) if resp.tag == "*" else None
        greeting = Greeting(found or GreetingKind.NOT_IMAP, resp.text, resp.raw)
        self.outcome.greeting = greeting
        if greeting.kind is GreetingKind.NOT_IMAP:
            self._fail("not an IMAP greeting")
        elif greeting.kind is GreetingKind.BYE:
            self._fail("server refused the session with a BYE greeting")
        elif self.plan.starttls and greeting.kind is GreetingKind.PREAUTH:
            # STARTTLS is only valid before authentication; PREAUTH in clear would
            # otherwise silently skip encryption (a known downgrade trick).
            self._fail("server sent PREAUTH in clear, so STARTTLS is impossible")
        else:
            self._authenticated = self.outcome.preauth = greeting.kind is GreetingKind.PREAUTH
            self._caps_from_code(resp)
            self._advance()

    def _on_capability(self, resp: Response, cmd: Command) -> None:
        if resp.kind != "OK":
            self._fail(f"CAPABILITY answered {resp.kind or '(nothing)'}")
            return
        self._set_caps(tuple(self._caps) or self._current_caps() or ())
        self._caps_from_code(resp)
        self._advance()

    def _on_starttls(self, resp: Response, cmd: Command) -> None:
        if resp.kind != "OK":
            self._fail(f"STARTTLS refused: {resp.kind or '(nothing)'}")
            return
        self.state = State.AWAIT_TLS
        self.step = Step.TLS
        self._queue.append((StartTLS(), None))

    def _on_login(self, resp: Response, cmd: Command) -> None:
        if resp.kind != "OK":
            self._fail(f"login failed: {resp.said()}")
            return
        self._authenticated = True
        self._caps_from_code(resp)
        self._advance()

    def _on_mailbox(self, resp: Response, cmd: Command) -> None:
        if cmd.mailbox is not None:
            from . import mailboxes

            mailboxes.finish(cmd.name, cmd.mailbox, resp)
        self._advance()

    def _on_logout_tagged(self, resp: Response, cmd: Command) -> None:
        if resp.tag != cmd.tag:
            self._finish_logout(LogoutEnding.FOREIGN_TAG, resp.tag)
        elif resp.kind == "OK":
            ending = LogoutEnding.CLEAN if self._bye is not None else LogoutEnding.OK_WITHOUT_BYE
            self._finish_logout(ending)
        else:
            self._finish_logout(LogoutEnding.REJECTED, resp.said())

    # -- bookkeeping -----------------------------------------------------------------

    def _check_running(self, method: str) -> None:
        if self.state is State.DONE:
            raise LocalProtocolError(f"{method}() after the handshake is done")

    def _receive(self) -> Receive:
        if self.state is State.AWAIT_LOGOUT:
            return Receive(idle=BYE_SILENCE if self._bye is not None else LOGOUT_GRACE)
        return Receive()

    def _record(self, direction: str, data: bytes) -> None:
        if len(self.transcript) < TRANSCRIPT_LIMIT:
            self.transcript.append((direction, data))
        elif len(self.transcript) == TRANSCRIPT_LIMIT:
            self.transcript.append(("-", b"[transcript truncated]"))  # say that it was cut

    def _fail(
        self, reason: str, step: Step | None = None, severity: Severity = Severity.CRITICAL
    ) -> None:
        self.outcome.failure = reason
        self.outcome.failure_step = step or self.step
        self.outcome.severity = severity
        self._done()

    def _done(self) -> None:
        self.state = State.DONE
        self._queue = []

    def _current_caps(self) -> tuple[str, ...] | None:
        if self._authenticated and self.outcome.caps_after_login is not None:
            return self.outcome.caps_after_login
        return self.outcome.caps_before_login

    def _caps_from_code(self, resp: Response) -> None:
        if resp.code.upper().startswith("CAPABILITY "):
            self._set_caps(capabilities_from(resp.code)[1 : MAX_CAPABILITIES + 1])

    def _set_caps(self, caps: tuple[str, ...]) -> None:
        if self._authenticated:
            self.outcome.caps_after_login = caps
        else:
            self.outcome.caps_before_login = caps

    def _finish_logout(self, ending: LogoutEnding, detail: str = "") -> None:
        self.outcome.logout = Logout(ending, detail)
        self._done()

    def _check_partial_greeting(self) -> None:
        """Fail fast on binary or foreign banners that never send a line end."""
        partial = self._reader.buffered
        if len(partial) >= 2 and partial[:2] != b"* ":
            self._record("S", partial)
            self._on_greeting(parse_response(partial))

    def _closed(self, lost: str | None) -> None:
        if self.state is State.AWAIT_GREETING:
            partial = self._reader.buffered
            if partial[:2] not in (b"", b"* ", b"*"):
                self._record("S", partial)
                self._on_greeting(parse_response(partial))
                return
            where = "in the middle of the greeting" if partial else "before the greeting"
            self._fail(f"{_what(lost)} {where}")
            return
        cmd = self._cmd
        if cmd is not None and not cmd.written and self._tag_seq == 1:
            # Greeted and gone before we could say a word: no client could use that.
            self._fail(f"{_what(lost)} right after the greeting", severity=Severity.WARNING)
        elif self.state is State.AWAIT_LOGOUT and cmd is not None and cmd.written:
            if self._bye is not None:
                self._finish_logout(LogoutEnding.BYE_THEN_CLOSE, lost or "")
            elif lost:
                self._finish_logout(LogoutEnding.LOST_NO_REPLY, lost)
            else:
                self._finish_logout(LogoutEnding.CLOSED_NO_REPLY)
        else:
            self._fail(f"{_what(lost)} {CLOSED_WHERE.get(self.step, '')}".strip())


def _what(lost: str | None) -> str:
    return f"connection {lost}" if lost else "server closed the connection"
