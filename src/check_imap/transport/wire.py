"""Sockets: resolve, connect, and drive the handshake's actions over the connection."""

from __future__ import annotations

import contextlib
import socket
import time

from ..options import Target, ip_family
from ..protocol import Done, Handshake, Receive, Send, StartTLS
from ..steps import Step, waiting
from .session import Deadline, NetworkError, NetworkTimeout, Session, charge, strerror

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms)
if TYPE_CHECKING:
    import ssl
    from typing import Any

RECV_SIZE = 16 * 1024  # with the reader's line limit this bounds what a server makes us hold


def resolve(target: Target, deadline: Deadline) -> list[Any]:
    """getaddrinfo has no timeout: run it in a daemon thread bounded by the deadline."""
    args = (target.host, target.port, target.family, socket.SOCK_STREAM)
    if ip_family(target.host):
        try:
            return socket.getaddrinfo(*args, 0, socket.AI_NUMERICHOST)
        except OSError as exc:
            reason = f"cannot use address {target.host}: {strerror(exc)}"
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
        why = strerror(result) if isinstance(result, OSError) else str(result)
        raise NetworkError(f"cannot resolve {target.host}: {why}", Step.RESOLVE)
    return list(result)


def connect(
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
            last = NetworkError(f"connect timed out{via(target, addr)}", Step.CONNECT)
        except OSError as exc:
            sock.close()
            last = NetworkError(f"{strerror(exc)}{via(target, addr)}", Step.CONNECT)
        else:
            charge(session, Step.CONNECT, start)
            return sock, fmt_addr(addr)
    raise last or NetworkError(f"no usable address for {target.host}", Step.CONNECT)


def via(target: Target, addr: Any) -> str:
    """Name the address only when -H was a name: with an IP it would repeat itself."""
    return "" if addr[0] == target.host else f" ({addr[0]})"


def fmt_addr(addr: Any) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def drive(
    hs: Handshake,
    sock: socket.socket,
    ctx: ssl.SSLContext | None,
    target: Target,
    deadline: Deadline,
    session: Session,
) -> None:
    # ssl only with a TLS context: a plain check never imports it (~30 M instructions).
    would_block: tuple[type[OSError], ...] = (BlockingIOError,)
    if ctx is not None:
        from .tls import WOULD_BLOCK, start_tls

        would_block = WOULD_BLOCK
    while True:
        if hs.wants_to_write:
            # What arrived before we write is no reply to what we write (RFC 9051 §2.2.2).
            drain(sock, hs, would_block)
        step = hs.step
        action = hs.next_action()
        start = time.monotonic()
        if isinstance(action, Done):
            return
        if isinstance(action, Send):
            send(sock, action.data, deadline, step, hs)
        elif isinstance(action, Receive):
            receive(sock, action, deadline, step, hs)
        elif isinstance(action, StartTLS):
            if ctx is None:  # a Plan with starttls always comes with a Target with starttls
                raise NetworkError("internal error: STARTTLS without a TLS context", step)
            sock = start_tls(sock, ctx, target, deadline, session)
            hs.tls_established()
            continue  # start_tls charged the time already
        charge(session, step, start)


def drain(sock: socket.socket, hs: Handshake, would_block: tuple[type[OSError], ...]) -> None:
    """Feed the handshake whatever is already readable, without waiting.

    ``would_block`` holds ssl's SSLWantReadError/SSLWantWriteError on a TLS socket.
    """
    sock.setblocking(False)
    try:
        while not hs.finished:
            data = sock.recv(RECV_SIZE)
            hs.receive_data(data)
            if not data:
                return
    except would_block:
        pass
    except OSError as exc:
        hs.connection_lost(lost(exc))
    finally:
        with contextlib.suppress(OSError):
            sock.setblocking(True)


def send(sock: socket.socket, data: bytes, deadline: Deadline, step: Step, hs: Handshake) -> None:
    try:
        sock.settimeout(deadline.remaining(step))
        sock.sendall(data)
    except socket.timeout:
        deadline.remaining(step)
        raise NetworkTimeout(f"timeout sending to the server ({step.value})", step) from None
    except OSError as exc:
        # The server may already have gone; let the handshake classify what it read.
        hs.send_failed(lost(exc))


def receive(
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
        hs.connection_lost(lost(exc))
        return
    hs.receive_data(data)


def lost(exc: OSError) -> str:
    # An ssl error has ssl's SSLError in its class's MRO, so ssl is loaded already;
    # a plain check's errors must not import it (~30 M instructions).
    if any(cls.__module__ == "ssl" for cls in type(exc).__mro__):
        import ssl

        if (
            isinstance(exc, ssl.SSLEOFError)
            or getattr(exc, "reason", "") == "UNEXPECTED_EOF_WHILE_READING"
        ):
            return "closed without TLS close_notify"
        if isinstance(exc, ssl.SSLError):
            return f"TLS error {exc.reason or exc}"
    if isinstance(exc, ConnectionResetError):
        return "reset by the server"
    return strerror(exc)


def close(sock: socket.socket) -> None:
    """Close without waiting: never unwrap() (our close_notify after their FIN draws an RST)."""
    with contextlib.suppress(OSError):
        sock.close()
