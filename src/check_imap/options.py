"""The validated options of one check run: plain data, no dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field


def ip_family(host: str) -> int:
    """AF_INET or AF_INET6 when ``host`` is an IP address literal, else 0."""
    import socket  # already loaded by every caller; imported here to keep this module light

    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    return 0


PHASES = ("connect", "tls", "greeting", "login", "mailbox", "logout")
"""Phases with their own timing metric (``time_<phase>``) and thresholds."""


class UsageError(Exception):
    """Bad command-line input: reported as one UNKNOWN line, exit 3."""


@dataclass(frozen=True)
class Options:
    host: str
    port: int
    family: int = 0  # socket.AF_UNSPEC, AF_INET or AF_INET6
    tls: bool = False
    starttls: bool = False
    sni: str | None = None
    ca_file: str | None = None
    insecure: bool = False
    min_tls: str = "1.2"
    timeout: float = 10.0
    timeout_state: str = "critical"
    warning: str | None = None
    critical: str | None = None
    phase_warning: dict[str, str] = field(default_factory=dict)
    phase_critical: dict[str, str] = field(default_factory=dict)
    strict_logout: bool = False
    verbose: int = 0
    cert_warning: int = 21  # days
    cert_critical: int = 7
    fingerprints: tuple[str, ...] = ()  # lower-case SHA-256 hex
    ignore_rsa_size: bool = False
    ignore_ec_size: bool = False
    ignore_sig_alg: bool = False
    allow_empty_san: bool = False
    cert_cache: str | None = None  # path, or None for no cache
    user: str | None = None
    password: str | None = field(default=None, repr=False)  # never printed
    allow_cleartext_login: bool = False
    mailboxes: tuple[str, ...] = ()
    messages_warning: str | None = None
    messages_critical: str | None = None
    quota_warning: str | None = None
    quota_critical: str | None = None
    require_capabilities: tuple[str, ...] = ()
    forbid_capabilities: tuple[str, ...] = ()
    capability_state: str = "warning"
    require_logindisabled: bool = False
    all_addresses: bool = False

    @property
    def capability_policy(self) -> bool:
        return bool(
            self.require_capabilities or self.forbid_capabilities or self.require_logindisabled
        )

    @property
    def mode(self) -> str:
        return "tls" if self.tls else "starttls" if self.starttls else "plain"
