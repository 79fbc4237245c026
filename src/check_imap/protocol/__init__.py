"""Sans-I/O IMAP client handshake: bytes in, actions and a classified outcome out.

Theory of operation (h11 style). No socket, ssl or clock lives in this package, so
every server quirk can be tested as a byte transcript. A driver (transport.py) loops:

    action = hs.next_action()
    Send(data)      -> write data                     (on error: hs.send_failed(how))
    Receive(idle)   -> read; hs.receive_data(bytes), b"" for an orderly close,
                       hs.connection_lost(how) for a reset or a TLS EOF without
                       close_notify, hs.idle_elapsed() when ``idle`` seconds passed
    StartTLS()      -> upgrade the connection, then hs.tls_established()
    Done(outcome)   -> stop; ``outcome`` says what happened and how bad it is

The Handshake has one explicit ``State`` (greeting, reply, TLS, logout, done); which
command comes next is the pure ``commands.next_command``. Calling the driver API out
of turn raises LocalProtocolError; what the server does wrong never raises, it ends
the session with a failure in the Outcome. Modules, bottom up: ``records`` (plan,
actions, results), ``reader`` (bytes to responses), ``imapstr`` (strings), ``commands``,
``login``, ``mailboxes``, ``state`` and ``handshake``.
"""

from __future__ import annotations

from .handshake import Handshake
from .records import (
    Credentials,
    Done,
    GreetingKind,
    LocalProtocolError,
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
from .state import BYE_SILENCE, FLOOD_LIMIT, LOGOUT_GRACE

__all__ = [
    "BYE_SILENCE",
    "FLOOD_LIMIT",
    "LOGOUT_GRACE",
    "Credentials",
    "Done",
    "GreetingKind",
    "Handshake",
    "LocalProtocolError",
    "LogoutEnding",
    "MailboxStatus",
    "Outcome",
    "Plan",
    "ProtocolError",
    "Receive",
    "Send",
    "Severity",
    "StartTLS",
]
