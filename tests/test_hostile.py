"""#10: hostile servers and decoy files. Nothing leaks, nothing grows, nothing is overwritten."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from check_imap.protocol import (
    FLOOD_LIMIT,
    Credentials,
    Done,
    Handshake,
    Plan,
    Receive,
    Send,
    StartTLS,
)
from support.assertions import expect
from support.fakeserver import Conn, serve, server_context
from support.pki import make_ca, make_leaf, write_ca, write_server_files
from support.processes import Run, command, run

PASSWORD = "Hunter2-secret"
TOKEN = base64.b64encode(f"\0probe\0{PASSWORD}".encode()).decode()


def check(port: int, *args: str) -> Run:
    env = {"CHECK_IMAP_PASSWORD": PASSWORD}
    return run("check_imap", "-H", "127.0.0.1", "-p", str(port), *args, env=env)


# ------------------------------------------------------------------- property: the core


def drive(plan: Plan, chunks: list[bytes]) -> Handshake:
    hs = Handshake(plan)
    for _ in range(10_000):
        action = hs.next_action()
        if isinstance(action, Done):
            return hs
        if isinstance(action, StartTLS):
            hs.tls_established()
        elif isinstance(action, Receive):
            if chunks:
                hs.receive_data(chunks.pop(0))
            elif action.idle is not None:
                hs.idle_elapsed()
            else:
                hs.receive_data(b"")
        else:
            assert isinstance(action, Send)
    raise AssertionError("the handshake never ended")


PLANS = st.builds(
    Plan,
    starttls=st.booleans(),
    encrypted=st.booleans(),
    want_capabilities=st.booleans(),
    credentials=st.one_of(st.none(), st.just(Credentials("probe", PASSWORD))),
    mailboxes=st.lists(st.sampled_from(["INBOX", "Sent", "a b"]), max_size=2).map(tuple),
    quota=st.booleans(),
)
LINES = st.sampled_from(
    [
        b"* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN QUOTA] hi",
        b"* PREAUTH hi",
        b"* BYE no",
        b"a1 OK done",
        b"a2 OK [CAPABILITY IMAP4rev1 QUOTA] ok",
        b"a3 NO nope",
        b"+ ",
        b"* 3 EXISTS",
        b"* \xc2\xb2 EXISTS",
        b"* STATUS INBOX (MESSAGES 99999999999999999999999 UNSEEN 1)",
        b"* QUOTA root (STORAGE 1 2)",
        b"* QUOTAROOT INBOX root",
        b"* CAPABILITY IMAP4rev1",
        b"{5}",
        b"\x16\x03\x01",
        b"",
        b"garbage",
    ]
)


@settings(
    derandomize=True, max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    plan=PLANS,
    lines=st.lists(st.one_of(LINES, st.binary(max_size=40)), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
)
def test_any_byte_stream_ends_the_handshake_without_an_exception(
    plan: Plan, lines: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(line + b"\r\n" for line in lines)
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in zip(points, points[1:]) if stream[a:b]]
    hs = drive(plan, chunks)  # only documented exceptions may escape: none from server bytes
    outcome = hs.outcome
    assert outcome.failure is not None or outcome.logout is not None
    assert len(hs.transcript) <= 65


def test_a_million_untagged_lines_keep_nothing_but_the_cap() -> None:
    hs = Handshake(Plan())
    hs.receive_data(b"* OK hi\r\n")
    hs.next_action()  # the LOGOUT goes out
    block = b"* OK x\r\n" * 10_000
    for _ in range(100):
        if hs.finished:
            break
        hs.receive_data(block)
    assert hs.finished
    assert hs.outcome.failure == f"server sent {FLOOD_LIMIT} untagged responses to LOGOUT"
    assert len(hs.transcript) <= 65


# ------------------------------------------------------------------- hostile servers


RSS_PROBE = """
import resource, subprocess, sys, time
start = time.monotonic()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
elapsed = time.monotonic() - start
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(proc.returncode, rss, round(elapsed, 3))
print(proc.stdout, end="")
"""


def test_untagged_flood_is_bounded_in_memory_and_time() -> None:
    def flood(conn: Conn) -> None:
        conn.send(b"* OK hi\r\n")
        conn.readline()
        block = b"* OK x\r\n" * 20_000
        for _ in range(100):  # 2 M lines, as fast as the client reads
            conn.send(block)

    with serve(flood) as srv:
        argv = [command("check_imap"), "-H", "127.0.0.1", "-p", str(srv.port), "-t", "3"]
        proc = subprocess.run(
            [sys.executable, "-c", RSS_PROBE, *argv],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    head, out = proc.stdout.split("\n", 1)
    rc, rss_kib, elapsed = head.split()
    assert rc == "2", proc.stdout
    assert out.startswith(
        f"IMAP CRITICAL - 127.0.0.1:{srv.port}: server sent {FLOOD_LIMIT} untagged responses "
        "to LOGOUT"
    ), out
    assert int(rss_kib) < 40 * 1024, f"peak RSS {int(rss_kib) // 1024} MB"
    assert float(elapsed) <= 3.5


@pytest.mark.parametrize(
    ("reply", "name"),
    [
        (b"* \xc2\xb2 EXISTS\r\n", "EXISTS"),
        (b"* \xd9\xa3 EXISTS\r\n", "EXISTS"),
        (b"* " + b"9" * 400 + b" EXISTS\r\n", "EXISTS"),
    ],
)
def test_hostile_numbers_are_a_protocol_error_naming_the_response(reply: bytes, name: str) -> None:
    def script(conn: Conn) -> None:
        conn.send(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] hi\r\n")
        tag = conn.readline().split()[0].decode()
        conn.send(f"{tag} OK [CAPABILITY IMAP4rev1] logged in\r\n".encode())
        tag = conn.readline().split()[0].decode()  # STATUS
        conn.send(f"* STATUS INBOX (MESSAGES 1 UNSEEN 0)\r\n{tag} OK\r\n".encode())
        tag = conn.readline().split()[0].decode()  # EXAMINE
        conn.send(reply + f"{tag} OK\r\n".encode())
        conn.wait_client_close()

    with serve(script) as srv:
        result = check(srv.port, "-u", "probe", "--allow-cleartext-login")
    expect(result, 2, rf"IMAP CRITICAL - 127\.0\.0\.1:{srv.port}: .*{name}.*")
    assert "internal error" not in result.out


@pytest.mark.parametrize(
    ("status", "quota", "named"),
    [
        (f"MESSAGES {'7' * 30} UNSEEN 0", "STORAGE 1 2", "STATUS"),
        ("MESSAGES 1 UNSEEN 0", f"STORAGE {'9' * 400} 1024", "QUOTA"),
        ("MESSAGES 1 UNSEEN 0", "STORAGE \u00b2 1024", "QUOTA"),
    ],
)
def test_hostile_quota_and_status_numbers(status: str, quota: str, named: str) -> None:
    def script(conn: Conn) -> None:
        conn.send(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR QUOTA] hi\r\n")
        tag = conn.readline().split()[0].decode()
        conn.send(f"{tag} OK [CAPABILITY IMAP4rev1 QUOTA] in\r\n".encode())
        tag = conn.readline().split()[0].decode()  # STATUS
        conn.send(f"* STATUS INBOX ({status})\r\n{tag} OK\r\n".encode())
        tag = conn.readline().split()[0].decode()  # EXAMINE
        conn.send(f"* 1 EXISTS\r\n{tag} OK\r\n".encode())
        tag = conn.readline().split()[0].decode()  # GETQUOTAROOT
        conn.send(f"* QUOTAROOT INBOX root\r\n* QUOTA root ({quota})\r\n{tag} OK\r\n".encode())
        conn.wait_client_close()

    with serve(script) as srv:
        result = check(srv.port, "-u", "probe", "--allow-cleartext-login", "--quota-warning", "80")
    expect(result, 2, rf"IMAP CRITICAL - 127\.0\.0\.1:{srv.port}: .*{named}.*")
    assert "internal error" not in result.out


@pytest.mark.parametrize("verbose", ["", "-v", "-vv", "-vvv"])
def test_an_echoed_password_never_reaches_the_output(verbose: str) -> None:
    def script(conn: Conn) -> None:
        conn.send(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR QUOTA] hi\r\n")
        tag = conn.readline().split()[0].decode()
        conn.send(f"{tag} OK [CAPABILITY IMAP4rev1 QUOTA X-{PASSWORD}] in {TOKEN}\r\n".encode())
        tag = conn.readline().split()[0].decode()  # STATUS
        conn.send(f"* STATUS INBOX (MESSAGES 1 UNSEEN 0)\r\n{tag} OK\r\n".encode())
        tag = conn.readline().split()[0].decode()  # EXAMINE
        conn.send(f"* 1 EXISTS\r\n{tag} OK\r\n".encode())
        tag = conn.readline().split()[0].decode()  # GETQUOTAROOT
        conn.send(
            f'* QUOTAROOT INBOX "{PASSWORD}"\r\n{tag} NO no quota for {PASSWORD}\r\n'.encode()
        )
        conn.readline()  # LOGOUT
        conn.send(f"{PASSWORD} NO {PASSWORD} {TOKEN}\r\n".encode())

    with serve(script) as srv:
        args = ["-u", "probe", "--allow-cleartext-login", "--quota-warning", "80"]
        result = check(srv.port, *args, *([verbose] if verbose else []))
    assert result.rc in (1, 3), result.out
    assert result.out.startswith("IMAP ")
    for shown in (result.out, result.err):
        for secret in (PASSWORD, TOKEN, PASSWORD.upper(), TOKEN.upper()):  # caps are upper-cased
            assert secret not in shown, shown
    assert "[redacted]" in result.out


def test_a_reply_before_the_command_is_not_its_reply() -> None:
    def script(conn: Conn) -> None:
        conn.send(b"* OK hi\r\na1 OK x\r\n")  # one segment: a "reply" nobody asked for
        conn.wait_client_close()

    with serve(script) as srv:
        result = check(srv.port, "-vvv")
    expect(
        result,
        2,
        rf"IMAP CRITICAL - 127\.0\.0\.1:{srv.port}: server sent a tagged reply \('a1'\) "
        r"before any command was sent \| .*|IMAP CRITICAL - 127\.0\.0\.1:\d+: server sent a "
        r"tagged reply \('a1'\) before any command was sent",
    )
    assert "C: a1 LOGOUT" not in result.lines  # the transcript shows what was really sent


def test_greeted_then_closed_is_a_warning() -> None:
    with serve(lambda conn: conn.send_and_close(b"* OK hi\r\n")) as srv:
        result = check(srv.port)
    expect(
        result,
        1,
        rf"IMAP WARNING - 127\.0\.0\.1:{srv.port}: server closed the connection right after "
        r"the greeting",
    )


# ------------------------------------------------------------------- decoy files


@pytest.fixture(scope="module")
def tls_server_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    d: Path = tmp_path_factory.mktemp("decoy-pki")
    ca = make_ca()
    crt, key = write_server_files(d, "imap", make_leaf(ca, ("imap.test",)), (ca,))
    return str(crt), str(key), str(write_ca(d, ca))


def _snapshot(path: Path) -> tuple[int, int, bytes | None]:
    info = path.lstat()
    content = path.read_bytes() if stat.S_ISREG(info.st_mode) else None
    return info.st_mode, info.st_rdev, content


def _decoys(d: Path) -> list[Path]:
    passwd = d / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\nnagios:x:100:100::/var/lib/nagios:\n")
    fifo = d / "fifo"
    os.mkfifo(fifo)
    link = d / "link"
    link.symlink_to(passwd)
    wrong = d / "wrong.json"
    wrong.write_text(json.dumps({"version": 1, "certs": [1, 2]}))
    decoys = [passwd, fifo, link, wrong]
    if os.geteuid() == 0:
        dev = d / "null"
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        decoys.append(dev)
    return decoys


def test_decoys_are_never_touched(tmp_path: Path, tls_server_files: tuple[str, str, str]) -> None:
    crt, key, ca = tls_server_files
    decoys = _decoys(tmp_path)
    before = {p: _snapshot(p) for p in decoys}

    def greet(conn: Conn) -> None:
        conn.send(b"* OK hi\r\n")
        conn.logout()

    with serve(greet, server_context(crt, key)) as srv:
        tls = ("--tls", "--sni", "imap.test", "--ca-file", ca)
        for decoy in decoys:
            cached = check(srv.port, *tls, "--cert-cache", str(decoy), "-v")
            expect(cached, 0, rf"IMAP OK - 127\.0\.0\.1:{srv.port} answered in .*")
            assert any(
                line.startswith(f"certificate cache {decoy} not used: ") for line in cached.lines
            ), cached.lines
            pw = check(srv.port, *tls, "-u", "probe", "--password-file", str(decoy))
            expect(pw, 3, rf"IMAP UNKNOWN - --password-file {decoy}: .*", timeout=2)
            as_ca = check(srv.port, "--tls", "--ca-file", str(decoy))
            expect(as_ca, 3, rf"IMAP UNKNOWN - --ca-file {decoy}: .*", timeout=2)
    assert {p: _snapshot(p) for p in decoys} == before
