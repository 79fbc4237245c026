"""The only socket, ssl and clock code: resolve, connect, TLS, and drive the handshake.

One monotonic deadline bounds every step of a run: name resolution, connect, each TLS
handshake, every read and write, for one address or all of them. Time is charged to
the step the handshake is in (see steps.py). Network failures never raise out of
``run``: they end up in ``Session.error``, and the check judges them.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time

from . import tlsreasons
from .certs import CertBlob, TLSInfo
from .options import Target, UsageError, ip_family
from .protocol import Done, Handshake, Outcome, Plan, Receive, Send, StartTLS
from .steps import Step, waiting

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms)
if TYPE_CHECKING:
    from typing import Any

RECV_SIZE = 16 * 1024  # with the reader's line limit this bounds what a server makes us hold

# X509_V_ERR_EE_KEY_TOO_SMALL, _CA_KEY_TOO_SMALL, _CA_MD_TOO_WEAK: OpenSSL's security
# level refused a weak key or digest; our certificate policy makes that a WARNING.
WEAK_CRYPTO = frozenset({66, 67, 68})
# X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT(_LOCALLY): with the hashed directory, try the bundle.
UNKNOWN_ISSUER = frozenset({2, 20})


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


# ------------------------------------------------------------------------- TLS contexts


def _hashed_dir(path: str | None) -> bool:
    """Whether ``path`` is an OpenSSL hashed directory (``5ad8a5d6.0`` entries)."""
    if not path:
        return False
    try:
        with __import__("os").scandir(path) as entries:
            for entry in entries:
                name = entry.name
                if len(name) >= 10 and name[8] == "." and name[9:].isdigit():
                    try:
                        int(name[:8], 16)
                    except ValueError:
                        continue
                    return True
    except OSError:
        return False
    return False


class Contexts:
    """The run's TLS contexts, each made once, on first use, and shared by all addresses.

    Without --ca-file the system store is read the fast way: OpenSSL's hashed directory
    loads only the issuer it needs, where the bundle file would be parsed whole (~20 ms).
    A chain the directory cannot complete is retried against the bundle, so the
    verdict is the same as with the full default store.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self._made: dict[str, ssl.SSLContext] = {}
        paths = ssl.get_default_verify_paths()
        self.capath = paths.capath if _hashed_dir(paths.capath) else None
        self.cafile = paths.cafile

    def get(self, kind: str) -> ssl.SSLContext:
        ctx = self._made.get(kind)
        if ctx is None:
            ctx = self._made[kind] = self._make(kind)
        return ctx

    @property
    def can_retry_bundle(self) -> bool:
        return self.target.ca_data is None and self.capath is not None and bool(self.cafile)

    def _make(self, kind: str) -> ssl.SSLContext:
        target = self.target
        unverified = target.insecure or kind in ("insecure", "probe")
        try:
            if unverified:  # nothing to trust: no store to load
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            elif target.ca_data is not None:
                ctx = ssl.create_default_context(cadata=target.ca_data)
            elif kind == "bundle" or self.capath is None:
                ctx = ssl.create_default_context()
            else:
                ctx = ssl.create_default_context(capath=self.capath)
        except ssl.SSLError as exc:
            raise UsageError(f"--ca-file {target.ca_file}: no usable certificate ({exc})") from None
        # Debian's 3.11 and Python 3.9 set this by default: a close without close_notify
        # would then read as a clean EOF, and "closed without reply" is what we must see.
        ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
        ctx.minimum_version = (
            ssl.TLSVersion.TLSv1_3 if target.min_tls == "1.3" else ssl.TLSVersion.TLSv1_2
        )
        if kind == "weak":
            # Chain, dates and name stay verified; key and digest strength are left to
            # our own policy, which reports them as WARNING rather than failing.
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        if kind == "probe":
            # Only to learn what an old server settles for; never trusted, never judged.
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            with contextlib.suppress(ssl.SSLError):
                ctx.set_ciphers("ALL:@SECLEVEL=0")
        return ctx


# ------------------------------------------------------------------------------ the run


def run(target: Target, plan: Plan) -> list[Session]:
    """One session, or one per address with --all-addresses, all in one deadline."""
    deadline = Deadline(target.timeout)
    contexts = Contexts(target)
    if target.encrypted:
        contexts.get("main")  # a bad --ca-file is a usage error, raised here, not in a thread
    if not target.all_addresses:
        return [_probe(target, contexts, plan, deadline, None, "")]
    try:
        infos = _resolve(target, deadline)
    except NetworkError as exc:
        failed = Session(Outcome(), "v4_1")
        failed.error, failed.total = exc, deadline.elapsed()
        return [failed]
    seen: list[Any] = []
    for info in sorted(infos, key=lambda i: (i[0] != socket.AF_INET, i[4][0])):
        if info not in seen:
            seen.append(info)
    counts: dict[int, int] = {}
    labels = []
    for info in seen:
        counts[info[0]] = counts.get(info[0], 0) + 1
        labels.append(f"v{4 if info[0] == socket.AF_INET else 6}_{counts[info[0]]}")
    return _concurrently(target, contexts, plan, deadline, seen, labels)


def _concurrently(
    target: Target,
    contexts: Contexts,
    plan: Plan,
    deadline: Deadline,
    infos: list[Any],
    labels: list[str],
) -> list[Session]:
    import threading

    results: list[Session | None] = [None] * len(infos)

    def work(index: int) -> None:
        try:
            results[index] = _probe(target, contexts, plan, deadline, [infos[index]], labels[index])
        except Exception as exc:  # a bug must not print "Exception in thread" on stderr
            failed = results[index] = Session(Outcome(), labels[index])
            failed.error = NetworkError(f"internal error: {exc!r}", Step.CONNECT)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(infos))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline.end - time.monotonic()) + 0.5)
    sessions = []
    for index, found in enumerate(results):
        session = found
        if session is None:  # every socket step is bounded; this is the backstop
            session = Session(Outcome(), labels[index])
            session.error = NetworkTimeout(f"timeout after {deadline.seconds:g}s", Step.CONNECT)
        if session.address is None:  # not connected: still name the address it was for
            session.address = _fmt_addr(infos[index][4])
        sessions.append(session)
    return sessions


def _probe(
    target: Target,
    contexts: Contexts,
    plan: Plan,
    deadline: Deadline,
    infos: list[Any] | None,
    label: str,
) -> Session:
    """One address in full: the session, and the retries or probes that explain it."""
    main = contexts.get("main") if target.encrypted else None
    session = _session(target, main, plan, deadline, infos, label)
    error = session.error
    if isinstance(error, CertificateError) and error.verify_code in WEAK_CRYPTO:
        session = _session(target, contexts.get("weak"), plan, deadline, infos, label)
    elif (
        isinstance(error, CertificateError)
        and error.verify_code in UNKNOWN_ISSUER
        and contexts.can_retry_bundle
    ):
        session = _session(target, contexts.get("bundle"), plan, deadline, infos, label)
    error = session.error
    if isinstance(error, CertificateError):
        # Verification failed and stays failed. To explain why, look (without trusting)
        # at what the server presents, within what is left of the same deadline.
        look = _session(target, contexts.get("insecure"), _tls_only(plan), deadline, infos, label)
        session.unverified = look.tls
    elif isinstance(error, HandshakeFailure) and error.code in tlsreasons.NO_AGREEMENT:
        look = _session(target, contexts.get("probe"), _tls_only(plan), deadline, infos, label)
        settled = (look.tls.version, look.tls.cipher) if look.tls is not None else None
        session.error = HandshakeFailure(_explain(target, error.code, settled), error.step, "")
    session.total = deadline.elapsed()
    return session


def _tls_only(plan: Plan) -> Plan:
    return Plan(starttls=plan.starttls, encrypted=plan.encrypted)


def _explain(target: Target, code: str, settled: tuple[str, str] | None) -> str:
    return tlsreasons.explain(
        code, tls=target.tls, min_tls=target.min_tls, name=target.server_name, settled=settled
    )


def _session(
    target: Target,
    ctx: ssl.SSLContext | None,
    plan: Plan,
    deadline: Deadline,
    infos: list[Any] | None,
    label: str,
) -> Session:
    hs = Handshake(plan)
    session = Session(hs.outcome, label)
    ctx = ctx if target.encrypted else None
    sock: socket.socket | None = None
    try:
        if infos is None:
            start = time.monotonic()
            infos = _resolve(target, deadline)
            _charge(session, Step.RESOLVE, start)
        sock, session.address = _connect(target, deadline, session, infos)
        if ctx is not None and target.tls:
            sock = _start_tls(sock, ctx, target, deadline, session)
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


def _charge(session: Session, step: Step, start: float) -> None:
    session.timings[step] = session.timings.get(step, 0.0) + (time.monotonic() - start)


def _resolve(target: Target, deadline: Deadline) -> list[Any]:
    """getaddrinfo has no timeout: run it in a daemon thread bounded by the deadline."""
    args = (target.host, target.port, target.family, socket.SOCK_STREAM)
    if ip_family(target.host):
        try:
            return socket.getaddrinfo(*args, 0, socket.AI_NUMERICHOST)
        except OSError as exc:
            reason = f"cannot use address {target.host}: {_strerror(exc)}"
            raise NetworkError(reason, Step.RESOLVE) from None
    import threading  # only needed for names, not for the common IP-literal case

    box: list[Any] = []
    done = threading.Event()

    def work() -> None:
        try:
            box.append(socket.getaddrinfo(*args))
        except Exception as exc:  # an IDNA UnicodeError too: it must not die silently
            box.append(exc)
        finally:
            done.set()

    threading.Thread(target=work, daemon=True).start()
    if not done.wait(deadline.remaining(Step.RESOLVE)):
        deadline.remaining(Step.RESOLVE)  # raises the timeout
        raise NetworkTimeout(f"timeout after {deadline.seconds:g}s", Step.RESOLVE)
    result = box[0]
    if isinstance(result, Exception):
        why = _strerror(result) if isinstance(result, OSError) else str(result)
        raise NetworkError(f"cannot resolve {target.host}: {why}", Step.RESOLVE)
    return list(result)


def _connect(
    target: Target, deadline: Deadline, session: Session, infos: list[Any]
) -> tuple[socket.socket, str]:
    start = time.monotonic()
    last: NetworkError | None = None
    for family, socktype, proto, _canon, addr in infos:
        sock = socket.socket(family, socktype, proto)
        try:
            sock.settimeout(deadline.remaining(Step.CONNECT))
            sock.connect(addr)
            # Small request/response writes: never let Nagle hold one back for an ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except socket.timeout:
            sock.close()
            deadline.remaining(Step.CONNECT)
            last = NetworkError(f"connect timed out{_via(target, addr)}", Step.CONNECT)
        except OSError as exc:
            sock.close()
            last = NetworkError(f"{_strerror(exc)}{_via(target, addr)}", Step.CONNECT)
        else:
            _charge(session, Step.CONNECT, start)
            return sock, _fmt_addr(addr)
    raise last or NetworkError(f"no usable address for {target.host}", Step.CONNECT)


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
    return str(exc.strerror).lower() if exc.strerror else str(exc)


def _start_tls(
    sock: socket.socket, ctx: ssl.SSLContext, target: Target, deadline: Deadline, session: Session
) -> ssl.SSLSocket:
    start = time.monotonic()
    name = target.server_name
    tls = ctx.wrap_socket(
        sock,
        server_hostname=name,
        do_handshake_on_connect=False,
        suppress_ragged_eofs=False,  # so a missing close_notify is seen and reported
    )
    try:
        tls.settimeout(deadline.remaining(Step.TLS))
        tls.do_handshake()
    except socket.timeout:
        deadline.remaining(Step.TLS)
        reason = f"timeout after {deadline.seconds:g}s {waiting(Step.TLS)}"
        raise NetworkTimeout(reason, Step.TLS) from None
    except ssl.SSLCertVerificationError as exc:
        raise CertificateError(_verify_reason(exc, name), Step.TLS, exc.verify_code) from None
    except ssl.SSLError as exc:
        code = str(exc.reason or "")
        if isinstance(exc, ssl.SSLEOFError):
            code = "EOF"
        reason = _explain(target, code or str(exc), None)
        raise HandshakeFailure(reason, Step.TLS, code) from None
    except OSError as exc:
        raise NetworkError(f"TLS handshake failed: {_strerror(exc)}", Step.TLS) from None
    finally:
        _charge(session, Step.TLS, start)
    session.tls = _tls_info(tls, verified=ctx.verify_mode != ssl.CERT_NONE)
    return tls


def _verify_reason(exc: ssl.SSLCertVerificationError, name: str) -> str:
    message = str(exc.verify_message or exc.reason or exc)
    if exc.verify_code in (62, 64):  # hostname / IP address mismatch
        return f"certificate is not valid for {name}"
    return f"certificate verify failed: {message.rstrip('.')}"


def _tls_info(tls: ssl.SSLSocket, verified: bool) -> TLSInfo:
    cipher = tls.cipher() or ("", "", 0)
    presented = _chain(tls, "get_unverified_chain")
    leaf_only = not presented
    if leaf_only:  # Python 3.9: the leaf is all ssl gives us
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
        leaf_only=leaf_only,
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


# ------------------------------------------------------------------------- the handshake


def _drive(
    hs: Handshake,
    sock: socket.socket,
    ctx: ssl.SSLContext | None,
    target: Target,
    deadline: Deadline,
    session: Session,
) -> None:
    while True:
        if hs.wants_to_write:
            # What arrived before we write is no reply to what we write (RFC 9051 §2.2.2).
            _drain(sock, hs)
        step = hs.step
        action = hs.next_action()
        start = time.monotonic()
        if isinstance(action, Done):
            return
        if isinstance(action, Send):
            _send(sock, action.data, deadline, step, hs)
        elif isinstance(action, Receive):
            _receive(sock, action, deadline, step, hs)
        elif isinstance(action, StartTLS):
            if ctx is None:  # a Plan with starttls always comes with a Target with starttls
                raise NetworkError("internal error: STARTTLS without a TLS context", step)
            sock = _start_tls(sock, ctx, target, deadline, session)
            hs.tls_established()
            continue  # _start_tls charged the time already
        _charge(session, step, start)


def _drain(sock: socket.socket, hs: Handshake) -> None:
    """Feed the handshake whatever is already readable, without waiting."""
    sock.setblocking(False)
    try:
        while not hs.finished:
            data = sock.recv(RECV_SIZE)
            hs.receive_data(data)
            if not data:
                return
    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        pass
    except OSError as exc:
        hs.connection_lost(_lost(exc))
    finally:
        with contextlib.suppress(OSError):
            sock.setblocking(True)


def _send(sock: socket.socket, data: bytes, deadline: Deadline, step: Step, hs: Handshake) -> None:
    try:
        sock.settimeout(deadline.remaining(step))
        sock.sendall(data)
    except socket.timeout:
        deadline.remaining(step)
        raise NetworkTimeout(f"timeout sending to the server ({step.value})", step) from None
    except OSError as exc:
        # The server may already have gone; let the handshake classify what it read.
        hs.send_failed(_lost(exc))


def _receive(
    sock: socket.socket, action: Receive, deadline: Deadline, step: Step, hs: Handshake
) -> None:
    left = deadline.remaining(step)
    idle = action.idle is not None and action.idle < left
    sock.settimeout(action.idle if idle else left)
    try:
        data = sock.recv(RECV_SIZE)
    except socket.timeout:
        if idle:
            hs.idle_elapsed()
            return
        deadline.remaining(step)
        raise NetworkTimeout(f"timeout after {deadline.seconds:g}s {waiting(step)}", step) from None
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
