"""The handshake's explicit state, its limits, and the record of a command in flight."""

from __future__ import annotations

import enum

from ..steps import Step
from .records import MailboxStatus

LOGOUT_GRACE = 2.0
"""Seconds to wait for any reply to LOGOUT before giving up on it."""

BYE_SILENCE = 0.3
"""Seconds of quiet after a BYE before we stop waiting for the tagged OK.

Courier over TLS sends BYE, OK and close_notify but keeps TCP open for minutes;
a server that sends BYE and then nothing must not cost us the whole timeout."""

TRANSCRIPT_LIMIT = 64
"""Transcript entries kept for -v output; a chatty server cannot grow it further."""

FLOOD_LIMIT = 10_000
"""Untagged responses to one command beyond which the server is flooding us."""

MAX_CAPABILITIES = 1_000
"""Capability atoms kept per stage; a longer list is cut, not stored."""


class State(enum.Enum):
    AWAIT_GREETING = enum.auto()
    AWAIT_REPLY = enum.auto()  # a command is queued or in flight
    AWAIT_TLS = enum.auto()  # STARTTLS answered OK: the driver upgrades the connection
    AWAIT_LOGOUT = enum.auto()  # LOGOUT queued or in flight: every ending is classified
    DONE = enum.auto()


STEPS = {
    "CAPABILITY": Step.CAPABILITY,
    "STARTTLS": Step.STARTTLS,
    "LOGIN": Step.LOGIN,
    "AUTHENTICATE": Step.LOGIN,
    "STATUS": Step.MAILBOX,
    "EXAMINE": Step.MAILBOX,
    "GETQUOTAROOT": Step.MAILBOX,
    "LOGOUT": Step.LOGOUT,
}

HIDDEN = b"[credentials redacted]"

CLOSED_WHERE = {
    Step.CAPABILITY: "after CAPABILITY",
    Step.STARTTLS: "after STARTTLS",
    Step.LOGIN: "during login",
    Step.MAILBOX: "during the mailbox checks",
}


class Command:
    __slots__ = ("mailbox", "name", "pending", "step", "tag", "untagged", "written")

    def __init__(self, tag: str, name: str, mailbox: MailboxStatus | None) -> None:
        self.tag = tag
        self.name = name
        self.step = STEPS[name]
        self.mailbox = mailbox
        self.pending: list[bytes] = []  # parts sent after a "+" continuation
        self.written = False  # only a written command can be answered
        self.untagged = 0  # untagged responses while it was in flight
