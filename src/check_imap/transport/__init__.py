"""The only socket, ssl and clock code: resolve, connect, TLS, and drive the handshake.

One monotonic deadline bounds every step of a run: name resolution, connect, each TLS
handshake, every read and write, for one address or all of them. Time is charged to
the step the handshake is in (see steps.py). Network failures never raise out of
``run``: they end up in ``Session.error``, and the check judges them. Modules:
``session`` (results, errors, the deadline), ``tls`` (contexts and handshakes) and
``wire`` (sockets and the driver loop).
"""

from __future__ import annotations

import socket
import time

from ..options import Target
from ..protocol import Handshake, Outcome, Plan
from ..steps import Step
from .session import (
    CertificateError,
    Deadline,
    HandshakeFailure,
    NetworkError,
    NetworkTimeout,
    Session,
    charge,
)
from .wire import close, connect, drive, fmt_addr, resolve

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms)
if TYPE_CHECKING:
    import ssl
    from typing import Any

    from .tls import Contexts

__all__ = [
    "CertificateError",
    "HandshakeFailure",
    "NetworkError",
    "NetworkTimeout",
    "Session",
    "run",
]


def run(target: Target, plan: Plan) -> list[Session]:
    """One session, or one per address with --all-addresses, all in one deadline."""
    deadline = Deadline(target.timeout)
    contexts = None
    if target.encrypted:  # ssl only for TLS: a plain check never imports it
        from .tls import Contexts

        contexts = Contexts(target)
        contexts.get("main")  # a bad --ca-file is a usage error, raised here, not in a thread
    if not target.all_addresses:
        return [_probe(target, contexts, plan, deadline, None, "")]
    try:
        infos = resolve(target, deadline)
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
    contexts: Contexts | None,
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
            session.address = fmt_addr(infos[index][4])
        sessions.append(session)
    return sessions


def _probe(
    target: Target,
    contexts: Contexts | None,
    plan: Plan,
    deadline: Deadline,
    infos: list[Any] | None,
    label: str,
) -> Session:
    """One address in full: the session, and the retries or probes that explain it."""
    if contexts is None:  # plain: no TLS, so nothing to retry or explain
        return _session(target, None, plan, deadline, infos, label)
    from ..tlsreasons import NO_AGREEMENT
    from .tls import UNKNOWN_ISSUER, WEAK_CRYPTO, explain

    session = _session(target, contexts.get("main"), plan, deadline, infos, label)
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
    elif isinstance(error, HandshakeFailure) and error.code in NO_AGREEMENT:
        look = _session(target, contexts.get("probe"), _tls_only(plan), deadline, infos, label)
        settled = (look.tls.version, look.tls.cipher) if look.tls is not None else None
        session.error = HandshakeFailure(explain(target, error.code, settled), error.step, "")
    session.total = deadline.elapsed()
    return session


def _tls_only(plan: Plan) -> Plan:
    return Plan(starttls=plan.starttls, encrypted=plan.encrypted)


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
            infos = resolve(target, deadline)
            charge(session, Step.RESOLVE, start)
        sock, session.address = connect(target, deadline, session, infos)
        if ctx is not None and target.tls:
            from .tls import start_tls

            sock = start_tls(sock, ctx, target, deadline, session)
        drive(hs, sock, ctx, target, deadline, session)
    except NetworkError as exc:
        session.error = exc
    finally:
        session.total = deadline.elapsed()
        session.transcript = hs.transcript
        session.received = hs.received
        if sock is not None:
            close(sock)
    return session
