"""A scripted IMAP server on 127.0.0.1 for misbehaviour no real server shows on demand.

Each test passes a script: a function that talks to one client connection through
``Conn``. The server runs it in a thread and records any unexpected exception, so a
broken script fails the test instead of passing silently.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from typing import Callable

Script = Callable[["Conn"], None]

CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ssl.SSLError, ConnectionAbortedError)


class Conn:
    """One accepted connection, plain or TLS, with helpers for scripted misbehaviour."""

    def __init__(self, raw: socket.socket) -> None:
        self.raw = raw
        self.sock: socket.socket = raw
        self.buf = b""
        raw.settimeout(20)  # a script must never hang the test run
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_and_close(self, data: bytes) -> None:
        """``data`` and the FIN in one TCP segment (corked), so the client sees the end
        together with the data: what "greeted, then closed" means, without a race
        against the client's next write on a busy machine."""
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        self.sock.sendall(data)
        self.sock.shutdown(socket.SHUT_WR)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)

    def readline(self) -> bytes:
        while b"\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                raise EOFError("client closed")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r")

    def expect(self, command: str) -> str:
        """Read one client command, compare it byte for byte (tag aside), return the tag."""
        line = self.readline().decode("utf-8", "backslashreplace")
        tag, _, rest = line.partition(" ")
        if rest != command:
            raise AssertionError(f"expected {command!r}, client sent {line!r}")
        return tag

    def logout(self) -> None:
        """Answer the client's LOGOUT as RFC 3501 wants: BYE, then the tagged OK."""
        tag = self.expect("LOGOUT")
        self.send(f"* BYE bye\r\n{tag} OK done\r\n".encode())

    def start_tls(self, ctx: ssl.SSLContext) -> None:
        self.sock = ctx.wrap_socket(self.raw, server_side=True)

    def wait_client_close(self) -> None:
        """Keep the connection open until the client hangs up (bounded by the timeout)."""
        with contextlib.suppress(OSError, ssl.SSLError):
            while self.sock.recv(4096):
                pass

    def close_notify_keep_tcp(self) -> None:
        """Send TLS close_notify but keep TCP open, as Courier's couriertls does."""
        assert isinstance(self.sock, ssl.SSLSocket)
        with contextlib.suppress(OSError, ssl.SSLError):
            self.sock = self.sock.unwrap()
        self.wait_client_close()

    def close_notify_and_close(self) -> None:
        if isinstance(self.sock, ssl.SSLSocket):
            with contextlib.suppress(OSError, ssl.SSLError):
                self.sock = self.sock.unwrap()
        self.sock.close()

    def close_without_close_notify(self) -> None:
        """TCP FIN with no TLS close_notify: SSLSocket.shutdown() never sends one."""
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def reset(self) -> None:
        """Close with RST instead of FIN (SO_LINGER with a zero timeout)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


class FakeServer:
    """Serve ``script`` to each client on an ephemeral loopback port."""

    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.errors: list[BaseException] = []
        self.connections = 0
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> FakeServer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.listener.close()
        for thread in self._threads:
            thread.join(timeout=25)
        if self.errors:
            raise AssertionError(f"fake server script failed: {self.errors!r}")

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(raw,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, raw: socket.socket) -> None:
        conn = Conn(raw)
        try:
            if self.tls is not None:
                conn.start_tls(self.tls)
            self.script(conn)
        except (EOFError, *CLIENT_GONE):
            pass  # the client hung up: that is the client's business, not a script error
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            with contextlib.suppress(OSError):
                conn.sock.close()


@contextlib.contextmanager
def serve(script: Script, tls: ssl.SSLContext | None = None) -> Iterator[FakeServer]:
    with FakeServer(script, tls) as server:
        yield server


def server_context(crt: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # the fake server must be able to serve weak keys
    ctx.load_cert_chain(crt, key)
    return ctx
