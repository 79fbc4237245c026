"""One vocabulary of steps (#14): the table, and the three bugs that lived between layers."""

from __future__ import annotations

import re

from check_imap.arguments import build_parser
from check_imap.check.contexts import build_contexts
from check_imap.options import Options, Target
from check_imap.steps import BUCKETS, TABLE, Step, bucket, waiting
from support.assertions import NUM, expect, times
from support.fakeserver import Conn, serve
from support.processes import check_imap

LOGOUT = r"logout: BYE \+ tagged OK"


def test_every_step_has_a_bucket_and_a_timeout_text() -> None:
    assert set(TABLE) == set(Step)
    for step in Step:
        assert bucket(step) in BUCKETS
        assert waiting(step) and waiting(step) == waiting(step).strip()
    # Implicit TLS and the STARTTLS command are different steps, one bucket.
    assert bucket(Step.TLS) == bucket(Step.STARTTLS) == "tls"
    assert waiting(Step.TLS) != waiting(Step.STARTTLS)
    assert bucket(Step.CAPABILITY) == "capability"  # its own round trip, its own metric


def test_every_bucket_has_perfdata_and_threshold_options() -> None:
    options = {a for action in build_parser()._actions for a in action.option_strings}
    contexts = {c.name for c in build_contexts(Options(Target("imap.test", 143)), {})}
    for name in BUCKETS:
        assert f"--{name}-warning" in options and f"--{name}-critical" in options
        assert f"time_{name}" in contexts


def with_critical(perf: str, label: str) -> str:
    """The perfdata regex with the critical threshold 1e-07 on ``time_<label>``."""
    return perf.replace(f"time_{label}={NUM}s;;;0", f"time_{label}={NUM}s;;1e-07;0")


def _never_speaks_tls(conn: Conn) -> None:
    conn.wait_client_close()  # accepts TCP, then not a byte: the handshake hangs


def test_tls_handshake_timeout_names_the_tls_handshake() -> None:
    """Was: "timeout after 1s in STARTTLS" for an implicit TLS handshake."""
    with serve(_never_speaks_tls) as srv:
        result = check_imap("-H", "127.0.0.1", "-p", str(srv.port), "--tls", "-t", "1")
    expect(
        result,
        2,
        rf"IMAP CRITICAL - 127\.0\.0\.1:{srv.port}: timeout after 1s in the TLS handshake",
        timeout=4,  # our deadline, not nagiosplugin's 3 s backstop (its line would differ)
    )


def _healthy(conn: Conn) -> None:
    conn.send(b"* OK [CAPABILITY IMAP4rev1] ready\r\n")
    conn.logout()


def test_step_thresholds_apply_with_all_addresses() -> None:
    """Was: --greeting-critical ignored with --all-addresses (IMAP OK)."""
    args = ("-H", "127.0.0.1", "--greeting-critical", "0.0000001")
    with serve(_healthy) as srv:
        one = check_imap(*args, "-p", str(srv.port))
        every = check_imap(*args, "-p", str(srv.port), "--all-addresses")
    expect(
        one,
        2,
        rf"IMAP CRITICAL - 127\.0\.0\.1:{srv.port}: {NUM}s greeting time \(outside range "
        rf"0:1e-07\) \| {with_critical(times(''), 'greeting')}",
    )
    expect(
        every,
        2,
        rf"IMAP CRITICAL - 127\.0\.0\.1:{srv.port}: CRITICAL on 127\.0\.0\.1: {NUM}s greeting "
        rf"time \(outside range 0:1e-07\) \| {with_critical(times('v4_1'), 'greeting_v4_1')}",
    )


def _caps_round_trip(conn: Conn) -> None:
    conn.send(b"* OK ready\r\n")  # no capabilities in the greeting: the check must ask
    tag = conn.expect("CAPABILITY")
    conn.send(f"* CAPABILITY IMAP4rev1 IDLE\r\n{tag} OK done\r\n".encode())
    conn.logout()


def test_capability_time_is_in_perfdata_and_can_be_thresholded() -> None:
    """Was: CAPABILITY time shown by -v but missing from perfdata."""
    base = ("-H", "127.0.0.1", "--require-capability", "IDLE")
    steps = ("capability", "connect", "greeting", "logout")
    with serve(_caps_round_trip) as srv:
        plain = check_imap(*base, "-p", str(srv.port))
        critical = check_imap(*base, "-p", str(srv.port), "--capability-critical", "0.0000001")
    expect(
        plain,
        0,
        rf"IMAP OK - 127\.0\.0\.1:{srv.port} answered in {NUM}s, {LOGOUT} \| "
        + times("", steps=steps),
    )
    expect(
        critical,
        2,
        rf"IMAP CRITICAL - 127\.0\.0\.1:{srv.port}: {NUM}s capability time \(outside range "
        rf"0:1e-07\) \| " + with_critical(times("", steps=steps), "capability"),
    )


def test_verbose_never_changes_what_is_sent() -> None:
    """-v only reports: the same commands go out with and without it."""
    sent: list[list[str]] = []

    def recorder(conn: Conn) -> None:
        conn.send(b"* OK ready\r\n")
        lines = [conn.readline().decode()]
        sent.append(lines)
        conn.send(f"* BYE bye\r\n{lines[0].split()[0]} OK done\r\n".encode())

    with serve(recorder) as srv:
        quiet = check_imap("-H", "127.0.0.1", "-p", str(srv.port))
        loud = check_imap("-H", "127.0.0.1", "-p", str(srv.port), "-vvv")
    assert quiet.rc == loud.rc == 0
    assert sent == [["a1 LOGOUT"], ["a1 LOGOUT"]]
    assert re.fullmatch(r"IMAP OK - .*", loud.first_line)
