"""The only socket, ssl and clock code: resolve, connect, TLS/STARTTLS, drive the handshake.

One monotonic deadline bounds every step: name resolution, connect, the TLS handshake,
and every read and write. Time spent is charged to the phase the handshake is in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import ssl
import time
from dataclasses import dataclass, field

from .certs import CertBlob
from .options import ip_family
from .protocol import Credentials, Done, Handshake, Outcome, Phase, Receive, Send, StartTLS

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms)
if TYPE_CHECKING:
    from typing import Any

RECV_SIZE = 16 * 1024  # with protocol.MAX_LINE this bounds what a server can make us hold

# OpenSSL reasons that mean "the other side is not speaking TLS at all".
_NOT_TLS_REASONS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "PACKET_LENGTH_TOO_LONG",
        "RECORD_LAYER_FAILURE",
        "HTTP_REQUEST",
        "UNKNOWN_PROTOCOL",
        "RECORD_TOO_LARGE",
    }
)


# ... and those that mean "we could not agree on a TLS version".
_OLD_TLS_REASONS = frozenset(
    {"UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "NO_PROTOCOLS_AVAILABLE"}
)


# X509_V_ERR_EE_KEY_TOO_SMALL, _CA_KEY_TOO_SMALL, _CA_MD_TOO_WEAK: OpenSSL's security
# level refused a weak key or signature digest; our policy makes that a WARNING.
WEAK_CRYPTO = frozenset({66, 67, 68})


class NetworkError(Exception):
    """A network-level failure, reported as a check state (not a bug)."""

    def __init__(self, reason: str, phase: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.phase = phase


class NetworkTimeout(NetworkError):
    """The one deadline ran out."""


class CertificateError(NetworkError):
    """The peer certificate failed verification (expired, wrong host, untrusted ...)."""

    def __init__(self, reason: str, phase: str, verify_code: int) -> None:
        super().__init__(reason, phase)
        self.verify_code = verify_code


class Deadline:
    """One monotonic deadline for the whole check."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.monotonic()
        self.end = self.start + seconds

    def remaining(self, phase: str) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise NetworkTimeout(f"timeout after {self.seconds:g}s {_WAITING[phase]}", phase)
        return left

    def elapsed(self) -> float:
        return time.monotonic() - self.start


_WAITING = {
    "resolve": "resolving the host name",
    "connect": "connecting",
    "tls": "in the TLS handshake",
    Phase.GREETING.value: "waiting for the greeting",
    Phase.CAPABILITY.value: "waiting for the CAPABILITY reply",
    Phase.STARTTLS.value: "in STARTTLS",
    Phase.LOGIN.value: "logging in",
    Phase.MAILBOX.value: "in the mailbox checks",
    Phase.LOGOUT.value: "waiting for the LOGOUT reply",
}


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    family: int = socket.AF_UNSPEC
    tls: bool = False  # implicit TLS
    starttls: bool = False
    sni: str | None = None  # name sent and verified; defaults to host
    ca_file: str | None = None
    insecure: bool = False
    min_tls: str = "1.2"
    weak_ok: bool = False  # accept weak keys/digests in verification; check.py judges them


@dataclass
class TLSInfo:
    version: str
    cipher: str
    bits: int
    verified: bool
    chain: tuple[CertBlob, ...]  # verified chain (leaf first) when verified, else presented
    presented: tuple[CertBlob, ...]  # what the server sent, leaf first


@dataclass
class Session:
    """What happened on the wire; the check turns it into states."""

    outcome: Outcome
    timings: dict[str, float] = field(default_factory=dict)
    total: float = 0.0
    address: str | None = None
    tls: TLSInfo | None = None
    transcript: list[tuple[str, bytes]] = field(default_factory=list)
    error: NetworkError | None = None
    unverified: TLSInfo | None = None  # after a verification failure: what was presented
    received: int = 0  # bytes the server sent in this session


def make_context(target: Target) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=target.ca_file)
    # Debian's 3.11 and Python 3.9 set this by default: a close without close_notify
    # would then read as a clean EOF, and "closed without reply" is what we must see.
    ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    if target.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if target.min_tls == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    if target.weak_ok:
        # Chain, dates and host name stay verified; only key and digest strength are
        # left to our own policy, which reports them as WARNING rather than failing.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


@dataclass(frozen=True)
class Plan:
    """What the session does after the greeting (see protocol.Handshake)."""

    want_capabilities: bool = False
    credentials: Credentials | None = None
    mailboxes: tuple[str, ...] = ()
    quota: bool = False


def run(target: Target, timeout: float, plan: Plan = Plan()) -> Session:
    """Run the whole session; network failures end up in ``Session.error``, never raised."""
    deadline = Deadline(timeout)
    return _checked_session(target, deadline, plan, None)


def run_all(target: Target, timeout: float, plan: Plan = Plan()) -> list[tuple[str, Session]]:
    """One session per resolved address, concurrently, all within the one deadline.

    Returns ``(label, session)`` pairs such as ``("v4_1", ...)``, IPv4 first. A name
    that does not resolve gives one failed session labelled ``"v4_1"``.
    """
    import threading

    deadline = Deadline(timeout)
    try:
        infos = _resolve(target, deadline)
    except NetworkError as exc:
        failed = Session(outcome=Outcome(), error=exc, total=deadline.elapsed())
        return [("v4_1", failed)]
    seen: list[Any] = []
    for info in sorted(infos, key=lambda i: (i[0] != socket.AF_INET, i[4][0])):
        if info not in seen:
            seen.append(info)
    labels: list[str] = []
    counts = {socket.AF_INET: 0, socket.AF_INET6: 0}
    for info in seen:
        counts[info[0]] = counts.get(info[0], 0) + 1
        labels.append(f"v{4 if info[0] == socket.AF_INET else 6}_{counts[info[0]]}")
    results: list[Session | None] = [None] * len(seen)

    def work(index: int) -> None:
        session = _checked_session(target, deadline, plan, [seen[index]])
        if session.address is None:  # not connected: still name the address it was for
            session.address = _fmt_addr(seen[index][4])
        results[index] = session

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(seen))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline.end - time.monotonic()) + 0.5)
    out: list[tuple[str, Session]] = []
    for label, info, result in zip(labels, seen, results):
        session = result
        if session is None:  # cannot happen: every socket step is bounded by the deadline
            reason = f"timeout after {deadline.seconds:g}s"
            session = Session(outcome=Outcome(), error=NetworkTimeout(reason, "connect"))
            session.address = _fmt_addr(info[4])
        out.append((label, session))
    return out


def _checked_session(
    target: Target, deadline: Deadline, plan: Plan, infos: list[Any] | None
) -> Session:
    session = _session(target, deadline, plan, infos)
    if isinstance(session.error, CertificateError) and session.error.verify_code in WEAK_CRYPTO:
        session = _session(dataclasses.replace(target, weak_ok=True), deadline, plan, infos)
    if isinstance(session.error, CertificateError):
        # Verification failed and stays failed. To explain why, look (without trusting)
        # at what the server presents, within what is left of the same deadline.
        probe = _session(dataclasses.replace(target, insecure=True), deadline, Plan(), infos)
        session.unverified = probe.tls
    session.total = deadline.elapsed()
    return session


def _session(target: Target, deadline: Deadline, plan: Plan, infos: list[Any] | None) -> Session:
    hs = Handshake(
        starttls=target.starttls,
        want_capabilities=plan.want_capabilities,
        credentials=plan.credentials,
        mailboxes=plan.mailboxes,
        quota=plan.quota,
    )
    session = Session(outcome=hs.outcome)
    sock: socket.socket | None = None
    try:
        ctx = make_context(target) if (target.tls or target.starttls) else None
        sock, session.address = _connect(target, deadline, session.timings, infos)
        if ctx is not None and target.tls:
            sock = _start_tls(sock, ctx, target, deadline, session, "tls")
        _drive(hs, sock, ctx, target, deadline, session)
    except NetworkError as exc:
        session.error = exc
    finally:
        session.total = deadline.elapsed()
        session.transcript = hs.transcript
        session.received = hs.received
        if sock is not None:
            _close(sock)
    return session


def _charge(timings: dict[str, float], phase: str, start: float) -> None:
    timings[phase] = timings.get(phase, 0.0) + (time.monotonic() - start)


def _resolve(target: Target, deadline: Deadline) -> list[Any]:
    """getaddrinfo has no timeout: run it in a daemon thread bounded by the deadline."""
    args = (target.host, target.port, target.family, socket.SOCK_STREAM)
    if ip_family(target.host):
        try:
            return socket.getaddrinfo(*args, 0, socket.AI_NUMERICHOST)
        except OSError as exc:
            reason = f"cannot use address {target.host}: {_strerror(exc)}"
            raise NetworkError(reason, "connect") from None
    import threading  # only needed for names, not for the common IP-literal case

    box: list[Any] = []
    done = threading.Event()

    def work() -> None:
        try:
            box.append(socket.getaddrinfo(*args))
        except OSError as exc:
            box.append(exc)
        finally:
            done.set()

    threading.Thread(target=work, daemon=True).start()
    if not done.wait(deadline.remaining("resolve")):
        deadline.remaining("resolve")  # raises the timeout
    result = box[0]
    if isinstance(result, OSError):
        raise NetworkError(f"cannot resolve {target.host}: {_strerror(result)}", "connect")
    return list(result)


def _connect(
    target: Target, deadline: Deadline, timings: dict[str, float], infos: list[Any] | None
) -> tuple[socket.socket, str]:
    start = time.monotonic()
    if infos is None:
        infos = _resolve(target, deadline)
    last: NetworkError | None = None
    for family, socktype, proto, _canon, addr in infos:
        sock = socket.socket(family, socktype, proto)
        try:
            sock.settimeout(deadline.remaining("connect"))
            sock.connect(addr)
            # Small request/response writes: never let Nagle hold one back for an ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except socket.timeout:
            sock.close()
            deadline.remaining("connect")
            last = NetworkError(f"connect timed out{_via(target, addr)}", "connect")
        except OSError as exc:
            sock.close()
            last = NetworkError(f"{_strerror(exc)}{_via(target, addr)}", "connect")
        else:
            _charge(timings, "connect", start)
            return sock, _fmt_addr(addr)
    raise last or NetworkError(f"no usable address for {target.host}", "connect")


def _via(target: Target, addr: Any) -> str:
    """Name the address only when -H was a name: with an IP it would repeat itself."""
    return "" if addr[0] == target.host else f" ({addr[0]})"


def _fmt_addr(addr: Any) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _strerror(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return str(exc.strerror or exc)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return str(exc.strerror or exc).lower() if exc.strerror else str(exc)


def _start_tls(
    sock: socket.socket,
    ctx: ssl.SSLContext,
    target: Target,
    deadline: Deadline,
    session: Session,
    phase: str,
) -> ssl.SSLSocket:
    start = time.monotonic()
    name = target.sni or target.host
    tls = ctx.wrap_socket(
        sock,
        server_hostname=name,
        do_handshake_on_connect=False,
        suppress_ragged_eofs=False,  # so a missing close_notify is seen and reported
    )
    try:
        tls.settimeout(deadline.remaining(phase))
        tls.do_handshake()
    except socket.timeout:
        deadline.remaining(phase)
        raise NetworkTimeout("TLS handshake timed out", phase) from None
    except ssl.SSLCertVerificationError as exc:
        raise CertificateError(_verify_reason(exc, name), phase, exc.verify_code) from None
    except ssl.SSLError as exc:
        raise NetworkError(_tls_reason(exc, target), phase) from None
    except OSError as exc:
        raise NetworkError(f"TLS handshake failed: {_strerror(exc)}", phase) from None
    _charge(session.timings, "tls", start)
    session.tls = _tls_info(tls, verified=not target.insecure)
    return tls


def _verify_reason(exc: ssl.SSLCertVerificationError, name: str) -> str:
    message = str(exc.verify_message or exc.reason or exc)
    if exc.verify_code in (62, 64):  # hostname / IP address mismatch
        return f"certificate is not valid for {name}"
    return f"certificate verify failed: {message.rstrip('.')}"


def _tls_reason(exc: ssl.SSLError, target: Target) -> str:
    if exc.reason in _NOT_TLS_REASONS:
        hint = "plain IMAP port? try without --tls" if target.tls else "not TLS after STARTTLS"
        return f"TLS handshake failed: the server does not speak TLS ({hint})"
    if exc.reason in _OLD_TLS_REASONS:
        return f"TLS handshake failed: server does not support TLS {target.min_tls} or newer"
    if isinstance(exc, ssl.SSLEOFError) or exc.reason == "UNEXPECTED_EOF_WHILE_READING":
        return "TLS handshake failed: connection closed by the server"
    return f"TLS handshake failed: {exc.reason or exc}"


def _tls_info(tls: ssl.SSLSocket, verified: bool) -> TLSInfo:
    cipher = tls.cipher() or ("", "", 0)
    presented = _chain(tls, "get_unverified_chain")
    if not presented:  # Python 3.9: the leaf is all ssl gives us
        der = tls.getpeercert(binary_form=True)
        presented = ((der, tls.getpeercert() if verified else None),) if der else ()
    chain = _chain(tls, "get_verified_chain") if verified else ()
    return TLSInfo(
        version=tls.version() or "",
        cipher=cipher[0],
        bits=cipher[2] or 0,
        verified=verified,
        chain=chain or presented,
        presented=presented,
    )


def _chain(tls: ssl.SSLSocket, method: str) -> tuple[CertBlob, ...]:
    """The chain as (DER, decoded dict) pairs, leaf first; () where Python hides it.

    The ssl object's methods (private since 3.10) return Certificate objects that
    decode themselves; 3.13's public SSLSocket methods return bare DER instead.
    """
    sslobj = getattr(tls, "_sslobj", None)
    getter = getattr(sslobj, method, None)
    try:
        if getter is not None:
            certs = getter() or []
            return tuple((c.public_bytes(_DER), c.get_info()) for c in certs)
        public = getattr(tls, method, None)
        if public is not None:
            return tuple((der, None) for der in public() or [])
    except (ssl.SSLError, ValueError, AttributeError):
        pass
    return ()


_DER = getattr(getattr(ssl, "_ssl", None), "ENCODING_DER", 2)


def _drive(
    hs: Handshake,
    sock: socket.socket,
    ctx: ssl.SSLContext | None,
    target: Target,
    deadline: Deadline,
    session: Session,
) -> None:
    while True:
        phase = hs.phase.value
        action = hs.next_action()
        start = time.monotonic()
        if isinstance(action, Done):
            return
        if isinstance(action, Send):
            _send(sock, action.data, deadline, phase, hs)
        elif isinstance(action, Receive):
            _receive(sock, action, deadline, phase, hs)
        elif isinstance(action, StartTLS):
            if ctx is None:  # cannot happen: STARTTLS is only requested in starttls mode
                raise NetworkError("internal error: STARTTLS without a TLS context", phase)
            sock = _start_tls(sock, ctx, target, deadline, session, phase)
            hs.tls_established()
            continue  # _start_tls charged the time already
        _charge(session.timings, phase, start)


def _send(sock: socket.socket, data: bytes, deadline: Deadline, phase: str, hs: Handshake) -> None:
    try:
        sock.settimeout(deadline.remaining(phase))
        sock.sendall(data)
    except socket.timeout:
        deadline.remaining(phase)
        raise NetworkTimeout(f"timeout sending to the server ({phase})", phase) from None
    except OSError as exc:
        # The server may already have gone; let the handshake classify what it read.
        hs.connection_lost(_lost(exc))


def _receive(
    sock: socket.socket, action: Receive, deadline: Deadline, phase: str, hs: Handshake
) -> None:
    left = deadline.remaining(phase)
    idle = action.idle is not None and action.idle < left
    sock.settimeout(action.idle if idle else left)
    try:
        data = sock.recv(RECV_SIZE)
    except socket.timeout:
        if idle:
            hs.idle_elapsed()
            return
        deadline.remaining(phase)
        raise NetworkTimeout(
            f"timeout after {deadline.seconds:g}s {_WAITING[phase]}", phase
        ) from None
    except OSError as exc:
        hs.connection_lost(_lost(exc))
        return
    hs.receive_data(data)


def _lost(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLEOFError):
        return "closed without TLS close_notify"
    if isinstance(exc, ConnectionResetError):
        return "reset by the server"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error {exc.reason or exc}"
    return _strerror(exc)


def _close(sock: socket.socket) -> None:
    """Close without waiting: never unwrap() (our close_notify after their FIN draws an RST)."""
    with contextlib.suppress(OSError):
        sock.close()
