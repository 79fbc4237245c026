"""What a probe of one address found, and the failures it can end with; one deadline."""

from __future__ import annotations

import socket
import time

from ..certs import TLSInfo
from ..protocol import Outcome
from ..steps import Step, waiting


class NetworkError(Exception):
    """A network-level failure, reported as a check state (not a bug)."""

    def __init__(self, reason: str, step: Step) -> None:
        super().__init__(reason)
        self.reason = reason
        self.step = step


class NetworkTimeout(NetworkError):
    """The one deadline ran out."""


class CertificateError(NetworkError):
    """The peer certificate failed verification (expired, wrong host, untrusted ...)."""

    def __init__(self, reason: str, step: Step, verify_code: int) -> None:
        super().__init__(reason, step)
        self.verify_code = verify_code


class HandshakeFailure(NetworkError):
    """The TLS handshake failed; ``code`` is OpenSSL's reason, for the legacy probe."""

    def __init__(self, reason: str, step: Step, code: str) -> None:
        super().__init__(reason, step)
        self.code = code


class Deadline:
    """One monotonic deadline for the whole run."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.monotonic()
        self.end = self.start + seconds

    def remaining(self, step: Step) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise NetworkTimeout(f"timeout after {self.seconds:g}s {waiting(step)}", step)
        return left

    def elapsed(self) -> float:
        return time.monotonic() - self.start


class Session:
    """What happened on the wire with one address; the check turns it into states."""

    __slots__ = (
        "address",
        "error",
        "label",
        "outcome",
        "received",
        "timings",
        "tls",
        "total",
        "transcript",
        "unverified",
    )

    def __init__(self, outcome: Outcome, label: str = "") -> None:
        self.outcome = outcome
        self.label = label  # "" for a single address, else "v4_1", "v6_1" ...
        self.timings: dict[Step, float] = {}
        self.total = 0.0
        self.address: str | None = None
        self.tls: TLSInfo | None = None
        self.transcript: list[tuple[str, bytes]] = []
        self.error: NetworkError | None = None
        self.unverified: TLSInfo | None = None  # after a verification failure: what was shown
        self.received = 0  # bytes the server sent

    @property
    def completed(self) -> bool:
        return self.error is None and self.outcome.failure is None


def charge(session: Session, step: Step, start: float) -> None:
    session.timings[step] = session.timings.get(step, 0.0) + (time.monotonic() - start)


def strerror(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return str(exc.strerror or exc)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return str(exc.strerror).lower() if exc.strerror else str(exc)
