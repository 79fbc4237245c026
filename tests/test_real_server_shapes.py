"""#16: what real servers do, in the exact shapes measured, against scripted servers."""

from __future__ import annotations

import re
import ssl
import warnings
from pathlib import Path
from typing import Callable

import pytest

from check_imap.mailpolicy import mailbox_labels
from support.assertions import NUM, PERFDATA, expect, times
from support.fakeserver import Conn, serve, server_context
from support.pki import make_ca, make_leaf, write_ca, write_server_files
from support.processes import Run, run

PASSWORD = "pw-for-probe"
LOGOUT = r"logout: BYE \+ tagged OK"


def check(port: int, *args: str) -> Run:
    env = {"CHECK_IMAP_PASSWORD": PASSWORD}
    return run("check_imap", "-H", "127.0.0.1", "-p", str(port), *args, env=env)


def _preauth(conn: Conn) -> None:
    conn.send(b"* PREAUTH [CAPABILITY IMAP4rev1] Pre-authenticated user uw\r\n")
    tag = conn.expect('STATUS "INBOX" (MESSAGES RECENT UNSEEN)')
    conn.send(f"* STATUS INBOX (MESSAGES 1 RECENT 0 UNSEEN 0)\r\n{tag} OK\r\n".encode())
    tag = conn.expect('EXAMINE "INBOX"')
    conn.send(f"* 1 EXISTS\r\n{tag} OK\r\n".encode())
    conn.logout()


def test_preauth_with_user_is_no_login_and_warns() -> None:
    args = ("-u", "someoneelse", "--allow-cleartext-login")
    with serve(_preauth) as srv:
        warned = check(srv.port, *args)
        accepted = check(srv.port, *args, "--accept-preauth")
    assert "logged in as" not in warned.out + accepted.out
    expect(
        warned,
        1,
        rf"IMAP WARNING - 127\.0\.0\.1:{srv.port}: pre-authenticated by the server, user "
        r"someoneelse not checked \| .*",
    )
    expect(
        accepted,
        0,
        rf"IMAP OK - 127\.0\.0\.1:{srv.port} answered in {NUM}s, greeting PREAUTH, user "
        rf"someoneelse not checked, 'INBOX' 1 message \(0 unseen\), {LOGOUT} \| .*",
    )


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    d: Path = tmp_path_factory.mktemp("pki16")
    ca = make_ca()
    crt, key = write_server_files(d, "imap", make_leaf(ca, ("imap.test",)), (ca,))
    return str(crt), str(key), str(write_ca(d, ca))


def _cyrus_starttls(ctx: ssl.SSLContext) -> Callable[[Conn], None]:
    """Cyrus 3.6 as measured: LOGINDISABLED in clear, and again once logged in."""

    def script(conn: Conn) -> None:
        conn.send(b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] Cyrus ready\r\n")
        tag = conn.expect("STARTTLS")
        conn.send(f"{tag} OK Begin TLS\r\n".encode())
        conn.start_tls(ctx)
        tag = conn.expect("CAPABILITY")
        conn.send(f"* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR\r\n{tag} OK\r\n".encode())
        tag = conn.readline().decode().split()[0]  # AUTHENTICATE PLAIN <token>
        conn.send(f"{tag} OK [CAPABILITY IMAP4rev1 LOGINDISABLED ACL] Success\r\n".encode())
        tag = conn.expect('STATUS "INBOX" (MESSAGES RECENT UNSEEN)')
        conn.send(f"* STATUS INBOX (MESSAGES 2 RECENT 0 UNSEEN 1)\r\n{tag} OK\r\n".encode())
        tag = conn.expect('EXAMINE "INBOX"')
        conn.send(f"* 2 EXISTS\r\n{tag} OK\r\n".encode())
        conn.logout()

    return script


def test_capability_policies_judge_the_right_stage(tls_files: tuple[str, str, str]) -> None:
    """Was: "LOGINDISABLED advertised after TLS: nobody can log in" after a good login,
    and "capability STARTTLS not advertised" with --starttls."""
    crt, key, ca = tls_files
    tls = ("--starttls", "--sni", "imap.test", "--ca-file", ca, "-u", "probe")
    with serve(_cyrus_starttls(server_context(crt, key))) as srv:
        ok = check(srv.port, *tls, "--require-logindisabled", "--require-capability", "STARTTLS")
        forbidden = check(srv.port, *tls, "--forbid-capability", "ACL")
    expect(
        ok,
        0,
        rf"IMAP OK - 127\.0\.0\.1:{srv.port} answered in {NUM}s, TLSv1\.3, certificate "
        rf"'imap\.test' expires \S+, logged in as probe, 'INBOX' 2 messages \(1 unseen\), "
        rf"{LOGOUT} \| .*",
    )
    # The union of every stage: ACL, offered only after login, still counts.
    expect(
        forbidden,
        1,
        rf"IMAP WARNING - 127\.0\.0\.1:{srv.port}: forbidden capability ACL advertised \| .*",
    )


def test_labels_are_unique_and_stable() -> None:
    names = (
        "Projects/Customer-Alpha-2024",
        "Projects/Customer-Alpha-2025",
        "Archiv 2024",
        "Archiv/2024",
        "INBOX",
        "Sent_Items",
    )
    labels = mailbox_labels(names)
    assert len(set(labels.values())) == len(names)
    assert labels["INBOX"] == "_INBOX" and labels["Sent_Items"] == "_Sent_Items"
    for name in names[:4]:
        assert re.fullmatch(r"_[A-Za-z0-9_]{1,20}_[0-9a-f]{4}", labels[name]), labels
    # Stable: the same name gets the same label whatever else is checked with it.
    again = mailbox_labels(("Projects/Customer-Alpha-2024", "Other"))
    assert again["Projects/Customer-Alpha-2024"] == labels["Projects/Customer-Alpha-2024"]
    assert mailbox_labels(("Only one",)) == {"Only one": ""}


def test_tls_version_mismatch_names_what_the_server_offers(
    tls_files: tuple[str, str, str],
) -> None:
    crt, key, ca = tls_files
    ctx = server_context(crt, key)
    with warnings.catch_warnings():  # deprecated: exactly the old server being imitated
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pytest.skip("this OpenSSL cannot serve TLS 1.0")

    def greet(conn: Conn) -> None:
        conn.send(b"* OK ready\r\n")
        conn.logout()

    with serve(greet, ctx) as srv:
        result = check(srv.port, "--tls", "--sni", "imap.test", "--ca-file", ca)
    if "offers only" not in result.out:
        pytest.skip(f"this OpenSSL refuses TLS 1.0 even to probe: {result.first_line}")
    expect(
        result,
        2,
        rf"IMAP CRITICAL - 127\.0\.0\.1:{srv.port}: TLS handshake failed: the server offers "
        r"only TLS 1\.0; this check requires TLS 1\.2 or newer \(see --min-tls\)",
    )


def test_tls_options_on_a_plain_check_are_ignored_with_a_note(
    tls_files: tuple[str, str, str],
) -> None:
    _crt, _key, ca = tls_files

    def greet(conn: Conn) -> None:
        conn.send(b"* OK ready\r\n")
        conn.logout()

    with serve(greet) as srv:
        result = check(srv.port, "--ca-file", ca, "--sni", "imap.test", "-v")
    expect(result, 0, rf"IMAP OK - 127\.0\.0\.1:{srv.port} answered in {NUM}s, {LOGOUT}{PERFDATA}")
    assert "note: --sni, --ca-file ignored: a plain check uses no TLS" in result.lines
    assert re.fullmatch(rf"\| {times('')}", result.perfdata), result.first_line
