"""Protocol tests that read like RFC 3501's examples: interleaved ``S:`` and ``C:`` lines.

``converse(plan, script)`` drives a real Handshake. Each ``S:`` line is fed to it (with
CRLF); consecutive ``S:`` lines arrive as one segment, as from one write of the
server, and ``S:`` lines where the client would write are what it drains first
(arrived before the command went out); each ``C:`` line must be exactly what it sends next, and the test fails at the
first ``C:`` line that differs. Events the wire cannot spell:

- ``S: <close>``: an orderly close; ``S: <reset>``: the connection was reset;
- ``S: <silence>``: the idle wait of a ``Receive(idle=...)`` ran out;
- ``C: <starttls>``: the handshake asks to start TLS (the driver then "succeeds").
"""

from __future__ import annotations

from check_imap.protocol import Done, Handshake, Outcome, Plan, Receive, Send, StartTLS


class TranscriptMismatch(AssertionError):
    pass


def _lines(script: str) -> list[tuple[int, str, str]]:
    out = []
    for number, raw in enumerate(script.strip("\n").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        who, sep, text = line.partition(": ")
        if who not in ("S", "C") or not sep:
            if line in ("S:", "C:"):
                who, text = line[0], ""
            else:
                raise ValueError(f"line {number}: not an S:/C: line: {raw!r}")
        out.append((number, who, text))
    return out


def converse(plan: Plan, script: str, max_actions: int = 10_000) -> Outcome:
    """Run ``script`` against a Handshake for ``plan``; return its outcome."""
    hs = Handshake(plan)
    todo = _lines(script)
    for _ in range(max_actions):
        while hs.wants_to_write and todo and todo[0][1] == "S" and not hs.finished:
            _feed(hs, todo)  # the driver drains what arrived before it writes
        action = hs.next_action()
        if isinstance(action, Done):
            if todo:
                number, who, text = todo[0]
                raise TranscriptMismatch(
                    f"line {number}: handshake is done, script has {who}: {text}"
                )
            return action.outcome
        if not todo:
            raise TranscriptMismatch(f"script ended, handshake wants {type(action).__name__}")
        number, who, text = todo[0]
        if isinstance(action, Send):
            sent = action.data.decode("utf-8", "backslashreplace").removesuffix("\r\n")
            if who != "C" or text != sent:
                raise TranscriptMismatch(
                    f"line {number}: expected {who}: {text}, client sent C: {sent}"
                )
        elif isinstance(action, StartTLS):
            if (who, text) != ("C", "<starttls>"):
                raise TranscriptMismatch(
                    f"line {number}: expected {who}: {text}, client starts TLS"
                )
            todo.pop(0)
            hs.tls_established()
            continue
        elif isinstance(action, Receive):
            if who != "S":
                raise TranscriptMismatch(
                    f"line {number}: expected C: {text}, client waits for data"
                )
            _feed(hs, todo)
            continue
        todo.pop(0)
    raise TranscriptMismatch(f"no end after {max_actions} actions")


def _feed(hs: Handshake, todo: list[tuple[int, str, str]]) -> None:
    """Feed the next event, or the run of data lines that forms one segment."""
    _number, _who, text = todo.pop(0)
    if text == "<close>":
        hs.receive_data(b"")
    elif text == "<reset>":
        hs.connection_lost("reset by the server")
    elif text == "<silence>":
        hs.idle_elapsed()
    else:
        chunk = text.encode("utf-8") + b"\r\n"
        while todo and todo[0][1] == "S" and not todo[0][2].startswith("<"):
            chunk += todo.pop(0)[2].encode("utf-8") + b"\r\n"
        hs.receive_data(chunk)
