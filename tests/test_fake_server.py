"""check_imap, run as installed, against scripted servers that misbehave on purpose.

Every test asserts the exit code, the exact first line (or its exact shape) and that the
check finished within its deadline.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.assertions import LEAF_ONLY, chain_perf
from support.fakeserver import Conn, serve, server_context
from support.pki import NOW, days, make_ca, make_leaf, write_ca, write_server_files
from support.processes import Run, check_imap

GREETING = b"* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] fake ready\r\n"
NUM = r"\d+\.\d+"
TIMES = rf"time={NUM}s;;;0;{NUM} (?:time_capability={NUM}s;;;0 )?time_connect={NUM}s;;;0 time_greeting={NUM}s;;;0 time_logout={NUM}s;;;0"
PERF = rf"\| {TIMES}"
PERF_TLS = (
    r"\| cert_days=\d+;21:;7: "
    + chain_perf(r"chain_days=\d+;21:;7: ")
    + rf"{TIMES} time_tls={NUM}s;;;0"
)
CERT = r"certificate 'localhost' expires \d{4}-\d\d-\d\d"


@dataclass
class Pki:
    ca: str
    good: tuple[str, str]
    expired: tuple[str, str]
    wronghost: tuple[str, str]
    untrusted: tuple[str, str]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d: Path = tmp_path_factory.mktemp("pki")
    ca = make_ca()
    other_ca = make_ca("someone else's CA")
    files = {
        "good": make_leaf(ca),
        "expired": make_leaf(ca, not_before=NOW - days(400), not_after=NOW - days(3)),
        "wronghost": make_leaf(ca, ("wrong.example.invalid",)),
        "untrusted": make_leaf(other_ca),
    }
    paths = {name: write_server_files(d, name, leaf, (ca,)) for name, leaf in files.items()}
    return Pki(
        ca=str(write_ca(d, ca)),
        **{name: (str(crt), str(key)) for name, (crt, key) in paths.items()},
    )


def greet_then(logout: Callable[[Conn], None]) -> Callable[[Conn], None]:
    def script(conn: Conn) -> None:
        conn.send(GREETING)
        logout(conn)

    return script


def assert_line(result: Run, rc: int, pattern: str) -> None:
    assert result.err == ""
    assert re.fullmatch(pattern, result.first_line), result.first_line
    assert result.rc == rc, result.out


def check(port: int, *args: str) -> Run:
    return check_imap("-H", "127.0.0.1", "-p", str(port), *args)


# ----------------------------------------------------------------- greeting


def test_silent_server_times_out_critical() -> None:
    with serve(lambda c: c.wait_client_close()) as srv:
        result = check(srv.port, "-t", "1.5")
    assert_line(
        result,
        2,
        rf"IMAP CRITICAL - 127\.0\.0\.1:{srv.port}: timeout after 1\.5s waiting for the greeting: not a byte arrived \(an implicit TLS port\? try --tls\)",
    )
    assert 1.5 <= result.elapsed < 3.0


def test_timeout_state_is_configurable() -> None:
    with serve(lambda c: c.wait_client_close()) as srv:
        result = check(srv.port, "-t", "1", "--timeout-state", "warning")
    assert_line(
        result,
        1,
        rf"IMAP WARNING - 127\.0\.0\.1:{srv.port}: timeout after 1s waiting for the greeting: not a byte arrived \(an implicit TLS port\? try --tls\)",
    )
    assert 1.0 <= result.elapsed < 2.5


def test_drip_fed_greeting_is_bounded_by_the_one_deadline() -> None:
    def drip(conn: Conn) -> None:
        for byte in GREETING:
            conn.send(bytes([byte]))
            time.sleep(0.5)  # the misbehaviour under test: a byte every half second

    with serve(drip) as srv:
        result = check(srv.port, "-t", "2")
    assert_line(
        result,
        2,
        rf"IMAP CRITICAL - 127\.0\.0\.1:{srv.port}: timeout after 2s waiting for the greeting",
    )
    assert 2.0 <= result.elapsed < 3.5


def test_ten_megabyte_greeting_is_refused_not_buffered() -> None:
    def flood(conn: Conn) -> None:
        conn.send(b"* OK " + b"x" * (10 * 1024 * 1024))

    with serve(flood) as srv:
        result = check(srv.port, "-t", "5")
    assert_line(
        result,
        2,
        rf"IMAP CRITICAL - 127\.0\.0\.1:{srv.port}: server sent a line longer than 65536 bytes",
    )
    assert result.elapsed < 5


def test_bye_greeting_is_critical_with_server_text() -> None:
    with serve(lambda c: c.send(b"* BYE Too many connections from your IP\r\n")) as srv:
        result = check(srv.port)
    assert_line(
        result,
        2,
        rf"IMAP CRITICAL - 127\.0\.0\.1:{srv.port}: server refused the session with a BYE "
        r'greeting: "Too many connections from your IP"',
    )


@pytest.mark.parametrize(
    ("banner", "shown"),
    [
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"220 mail.example.org ESMTP Postfix\r\n", "220 mail.example.org ESMTP Postfix"),
        (b"\x00\xff\xfebinary|junk\x1b[31m\r\n", "?\ufffd\ufffdbinary/junk?[31m"),
    ],
)
def test_foreign_banner_is_not_an_imap_greeting(banner: bytes, shown: str) -> None:
    with serve(lambda c: c.send(banner)) as srv:
        result = check(srv.port)
    assert_line(
        result,
        2,
        rf'IMAP CRITICAL - 127\.0\.0\.1:{srv.port}: not an IMAP greeting: "{re.escape(shown)}"',
    )


def test_pipe_and_control_characters_in_banner_never_reach_the_status_line() -> None:
    banner = b"* OK evil|time=99s \x07\x1b[2J banner\r\n"
    with serve(_banner_script(banner)) as srv:
        result = check(srv.port, "-v")
    assert result.rc == 0
    assert re.fullmatch(
        rf"IMAP OK - 127\.0\.0\.1:{srv.port} answered in {NUM}s, logout: BYE \+ tagged OK {PERF}",
        result.first_line,
    )
    assert "greeting: OK evil/time=99s ??[2J banner" in result.lines
    assert "removed illegal characters" not in result.out
    assert all(ch == "\n" or ch.isprintable() for ch in result.out)
    assert sum("|" in line for line in result.lines) == 1  # the perfdata's, on line 1


def _banner_script(banner: bytes):  # type: ignore[no-untyped-def]
    def script(conn: Conn) -> None:
        conn.send(banner)
        conn.logout()  # -v never changes what is sent: no CAPABILITY for it

    return script


def test_lowercase_and_bare_lf_server() -> None:
    def script(conn: Conn) -> None:
        conn.send(b"* ok lowercase server\n")
        tag = conn.expect("LOGOUT")
        conn.send(f"* bye\n{tag} ok\n".encode())

    with serve(script) as srv:
        result = check(srv.port)
    assert_line(
        result,
        0,
        rf"IMAP OK - 127\.0\.0\.1:{srv.port} answered in {NUM}s, logout: BYE \+ tagged OK {PERF}",
    )


def test_preauth_greeting_is_ok_and_named() -> None:
    def script(conn: Conn) -> None:
        conn.send(b"* PREAUTH welcome\r\n")
        conn.logout()

    with serve(script) as srv:
        result = check(srv.port)
    assert_line(
        result,
        0,
        rf"IMAP OK - 127\.0\.0\.1:{srv.port} answered in {NUM}s, greeting PREAUTH, logout: BYE \+ tagged OK {PERF}",
    )


# ----------------------------------------------------------------- logout endings


def _close_plain(conn: Conn) -> None:
    conn.expect("LOGOUT")
    conn.sock.close()


def _reset(conn: Conn) -> None:
    conn.expect("LOGOUT")
    conn.reset()


def _bye_then_close(conn: Conn) -> None:
    conn.expect("LOGOUT")
    conn.send(b"* BYE going\r\n")
    conn.sock.close()


def _ok_without_bye(conn: Conn) -> None:
    tag = conn.expect("LOGOUT")
    conn.send(f"{tag} OK bye\r\n".encode())
    conn.wait_client_close()


def _bye_then_silence(conn: Conn) -> None:
    conn.expect("LOGOUT")
    conn.send(b"* BYE going\r\n")
    conn.wait_client_close()


def _rejected(conn: Conn) -> None:
    tag = conn.expect("LOGOUT")
    conn.send(f"{tag} BAD Unknown command\r\n".encode())
    conn.wait_client_close()


def _dot_tag(conn: Conn) -> None:
    conn.expect("LOGOUT")
    conn.send(b"* BYE bye\r\n. OK bye\r\n")
    conn.wait_client_close()


def _no_reply(conn: Conn) -> None:
    conn.expect("LOGOUT")
    conn.wait_client_close()


@pytest.mark.parametrize(
    ("logout", "rc", "summary", "max_seconds"),
    [
        (Conn.logout, 0, "logout: BYE \\+ tagged OK", 1.5),
        (_close_plain, 0, "logout: closed without reply", 1.5),
        (_reset, 0, r"logout: connection lost without reply \(reset by the server\)", 1.5),
        (_bye_then_close, 0, "logout: BYE, then close without tagged OK", 1.5),
        (_ok_without_bye, 0, "logout: tagged OK without BYE", 1.5),
        (_bye_then_silence, 0, "logout: BYE, then silence without tagged OK", 1.5),
    ],
)
def test_tolerated_logout_endings_are_ok(
    logout: object, rc: int, summary: str, max_seconds: float
) -> None:
    with serve(greet_then(logout)) as srv:  # type: ignore[arg-type]
        result = check(srv.port)
    assert_line(
        result, rc, rf"IMAP OK - 127\.0\.0\.1:{srv.port} answered in {NUM}s, {summary} {PERF}"
    )
    assert result.seconds() < max_seconds, result.first_line  # no wait for a reply
    assert result.elapsed < max_seconds + 5


@pytest.mark.parametrize(
    ("logout", "problem", "min_s", "max_s"),
    [
        (_rejected, "LOGOUT answered BAD Unknown command", 0, 1.5),
        (_dot_tag, "LOGOUT answered with foreign tag '.'", 0, 1.5),
        (_no_reply, r"no reply to LOGOUT \(none within 2s\)", 2.0, 3.5),
    ],
)
def test_bad_logout_replies_are_warning(
    logout: object, problem: str, min_s: float, max_s: float
) -> None:
    with serve(greet_then(logout)) as srv:  # type: ignore[arg-type]
        result = check(srv.port)
    assert_line(result, 1, rf"IMAP WARNING - 127\.0\.0\.1:{srv.port}: {problem} {PERF}")
    assert min_s <= result.seconds() < max_s - 0.5, result.first_line
    assert result.elapsed < max_s + 5


@pytest.mark.parametrize(
    ("logout", "ending"),
    [
        (_close_plain, "closed without reply"),
        (_ok_without_bye, "tagged OK without BYE"),
    ],
)
def test_strict_logout_wants_bye(logout: object, ending: str) -> None:
    with serve(greet_then(logout)) as srv:  # type: ignore[arg-type]
        result = check(srv.port, "--strict-logout")
    assert_line(
        result,
        1,
        rf"IMAP WARNING - 127\.0\.0\.1:{srv.port}: no BYE after LOGOUT \(logout: {ending}\) {PERF}",
    )


def test_strict_logout_accepts_bye_then_close() -> None:
    with serve(greet_then(_bye_then_close)) as srv:
        result = check(srv.port, "--strict-logout")
    assert_line(
        result,
        0,
        rf"IMAP OK - 127\.0\.0\.1:{srv.port} answered in {NUM}s, logout: BYE, then close without tagged OK {PERF}",
    )


# ----------------------------------------------------------------- TLS endings


def _tls_close_notify_no_bye(conn: Conn) -> None:
    conn.expect("LOGOUT")
    conn.close_notify_and_close()


def _tls_close_no_close_notify(conn: Conn) -> None:
    conn.expect("LOGOUT")
    conn.close_without_close_notify()


def _courier_tls(conn: Conn) -> None:
    tag = conn.expect("LOGOUT")
    conn.send(f"* BYE Courier-IMAP server shutting down\r\n{tag} OK LOGOUT completed\r\n".encode())
    conn.close_notify_keep_tcp()


@pytest.mark.parametrize(
    ("logout", "summary"),
    [
        (_tls_close_notify_no_bye, "logout: closed without reply"),
        (
            _tls_close_no_close_notify,
            r"logout: connection lost without reply \(closed without TLS close_notify\)",
        ),
        (_courier_tls, r"logout: BYE \+ tagged OK"),
    ],
)
def test_tls_logout_endings_are_ok(pki: Pki, logout: object, summary: str) -> None:
    with serve(greet_then(logout), server_context(*pki.good)) as srv:  # type: ignore[arg-type]
        result = check_imap("-H", "localhost", "-p", str(srv.port), "--tls", "--ca-file", pki.ca)
    assert_line(
        result,
        0,
        rf"IMAP OK - localhost:{srv.port} answered in {NUM}s, TLSv1\.3, {CERT}, {summary} {PERF_TLS}",
    )
    # Courier keeps TCP open after close_notify: we must not wait for it to close.
    assert result.seconds("time_logout") < 1.0, result.first_line
    assert result.elapsed < 6.5


# ----------------------------------------------------------------- TLS and STARTTLS


def starttls_script(pki: Pki, cert: tuple[str, str] | None = None):  # type: ignore[no-untyped-def]
    def script(conn: Conn) -> None:
        conn.send(GREETING)
        tag = conn.expect("STARTTLS")
        conn.send(f"{tag} OK Begin TLS negotiation now\r\n".encode())
        conn.start_tls(server_context(*(cert or pki.good)))
        conn.logout()

    return script


def test_starttls_ok(pki: Pki) -> None:
    with serve(starttls_script(pki)) as srv:
        result = check_imap(
            "-H", "localhost", "-p", str(srv.port), "--starttls", "--ca-file", pki.ca
        )
    assert_line(
        result,
        0,
        rf"IMAP OK - localhost:{srv.port} answered in {NUM}s, TLSv1\.3, {CERT}, logout: BYE \+ tagged OK {PERF_TLS}",
    )


def test_starttls_not_advertised(pki: Pki) -> None:
    def script(conn: Conn) -> None:
        conn.send(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] no tls here\r\n")
        conn.wait_client_close()

    with serve(script) as srv:
        result = check_imap(
            "-H", "localhost", "-p", str(srv.port), "--starttls", "--ca-file", pki.ca
        )
    assert_line(result, 2, rf"IMAP CRITICAL - localhost:{srv.port}: STARTTLS is not advertised")


def test_starttls_refused(pki: Pki) -> None:
    def script(conn: Conn) -> None:
        conn.send(GREETING)
        tag = conn.expect("STARTTLS")
        conn.send(f"{tag} NO TLS is broken today\r\n".encode())
        conn.wait_client_close()

    with serve(script) as srv:
        result = check_imap(
            "-H", "localhost", "-p", str(srv.port), "--starttls", "--ca-file", pki.ca
        )
    assert_line(result, 2, rf"IMAP CRITICAL - localhost:{srv.port}: STARTTLS refused: NO")


def _greet_and_wait(conn: Conn) -> None:
    conn.send(GREETING)
    conn.wait_client_close()


def test_tls_spoken_to_a_plain_port(pki: Pki) -> None:
    with serve(_greet_and_wait) as srv:
        result = check_imap("-H", "localhost", "-p", str(srv.port), "--tls", "--ca-file", pki.ca)
    assert_line(
        result,
        2,
        rf"IMAP CRITICAL - localhost:{srv.port}: TLS handshake failed: the server does not speak TLS "
        r"\(plain IMAP port\? try without --tls\)",
    )


def test_plain_spoken_to_a_tls_port(pki: Pki) -> None:
    with serve(greet_then(Conn.logout), server_context(*pki.good)) as srv:
        result = check(srv.port, "-t", "1.5")
    assert_line(
        result,
        2,
        rf"IMAP CRITICAL - 127\.0\.0\.1:{srv.port}: timeout after 1\.5s waiting for the greeting: not a byte arrived \(an implicit TLS port\? try --tls\)",
    )
    assert 1.5 <= result.elapsed < 3


@pytest.mark.parametrize("mode", ["--tls", "--starttls"])
@pytest.mark.parametrize(
    ("cert", "problem"),
    [
        ("expired", r"certificate 'localhost' expired 3 days ago \(\d{4}-\d\d-\d\d\)"),
        (
            "wronghost",
            "certificate 'wrong.example.invalid' is not valid for localhost: it covers wrong.example.invalid",
        ),
        ("untrusted", "certificate 'localhost' has an unknown issuer 'someone else's CA'"),
    ],
)
def test_bad_certificates_are_critical(pki: Pki, mode: str, cert: str, problem: str) -> None:
    files = getattr(pki, cert)
    if mode == "--tls":
        srv_ctx = serve(greet_then(Conn.logout), server_context(*files))
    else:
        srv_ctx = serve(starttls_script(pki, files))
    with srv_ctx as srv:
        result = check_imap("-H", "localhost", "-p", str(srv.port), mode, "--ca-file", pki.ca)
    assert_line(result, 2, rf"IMAP CRITICAL - localhost:{srv.port}: {problem}")


def test_insecure_is_explicit_in_the_output(pki: Pki) -> None:
    with serve(greet_then(Conn.logout), server_context(*pki.good)) as srv:
        result = check_imap("-H", "localhost", "-p", str(srv.port), "--tls", "--insecure")
    assert_line(
        result,
        0,
        rf"IMAP OK - localhost:{srv.port} answered in {NUM}s, TLSv1\.3, {CERT}, logout: BYE \+ "
        rf"tagged OK \(certificate NOT verified: --insecure\) {PERF_TLS}",
    )


def test_insecure_still_judges_expiry(pki: Pki) -> None:
    with serve(greet_then(Conn.logout), server_context(*pki.expired)) as srv:
        result = check_imap("-H", "localhost", "-p", str(srv.port), "--tls", "--insecure")
    perf = PERF_TLS.replace(r"cert_days=\d+", "cert_days=-3").replace(
        r"chain_days=\d+", "chain_days=-3"
    )
    assert_line(
        result,
        2,
        rf"IMAP CRITICAL - localhost:{srv.port}: certificate 'localhost' expired 3 days ago "
        rf"\(\d{{4}}-\d\d-\d\d\) \(certificate NOT verified: --insecure\) {perf}",
    )


@pytest.mark.skipif(LEAF_ONLY, reason="Python 3.9 shows only the leaf certificate")
def test_verbose_output_layout(pki: Pki) -> None:
    def script(conn: Conn) -> None:
        conn.send(GREETING)
        tag = conn.expect("STARTTLS")
        conn.send(f"{tag} OK go\r\n".encode())
        conn.start_tls(server_context(*pki.good))
        tag = conn.expect("CAPABILITY")
        conn.send(f"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK\r\n".encode())
        conn.logout()

    with serve(script) as srv:
        result = check_imap(
            "-H",
            "localhost",
            "-p",
            str(srv.port),
            "--starttls",
            "--ca-file",
            pki.ca,
            "-v",
            "--require-capability",
            "IMAP4rev1",  # a policy, not -v, asks again after TLS
        )
    assert result.rc == 0
    lines = result.lines
    assert re.fullmatch(
        rf"IMAP OK - localhost:{srv.port} answered in {NUM}s, TLSv1\.3, {CERT}, logout: BYE \+ tagged OK \| .+",
        lines[0],
    )
    assert lines[1] == f"server: localhost:{srv.port} (127.0.0.1:{srv.port}), STARTTLS"
    assert re.fullmatch(
        r"tls: TLSv1\.3 \S+ \(\d+ bits\), certificate verified for localhost", lines[2]
    )
    assert re.fullmatch(
        r"certificate 0: 'localhost' \(localhost,127\.0\.0\.1,::1\) issuer 'check_imap test CA', expires \S+ \(364 days\), sha256 [0-9a-f]{64}",
        lines[3],
    )
    assert re.fullmatch(
        r"certificate 1: 'check_imap test CA' \(no SAN\) issuer 'check_imap test CA', expires \S+ \(3649 days\), sha256 [0-9a-f]{64}",
        lines[4],
    )
    assert lines[5] == "greeting: OK fake ready"
    assert lines[6] == "capabilities before STARTTLS: IMAP4REV1 STARTTLS AUTH=PLAIN"
    assert lines[7] == "capabilities: IMAP4REV1 AUTH=PLAIN"
    assert lines[8] == "logout: BYE + tagged OK"
    assert lines[9].startswith("timings: connect ")
    assert lines[10] == "transcript:"
    assert "C: a1 STARTTLS" in lines and "C: a3 LOGOUT" in lines
    assert re.fullmatch(PERF_TLS, result.perfdata), result.first_line
