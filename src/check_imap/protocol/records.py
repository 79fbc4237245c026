"""What the handshake is told (Plan), what it asks for (actions), and what it found."""

from __future__ import annotations

import enum

from ..steps import Step

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms)
if TYPE_CHECKING:
    from typing import Union


class ProtocolError(Exception):
    """The byte stream cannot be an IMAP conversation (an endless line, a bad number)."""


class LocalProtocolError(Exception):
    """The driver misused the handshake (h11's name): a bug in the caller, never the server."""


class Credentials:
    __slots__ = ("password", "user")

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password=<redacted>)"


class Plan:
    """What one session does after the greeting; the same for every address."""

    __slots__ = ("credentials", "encrypted", "mailboxes", "quota", "starttls", "want_capabilities")

    def __init__(
        self,
        *,
        starttls: bool = False,
        encrypted: bool = False,
        want_capabilities: bool = False,
        credentials: Credentials | None = None,
        mailboxes: tuple[str, ...] = (),
        quota: bool = False,
    ) -> None:
        self.starttls = starttls
        self.encrypted = encrypted or starttls  # implicit TLS or STARTTLS: login is private
        self.want_capabilities = want_capabilities  # a capability policy needs them
        self.credentials = credentials
        self.mailboxes = mailboxes
        self.quota = quota  # GETQUOTAROOT for each mailbox, when QUOTA is offered


class Severity(enum.Enum):
    """How bad a failed session is; the check maps it to a plugin state."""

    CRITICAL = "critical"  # the service is broken for clients
    WARNING = "warning"  # it works, but not as it should
    UNKNOWN = "unknown"  # our configuration does not fit the server: cannot judge


# ------------------------------------------------------------------------------ results


class GreetingKind(enum.Enum):
    OK = "OK"
    PREAUTH = "PREAUTH"
    BYE = "BYE"
    NOT_IMAP = "not IMAP"


class Greeting:
    __slots__ = ("kind", "raw", "text")

    def __init__(self, kind: GreetingKind, text: str, raw: bytes) -> None:
        self.kind = kind
        self.text = text
        self.raw = raw


class LogoutEnding(enum.Enum):
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
        return self in _WITH_BYE

    @property
    def tolerated(self) -> bool:
        """Endings of a usable service: OK by default, whatever the RFC says."""
        return self not in _UNTOLERATED


_WITH_BYE = frozenset(
    {LogoutEnding.CLEAN, LogoutEnding.BYE_THEN_CLOSE, LogoutEnding.BYE_THEN_SILENCE}
)
_UNTOLERATED = frozenset({LogoutEnding.REJECTED, LogoutEnding.FOREIGN_TAG, LogoutEnding.NO_REPLY})


class Logout:
    __slots__ = ("detail", "ending")

    def __init__(self, ending: LogoutEnding, detail: str = "") -> None:
        self.ending = ending
        self.detail = detail  # server text of a NO/BAD, the foreign tag, or how it was lost


class MailboxStatus:
    """What STATUS, EXAMINE and GETQUOTAROOT said of one mailbox."""

    __slots__ = (
        "error",
        "exists",
        "messages",
        "name",
        "quota",
        "quota_error",
        "quota_root",
        "recent",
        "unseen",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.messages: int | None = None
        self.recent: int | None = None
        self.unseen: int | None = None
        self.exists: int | None = None
        self.error: str | None = None  # STATUS or EXAMINE refused
        self.quota: dict[str, tuple[int, int]] | None = None  # resource -> (usage, limit)
        self.quota_root: str | None = None
        self.quota_error: str | None = None


class Outcome:
    """Everything the handshake learnt; ``failure`` set means the session failed.

    Capabilities are kept per stage, because policies judge a stage: ``in_clear``
    (before STARTTLS), ``before_login`` (the session's first stage after any TLS) and
    ``after_login``. ``None`` means the server never told us at that stage.
    """

    __slots__ = (
        "caps_after_login",
        "caps_before_login",
        "caps_in_clear",
        "failure",
        "failure_step",
        "greeting",
        "login_mechanism",
        "logout",
        "mailboxes",
        "noise",
        "preauth",
        "severity",
    )

    def __init__(self) -> None:
        self.greeting: Greeting | None = None
        self.caps_in_clear: tuple[str, ...] | None = None
        self.caps_before_login: tuple[str, ...] | None = None
        self.caps_after_login: tuple[str, ...] | None = None
        self.login_mechanism: str | None = None
        self.preauth = False  # the server authenticated the connection itself
        self.mailboxes: list[MailboxStatus] = []
        self.logout: Logout | None = None
        self.failure: str | None = None
        self.failure_step: Step | None = None
        self.severity = Severity.CRITICAL
        self.noise = 0  # untagged lines that answered nothing we asked

    def all_capabilities(self) -> set[str]:
        """The union of every stage: what the server advertised at some point."""
        stages = (self.caps_in_clear, self.caps_before_login, self.caps_after_login)
        return {cap for stage in stages for cap in stage or ()}


# ------------------------------------------------------------------------------ actions


class Send:
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class Receive:
    """Read more. ``idle``: seconds of silence after which to call ``idle_elapsed()``."""

    __slots__ = ("idle",)

    def __init__(self, idle: float | None = None) -> None:
        self.idle = idle


class StartTLS:
    """Upgrade the connection now, then call ``tls_established()``."""

    __slots__ = ()


class Done:
    __slots__ = ("outcome",)

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


if TYPE_CHECKING:
    Action = Union[Send, Receive, StartTLS, Done]
