"""check_imap, run as installed, against real Dovecot 2.3 instances on loopback.

Every check asserts the exit code, the exact shape of the first line (numbers as
``\\d+\\.\\d+``, day counts computed from the certificate), an empty stderr and that it
finished within its deadline. The last tests check the fixture library itself: the
mailbox, the layout, port collisions, start failures and that stopping leaves nothing.
"""

from __future__ import annotations

import imaplib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import dovecot as dc
from support.assertions import chain_perf, expect
from support.dovecot import Dovecot, Instance
from support.processes import Run, check_imap

pytestmark = pytest.mark.dovecot

NUM = r"\d+\.\d+"
DAY = 86400
PERF = rf"time={NUM}s;;;0;{NUM} (?:time_capability={NUM}s;;;0 )?time_connect={NUM}s;;;0 time_greeting={NUM}s;;;0 time_logout={NUM}s;;;0"
PERF_TLS = PERF + rf" time_tls={NUM}s;;;0"
LOGOUT = r"logout: BYE \+ tagged OK"


@pytest.fixture(scope="module", autouse=True)
def private_cert_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """As root check_imap would cache certificate facts in /var/cache: keep it in tmp."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield


# --------------------------------------------------------------------------- patterns


def target(host: str, port: int | None) -> str:
    return re.escape(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")


def date(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def days_left(instance: Instance, *moments: float) -> str:
    """The whole days left (truncated) at any of ``moments``: before and after a run."""
    values = sorted({int((instance.not_after - m) / DAY) for m in moments})
    return "(" + "|".join(str(v) for v in values) + ")"


def days_ago(instance: Instance, *moments: float) -> str:
    values = sorted({int((m - instance.not_after) // DAY) for m in moments})
    return "(" + "|".join(str(v) for v in values) + ")"


def cert_perf(days: str = r"\d+", warning: int = 21, critical: int = 7) -> str:
    return f"cert_days={days};{warning}:;{critical}: " + chain_perf(
        f"chain_days={days};{warning}:;{critical}: "
    )


def ok_line(
    host: str,
    port: int | None,
    instance: Instance | None = None,
    *,
    note: str = "",
    days: str = r"\d+",
    cert_thresholds: tuple[int, int] = (21, 7),
) -> str:
    """The OK line; with ``instance`` for TLS, whose certificate is then named."""
    if instance is None:
        return rf"IMAP OK - {target(host, port)} answered in {NUM}s, {LOGOUT} \| {PERF}"
    label = re.escape(instance.cert_cn)
    return (
        rf"IMAP OK - {target(host, port)} answered in {NUM}s, TLSv1.3, "
        rf"certificate '{label}' expires {date(instance.not_after)}, {LOGOUT}{re.escape(note)}"
        rf" \| {cert_perf(days, *cert_thresholds)}{PERF_TLS}"
    )


def problem(state: str, host: str, port: int | None, text: str) -> str:
    """A failed session: one status line and no performance data."""
    return rf"IMAP {state} - {target(host, port)}: {text}"


def tls_args(dovecot: Dovecot, instance: Instance) -> tuple[str, ...]:
    return ("-p", str(instance.tls_port), "--tls", "--ca-file", str(dovecot.ca_file))


def starttls_args(dovecot: Dovecot) -> tuple[str, ...]:
    port = str(dovecot.main.plain_port)
    return ("-p", port, "--starttls", "--ca-file", str(dovecot.ca_file))


# --------------------------------------------------------------------------- healthy


def test_plain(dovecot: Dovecot) -> None:
    run = check_imap("-H", "localhost", "-p", str(dovecot.main.plain_port))
    expect(run, 0, ok_line("localhost", dovecot.main.plain_port))


def test_starttls(dovecot: Dovecot) -> None:
    run = check_imap("-H", "localhost", *starttls_args(dovecot))
    expect(run, 0, ok_line("localhost", dovecot.main.plain_port, dovecot.main))


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1"])
def test_implicit_tls(dovecot: Dovecot, host: str) -> None:
    main = dovecot.main
    if ":" in host and not main.ipv6:
        pytest.skip("no IPv6 loopback on this machine")
    start = time.time()
    run = check_imap("-H", host, *tls_args(dovecot, main))
    days = days_left(main, start, time.time())
    expect(run, 0, ok_line(host, main.tls_port, main, days=days))


def test_verbose_tls(dovecot: Dovecot) -> None:
    main, port = dovecot.main, dovecot.main.tls_port
    start = time.time()
    run = check_imap("-H", "localhost", "-v", *tls_args(dovecot, main))
    days = days_left(main, start, time.time())
    first = ok_line("localhost", port, main, days=days)
    expect(run, 0, first)
    lines = run.lines
    assert re.fullmatch(
        rf"server: localhost:{port} \((127\.0\.0\.1|\[::1\]):{port}\), implicit TLS", lines[1]
    ), lines
    assert re.fullmatch(
        r"tls: TLSv1\.3 TLS_\w+ \(\d+ bits\), certificate verified for localhost", lines[2]
    ), lines
    leaf = (
        rf"certificate 0: 'localhost' \(localhost,127\.0\.0\.1,::1\) issuer "
        rf"'check_imap dovecot test CA', expires {date(main.not_after)} \({days} days\), "
        rf"sha256 {main.cert.sha256}"
    )
    assert re.fullmatch(leaf, lines[3]), lines
    assert "greeting: OK Dovecot (Debian) ready." in lines
    caps = [line for line in lines if line.startswith("capabilities")]
    assert len(caps) == 1, lines
    assert re.fullmatch(r"capabilities: IMAP4REV1( \S+)* AUTH=PLAIN( \S+)*", caps[0]), caps
    assert "STARTTLS" not in caps[0].split()
    assert "logout: BYE + tagged OK" in lines
    transcript_at = lines.index("transcript:")
    assert re.fullmatch(
        rf"timings: connect {NUM}s, tls {NUM}s, greeting {NUM}s, logout {NUM}s, total {NUM}s",
        lines[transcript_at - 1],
    ), lines
    transcript = lines[transcript_at + 1 :]
    assert transcript[0].startswith("S: * OK [CAPABILITY IMAP4rev1 "), transcript
    assert transcript[1:] == ["C: a1 LOGOUT", "S: * BYE Logging out", "S: a1 OK Logout completed."]
    assert re.fullmatch(rf"\| {cert_perf(days)}{PERF_TLS}", run.perfdata), lines


def test_verbose_starttls(dovecot: Dovecot) -> None:
    port = dovecot.main.plain_port
    # A capability policy (never -v) makes the check ask again after TLS.
    run = check_imap(
        "-H", "localhost", "-v", "--require-capability", "IMAP4rev1", *starttls_args(dovecot)
    )
    expect(run, 0, ok_line("localhost", port, dovecot.main))
    lines = run.lines
    assert re.fullmatch(rf"server: localhost:{port} \(\S+:{port}\), STARTTLS", lines[1]), lines
    before = [x for x in lines if x.startswith("capabilities before STARTTLS: ")]
    after = [x for x in lines if x.startswith("capabilities: ")]
    assert len(before) == 1 and "STARTTLS" in before[0].split(), lines
    assert len(after) == 1 and "STARTTLS" not in after[0].split(), lines
    transcript = lines[lines.index("transcript:") + 1 :]
    assert transcript[0].startswith("S: * OK [CAPABILITY IMAP4rev1 "), transcript
    assert transcript[1:3] == ["C: a1 STARTTLS", "S: a1 OK Begin TLS negotiation now."]
    assert transcript[3] == "C: a2 CAPABILITY"
    assert transcript[4].startswith("S: * CAPABILITY IMAP4rev1 "), transcript
    assert transcript[5].startswith("S: a2 OK "), transcript
    assert transcript[6:] == ["C: a3 LOGOUT", "S: * BYE Logging out", "S: a3 OK Logout completed."]
    assert re.fullmatch(rf"\| {cert_perf()}{PERF_TLS}", run.perfdata), lines


def test_strict_logout_plain(dovecot: Dovecot) -> None:
    run = check_imap("-H", "localhost", "-p", str(dovecot.main.plain_port), "--strict-logout")
    expect(run, 0, ok_line("localhost", dovecot.main.plain_port))


def test_strict_logout_tls(dovecot: Dovecot) -> None:
    run = check_imap("-H", "localhost", "--strict-logout", *tls_args(dovecot, dovecot.main))
    expect(run, 0, ok_line("localhost", dovecot.main.tls_port, dovecot.main))


def test_python_dash_m(dovecot: Dovecot) -> None:
    port = dovecot.main.plain_port
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "check_imap", "-H", "127.0.0.1", "-p", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    run = Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)
    expect(run, 0, ok_line("127.0.0.1", port))


# --------------------------------------------------------------------------- certificates


def test_tls_without_ca_file_is_untrusted(dovecot: Dovecot) -> None:
    port = dovecot.main.tls_port
    run = check_imap("-H", "localhost", "-p", str(port), "--tls")
    text = "certificate 'localhost' has an unknown issuer 'check_imap dovecot test CA'"
    expect(run, 2, problem("CRITICAL", "localhost", port, re.escape(text)))


def test_expired_certificate(dovecot: Dovecot) -> None:
    expired = dovecot.expired
    start = time.time()
    run = check_imap("-H", "localhost", *tls_args(dovecot, expired))
    ago = days_ago(expired, start, time.time())
    text = rf"certificate 'localhost' expired {ago} days ago \(2021-01-01\)"
    expect(run, 2, problem("CRITICAL", "localhost", expired.tls_port, text))


def test_wrong_host_certificate(dovecot: Dovecot) -> None:
    port = dovecot.wronghost.tls_port
    run = check_imap("-H", "localhost", *tls_args(dovecot, dovecot.wronghost))
    text = (
        "certificate 'wrong.example.invalid' is not valid for localhost: "
        "it covers wrong.example.invalid"
    )
    expect(run, 2, problem("CRITICAL", "localhost", port, re.escape(text)))


def test_wrong_host_insecure(dovecot: Dovecot) -> None:
    wronghost = dovecot.wronghost
    run = check_imap("-H", "localhost", "-p", str(wronghost.tls_port), "--tls", "--insecure")
    note = " (certificate NOT verified: --insecure)"
    expect(run, 0, ok_line("localhost", wronghost.tls_port, wronghost, note=note))


def test_certificate_expiring_soon_warns(dovecot: Dovecot) -> None:
    soon = dovecot.soon
    start = time.time()
    run = check_imap("-H", "localhost", *tls_args(dovecot, soon))
    days = days_left(soon, start, time.time())
    text = (
        rf"certificate 'localhost' expires in {days} days \({date(soon.not_after)}\)"
        rf" \| {cert_perf(days)}{PERF_TLS}"
    )
    expect(run, 1, problem("WARNING", "localhost", soon.tls_port, text))


def test_certificate_expiring_soon_is_ok_below_the_thresholds(dovecot: Dovecot) -> None:
    soon = dovecot.soon
    start = time.time()
    args = ("--cert-warning", "5", "--cert-critical", "2")
    run = check_imap("-H", "localhost", *tls_args(dovecot, soon), *args)
    days = days_left(soon, start, time.time())
    expect(run, 0, ok_line("localhost", soon.tls_port, soon, days=days, cert_thresholds=(5, 2)))


# --------------------------------------------------------------------------- wrong mode


def test_tls_on_the_plain_port(dovecot: Dovecot) -> None:
    port = dovecot.main.plain_port
    run = check_imap("-H", "localhost", "-p", str(port), "--tls", "--ca-file", str(dovecot.ca_file))
    text = (
        "TLS handshake failed: the server does not speak TLS (plain IMAP port? try without --tls)"
    )
    expect(run, 2, problem("CRITICAL", "localhost", port, re.escape(text)))


def test_plain_on_the_tls_port_times_out(dovecot: Dovecot) -> None:
    port = dovecot.main.tls_port
    run = check_imap("-H", "localhost", "-p", str(port), "-t", "2")
    text = "timeout after 2s waiting for the greeting: not a byte arrived (an implicit TLS port? try --tls)"
    expect(run, 2, problem("CRITICAL", "localhost", port, re.escape(text)), timeout=3)
    assert run.elapsed >= 2, run.elapsed


# --------------------------------------------------------------------------- thresholds


def test_response_time_warning(dovecot: Dovecot) -> None:
    port = dovecot.main.plain_port
    run = check_imap("-H", "localhost", "-p", str(port), "-w", "0.000001")
    perf = PERF.replace(f"time={NUM}s;;;0;", f"time={NUM}s;1e-06;;0;", 1)
    text = rf"{NUM}s response time \(outside range 0:1e-06\) \| {perf}"
    expect(run, 1, problem("WARNING", "localhost", port, text))


def test_response_time_critical(dovecot: Dovecot) -> None:
    port = dovecot.main.plain_port
    run = check_imap("-H", "localhost", "-p", str(port), "-w", "5", "-c", "0.000001")
    perf = PERF.replace(f"time={NUM}s;;;0;", f"time={NUM}s;5;1e-06;0;", 1)
    text = rf"{NUM}s response time \(outside range 0:1e-06\) \| {perf}"
    expect(run, 2, problem("CRITICAL", "localhost", port, text))


def test_greeting_time_critical(dovecot: Dovecot) -> None:
    port = dovecot.main.plain_port
    run = check_imap("-H", "localhost", "-p", str(port), "--greeting-critical", "0.000001")
    perf = PERF.replace(f"time_greeting={NUM}s;;;0", f"time_greeting={NUM}s;;1e-06;0")
    text = rf"{NUM}s greeting time \(outside range 0:1e-06\) \| {perf}"
    expect(run, 2, problem("CRITICAL", "localhost", port, text))


# --------------------------------------------------------------------------- the fixture itself


def test_fixture_mailbox(dovecot: Dovecot) -> None:
    """The known messages are there and the probe user can log in (a later issue needs it)."""
    main = dovecot.main
    assert len(list((main.maildir / "cur").iterdir())) == dc.CUR_MESSAGES == 3
    assert len(list((main.maildir / "new").iterdir())) == dc.NEW_MESSAGES == 2
    imap = imaplib.IMAP4("127.0.0.1", main.plain_port or 0, timeout=5)
    try:
        assert imap.login(dovecot.user, dovecot.password)[0] == "OK"
        assert imap.select("INBOX", readonly=True) == ("OK", [str(dovecot.messages).encode()])
        assert imap.search(None, "UNSEEN") == ("OK", [b"4 5"])
    finally:
        imap.logout()


def test_fixture_layout(dovecot: Dovecot) -> None:
    assert list(dovecot.instances) == ["main", "expired", "wronghost", "soon"]
    assert [i.plain_port is None for i in dovecot.instances.values()] == [False, True, True, True]
    ports = [p for i in dovecot.instances.values() for p in i.ports]
    assert len(ports) == len(set(ports)) == 5
    for instance in dovecot.instances.values():
        assert instance.running()
        assert instance.process is not None
        assert instance.master_pid() == instance.process.pid
        assert instance.base_dir.is_relative_to(dovecot.root)
        assert "!include" not in instance.config.read_text()


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_fixture_listens_on_its_ports_only(dovecot: Dovecot) -> None:
    """Each master holds exactly its configured listeners: never Dovecot's 143 or 993."""
    for instance in dovecot.instances.values():
        assert instance.listening_ports() == set(instance.ports), instance.name


def test_unavailable_without_dovecot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(dc, "DOVECOT", tmp_path / "no-dovecot")
    assert dc.unavailable() == dc.MISSING
    assert dc.MISSING == "dovecot not installed: run tests/run as root to install dovecot-imapd"


@pytest.fixture
def lone_root() -> Iterator[Path]:
    """A root for one test's own instance; the test stops what it starts."""
    reason = dc.unavailable()
    if reason is not None:
        pytest.skip(reason)
    root = dc.make_root()
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_start_failure_reports_the_log(lone_root: Path) -> None:
    spec = dc.Spec("broken", "localhost", plain=False, extra="no_such_setting = 1\n")
    with pytest.raises(dc.DovecotStartError) as info:
        dc.start(lone_root, (spec,))
    message = str(info.value)
    assert f"[broken] {dc.DOVECOT} -F -c {lone_root}/broken/dovecot.conf: exit " in message
    assert "Unknown setting: no_such_setting" in message
    assert not [i for i in dc._RUNNING if i.dir.is_relative_to(lone_root)]


def test_port_collision_is_retried_and_stop_leaves_nothing(
    lone_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as busy:
        busy.bind((dc.HOST, 0))
        busy.listen()
        taken = busy.getsockname()[1]
        real = dc.free_port
        handed: list[int] = []

        def taken_first(ipv6: bool = False) -> int:
            handed.append(real(ipv6) if handed else taken)
            return handed[-1]

        monkeypatch.setattr(dc, "free_port", taken_first)
        bed = dc.start(lone_root, (dc.Spec("lone", "localhost", plain=False, ipv6=False),))
    lone = bed.instances["lone"]
    try:
        assert handed[0] == taken != lone.tls_port == handed[-1]
        assert dc.greets(dc.HOST, lone.tls_port, tls=True)
        pid = lone.master_pid()
        assert pid is not None
    finally:
        started = time.monotonic()
        bed.cleanup()
        stopped_in = time.monotonic() - started
    assert stopped_in < dc.STOP_TIMEOUT, "Dovecot ignored TERM and had to be killed"
    assert lone.process is None and lone not in dc._RUNNING
    assert not dc.accepts(dc.HOST, lone.tls_port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
