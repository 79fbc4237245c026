"""Twisted's IMAP4 server (``twisted.mail.imap4``, from PyPI) on loopback for the tests.

A second, independent implementation that needs neither root nor Debian: the test
extra installs ``twisted[tls]``, and ``twisted_imap_server.py`` serves one in-memory
account from a process of its own (plain+STARTTLS and implicit TLS).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import realservers as rs

SCRIPT = Path(__file__).with_name("twisted_imap_server.py")


def unavailable() -> str | None:
    for module in ("twisted", "OpenSSL", "service_identity"):
        if importlib.util.find_spec(module) is None:
            return f"{module} not installed: pip install -e '.[test]' (twisted[tls])"
    return None


def start() -> rs.RealServer:
    root = rs.make_root("twisted")
    pki_ = rs.make_pki(root / "pki")
    password_file = rs.write_password_file(root)

    def attempt(sessions: list[rs.Session]) -> rs.RealServer:
        plain, tls = rs.ports(2)
        session = rs.Session(
            "twisted",
            [sys.executable, str(SCRIPT), rs.HOST, str(plain), str(tls), str(pki_.crt),
             str(pki_.key), rs.USER, str(password_file)],
            root / "twisted.log",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"},
        ).start()  # fmt: skip
        sessions.append(session)
        named = {"plain": plain, "tls": tls}
        found = rs.wait_greetings(sessions, {plain: False, tls: True}, session.log_tail)
        return rs.RealServer(
            name="twisted",
            root=root,
            pki=pki_,
            ports=named,
            greetings={name: found[port] for name, port in named.items()},
            sessions=sessions,
            password_file=password_file,
        )

    server = rs.start_with_retries("Twisted IMAP4", attempt)
    rs.fill_inbox_or_stop(server)
    return server


@pytest.fixture(scope="module")
def twisted_imap() -> Iterator[rs.RealServer]:
    """Twisted's IMAP4Server with plain+STARTTLS and implicit TLS; module-scoped."""
    yield from rs.module_fixture(unavailable, start)
