"""check_imap's login, mailbox, quota, capability and --all-addresses checks on real Dovecot.

Its own instances (``dovecot.LOGIN_SPECS``), apart from the session fixture's four:

- ``quota``: quota plugin (count backend, 1024 KiB and 100 messages), INBOX with 3 seen
  + 2 new messages and the folders of ``dovecot.FOLDERS``; 127.0.0.1 and ::1.
- ``clear``: on 127.0.0.2, so Dovecot sees a cleartext client from another address and
  advertises LOGINDISABLED in clear; no delay after a failed login.
- ``v4only``: on 127.0.0.1 only, never ::1, and without the quota plugin.

Every check asserts the exit code, the exact first line (numbers as ``\\d+\\.\\d+``), an
empty stderr and that it finished within its deadline.
"""

from __future__ import annotations

import base64
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import dovecot as dc
from support.assertions import LEAF_ONLY, PERFDATA, chain_perf, expect, times
from support.dovecot import Dovecot, Instance
from support.processes import Run, run

pytestmark = pytest.mark.dovecot

NUM = r"\d+\.\d+"
LOGOUT = r"logout: BYE \+ tagged OK"
TIMES = (
    rf"time={NUM}s;;;0;{NUM} (?:time_capability={NUM}s;;;0 )?time_connect={NUM}s;;;0 time_greeting={NUM}s;;;0 "
    rf"time_login={NUM}s;;;0 time_logout={NUM}s;;;0 time_mailbox={NUM}s;;;0"
)
PLAIN_TIMES = (
    rf"time={NUM}s;;;0;{NUM} (?:time_capability={NUM}s;;;0 )?time_connect={NUM}s;;;0 time_greeting={NUM}s;;;0 "
    rf"time_logout={NUM}s;;;0"
)
CERT_PERF = r"cert_days=\d+;21:;7: " + chain_perf(r"chain_days=\d+;21:;7: ")
ALL_MESSAGES = dc.MESSAGES + sum(n for _name, n in dc.FOLDERS)  # 12 for the quota user
DOVECOT_SECS = r"\(\d+\.\d+ \+ \d+\.\d+( \+ \d+\.\d+)? secs\)\."  # Dovecot's timing suffix


@pytest.fixture(scope="module")
def bed() -> Iterator[Dovecot]:
    reason = dc.unavailable()
    if reason is not None:
        pytest.skip(reason)
    failure = None
    try:
        started = dc.start(specs=dc.LOGIN_SPECS)
    except dc.DovecotStartError as exc:
        failure = str(exc)
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    try:
        yield started
    finally:
        started.cleanup()


@pytest.fixture(scope="module")
def quota(bed: Dovecot) -> Instance:
    return bed.instances["quota"]


@pytest.fixture(scope="module")
def clear(bed: Dovecot) -> Instance:
    return bed.instances["clear"]


@pytest.fixture(scope="module")
def v4only(bed: Dovecot) -> Instance:
    return bed.instances["v4only"]


# --------------------------------------------------------------------------- helpers


def check(
    *args: str,
    password: str | None = dc.PASSWORD,
    env: dict[str, str] | None = None,
    prefix: tuple[str, ...] = (),
) -> Run:
    full_env = {"CHECK_IMAP_PASSWORD": password or "", **(env or {})}
    return run("check_imap", *args, env=full_env, prefix=prefix)


def target(host: str, port: int | None) -> str:
    return re.escape(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")


def tls(bed: Dovecot, instance: Instance, *more: str) -> tuple[str, ...]:
    """Implicit TLS to ``instance`` by name (localhost, valid for its certificate)."""
    port = str(instance.tls_port)
    return ("-H", "localhost", "-p", port, "--tls", "--ca-file", str(bed.ca_file), *more)


def starttls(bed: Dovecot, instance: Instance, *more: str) -> tuple[str, ...]:
    host = instance.host if instance.host != dc.HOST else "localhost"
    port = str(instance.plain_port)
    sni = ("--sni", "localhost") if host != "localhost" else ()
    return ("-H", host, "-p", port, "--starttls", "--ca-file", str(bed.ca_file), *sni, *more)


def tls_head(instance: Instance, host: str = "localhost", port: int | None = None) -> str:
    expires = time.strftime("%Y-%m-%d", time.gmtime(instance.not_after))
    where = target(host, port or instance.tls_port)
    return (
        rf"IMAP OK - {where} answered in {NUM}s, TLSv1\.3, certificate 'localhost' "
        rf"expires {expires}"
    )


def storage_kib(instance: Instance) -> int:
    """What the count backend reports: virtual sizes (CRLF line ends), in KiB rounded up."""
    total = 0
    for path in instance.maildir.parent.rglob("*"):
        if path.is_file() and path.parent.name in ("cur", "new"):
            data = path.read_bytes()
            total += len(data) + data.count(b"\n") - data.count(b"\r\n")
    return -(-total // 1024)


def quota_perf(instance: Instance, suffix: str = "") -> str:
    used = storage_kib(instance) * 1024
    return (
        rf"quota_messages{suffix}={ALL_MESSAGES};;;0;{dc.QUOTA_MESSAGES} "
        rf"quota_storage{suffix}={used}B;;;0;{dc.QUOTA_STORAGE_KIB * 1024}"
    )


def inbox_perf(instance: Instance) -> str:
    return (
        rf"messages={dc.MESSAGES};;;0 {quota_perf(instance)} recent=\d+;;;0 {TIMES} "
        rf"time_tls={NUM}s;;;0 unseen={dc.NEW_MESSAGES};;;0"
    )


QUOTA_PERCENT = f"{100.0 * ALL_MESSAGES / dc.QUOTA_MESSAGES:.1f}"  # messages are the fuller


# --------------------------------------------------------------------------- login + mailbox + quota


def test_login_mailbox_and_quota(bed: Dovecot, quota: Instance) -> None:
    result = check(*tls(bed, quota, "-u", dc.USER))
    expect(
        result,
        0,
        rf"{tls_head(quota)}, logged in as probe, 'INBOX' {dc.MESSAGES} messages "
        rf"\({dc.NEW_MESSAGES} unseen\), quota {re.escape(QUOTA_PERCENT)}% used, {LOGOUT} \| "
        rf"{CERT_PERF}{inbox_perf(quota)}",
    )


def test_verbose_shows_capabilities_login_mailbox_and_quota(bed: Dovecot, quota: Instance) -> None:
    result = check(*tls(bed, quota, "-u", dc.USER, "-v"))
    expect(
        result,
        0,
        rf"{tls_head(quota)}, logged in as probe, .*, {LOGOUT} \| {CERT_PERF}{inbox_perf(quota)}",
    )
    lines = result.lines
    caps = [x for x in lines if x.startswith("capabilities: ")]
    after = [x for x in lines if x.startswith("capabilities after login: ")]
    assert len(caps) == 1 and "AUTH=PLAIN" in caps[0].split() and "QUOTA" not in caps[0], lines
    assert len(after) == 1 and "QUOTA" in after[0].split(), lines
    assert "login: probe via AUTHENTICATE PLAIN" in lines
    assert re.fullmatch(
        rf"mailbox 'INBOX': {dc.MESSAGES} messages, \d+ recent, {dc.NEW_MESSAGES} unseen, "
        rf"EXAMINE saw {dc.MESSAGES}; quota root 'User quota': STORAGE {storage_kib(quota)}/"
        rf"{dc.QUOTA_STORAGE_KIB}, MESSAGE {ALL_MESSAGES}/{dc.QUOTA_MESSAGES}",
        next(x for x in lines if x.startswith("mailbox ")),
    ), lines
    transcript = lines[lines.index("transcript:") + 1 :]
    assert transcript[1] == "C: a1 AUTHENTICATE PLAIN [credentials redacted]", transcript
    assert transcript[3:5] == [
        'C: a2 STATUS "INBOX" (MESSAGES RECENT UNSEEN)',
        (f"S: * STATUS INBOX (MESSAGES {dc.MESSAGES} RECENT ") + transcript[4].split("RECENT ")[1],
    ], transcript
    assert 'C: a3 EXAMINE "INBOX"' in transcript
    assert 'C: a4 GETQUOTAROOT "INBOX"' in transcript


def test_password_never_shown_at_vvv(bed: Dovecot, quota: Instance, tmp_path: Path) -> None:
    token = base64.b64encode(f"\0{dc.USER}\0{dc.PASSWORD}".encode()).decode()
    secret = tmp_path / "pw"
    secret.write_text(dc.PASSWORD + "\n")
    secret.chmod(0o600)  # a password file must be private
    for args in (
        tls(bed, quota, "-u", dc.USER, "-vvv"),
        starttls(bed, quota, "-u", dc.USER, "--password-file", str(secret), "-vvv"),
    ):
        result = check(*args, password=None if "--password-file" in args else dc.PASSWORD)
        expect(result, 0, r"IMAP OK - .*, logged in as probe, .*")
        for shown in (result.out, result.err):
            assert dc.PASSWORD not in shown and token not in shown, shown


def test_password_file_over_starttls(bed: Dovecot, quota: Instance, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text(dc.PASSWORD + "\n")
    secret.chmod(0o600)  # a password file must be private
    result = check(
        *starttls(bed, quota, "-u", dc.USER, "--password-file", str(secret)), password=None
    )
    expect(
        result,
        0,
        rf"{tls_head(quota, port=quota.plain_port)}, logged in as probe, 'INBOX' {dc.MESSAGES} "
        rf"messages \({dc.NEW_MESSAGES} unseen\), quota {re.escape(QUOTA_PERCENT)}% used, "
        rf"{LOGOUT} \| {CERT_PERF}{inbox_perf(quota)}",
    )


def test_mailboxes_quoted_and_modified_utf7(bed: Dovecot, quota: Instance) -> None:
    names = [name for name, _n in dc.FOLDERS]
    args = [a for name in names for a in ("--mailbox", name)]
    result = check(*tls(bed, quota, "-u", dc.USER, *args))
    # They share one quota root, so its use is said once, after the first mailbox.
    boxes = ", ".join(
        rf"'{re.escape(name)}' {n} message{'' if n == 1 else 's'} \({n} unseen\)"
        + (rf", quota {re.escape(QUOTA_PERCENT)}% used" if i == 0 else "")
        for i, (name, n) in enumerate(dc.FOLDERS)
    )
    expect(result, 0, rf"{tls_head(quota)}, logged in as probe, {boxes}, {LOGOUT} \| .*")
    perf = result.first_line.split(" | ")[1]
    labels = ("Queue", "Sent_Items", "Say__hi_", "Entw_rfe")
    for label, (_name, n) in zip(labels, dc.FOLDERS):
        assert f" messages_{label}={n};;;0 " in f" {perf} ", perf
        assert f" unseen_{label}={n};;;0 " in f" {perf} ", perf
    # One quota root for all: reported once, with the first mailbox's label.
    for item in quota_perf(quota, f"_{labels[0]}").split():
        assert f" {item} " in f" {perf} ", perf
    assert perf.count("quota_storage_") == 1, perf


@pytest.mark.parametrize(
    ("box", "rc", "line"),
    [
        ("Queue", 0, "{head}, logged in as probe, 'Queue' 0 messages \\(0 unseen\\), quota .*"),
        (
            "Sent Items",
            2,
            r"IMAP CRITICAL - {where}: mailbox 'Sent Items' has 2 messages \(outside range 0:0\) \| .*",
        ),
    ],
)
def test_queue_must_stay_empty(bed: Dovecot, quota: Instance, box: str, rc: int, line: str) -> None:
    result = check(*tls(bed, quota, "-u", dc.USER, "--mailbox", box, "--messages-critical", "0"))
    expect(result, rc, line.format(head=tls_head(quota), where=target("localhost", quota.tls_port)))
    assert re.search(r"\bmessages=\d+;;0;0 ", result.first_line), result.first_line


def test_missing_mailbox_is_critical(bed: Dovecot, quota: Instance) -> None:
    result = check(*tls(bed, quota, "-u", dc.USER, "--mailbox", "Nope"))
    expect(
        result,
        2,
        rf"IMAP CRITICAL - {target('localhost', quota.tls_port)}: mailbox 'Nope': STATUS NO "
        rf"Mailbox doesn't exist: Nope {DOVECOT_SECS} \| {CERT_PERF}{TIMES} time_tls={NUM}s;;;0",
    )


@pytest.mark.parametrize(
    ("args", "rc", "state"),
    [
        (("--quota-warning", "50", "--quota-critical", "90"), 0, "OK"),
        (("--quota-warning", "10", "--quota-critical", "90"), 1, "WARNING"),
        (("--quota-warning", "5", "--quota-critical", "11.5"), 2, "CRITICAL"),
    ],
)
def test_quota_thresholds(
    bed: Dovecot, quota: Instance, args: tuple[str, ...], rc: int, state: str
) -> None:
    result = check(*tls(bed, quota, "-u", dc.USER, *args))
    if rc == 0:
        head = rf"{tls_head(quota)}, logged in as probe, 'INBOX' .*, {LOGOUT}"
    else:
        head = (
            rf"IMAP {state} - {target('localhost', quota.tls_port)}: quota of 'INBOX' "
            rf"{re.escape(QUOTA_PERCENT)}% used \(message\)"
        )
    expect(result, rc, rf"{head} \| {CERT_PERF}{inbox_perf(quota)}")


def test_quota_warning_without_the_quota_plugin_is_unknown(bed: Dovecot, v4only: Instance) -> None:
    result = check(*tls(bed, v4only, "-u", dc.USER, "--quota-warning", "80"))
    expect(
        result,
        3,
        rf"IMAP UNKNOWN - {target('localhost', v4only.tls_port)}: cannot check quota: the server "
        rf"does not advertise QUOTA \| {CERT_PERF}messages={dc.MESSAGES};;;0 recent=\d+;;;0 "
        rf"{TIMES} time_tls={NUM}s;;;0 unseen={dc.NEW_MESSAGES};;;0",
    )


def test_wrong_password_is_critical_with_the_server_text(bed: Dovecot, clear: Instance) -> None:
    """On ``clear`` only: Dovecot delays later logins from an address that failed one."""
    result = check(*starttls(bed, clear, "-u", dc.USER, "-vvv"), password="not-the-password")
    expect(
        result,
        2,
        rf"IMAP CRITICAL - {target(clear.host, clear.plain_port)}: login failed: "
        r"NO \[AUTHENTICATIONFAILED\] Authentication failed\.",
    )
    assert "not-the-password" not in result.out


# --------------------------------------------------------------------------- cleartext


def test_cleartext_login_needs_the_option(bed: Dovecot, quota: Instance) -> None:
    args = ("-H", "localhost", "-p", str(quota.plain_port), "-u", dc.USER)
    refused = check(*args)
    expect(
        refused,
        3,
        r"IMAP UNKNOWN - refusing to send credentials in clear: use --tls or --starttls "
        r"\(or --allow-cleartext-login\) \(see check_imap --help\)",
    )
    assert refused.lines == [refused.first_line]
    # Dovecot counts a loopback client as secured: it accepts the login in clear.
    allowed = check(*args, "--allow-cleartext-login")
    expect(
        allowed,
        0,
        rf"IMAP OK - {target('localhost', quota.plain_port)} answered in {NUM}s, logged in as "
        rf"probe, 'INBOX' {dc.MESSAGES} messages \({dc.NEW_MESSAGES} unseen\), quota "
        rf"{re.escape(QUOTA_PERCENT)}% used, {LOGOUT} \| messages={dc.MESSAGES};;;0 "
        rf"{quota_perf(quota)} recent=\d+;;;0 {TIMES} unseen={dc.NEW_MESSAGES};;;0",
    )


def test_cleartext_login_refused_by_logindisabled(clear: Instance) -> None:
    result = check(
        "-H", clear.host, "-p", str(clear.plain_port), "-u", dc.USER, "--allow-cleartext-login"
    )
    # Our --allow-cleartext-login meets a server that rightly refuses: a configuration
    # mismatch to fix (use STARTTLS), not a broken service.
    expect(
        result,
        3,
        rf"IMAP UNKNOWN - {target(clear.host, clear.plain_port)}: the server refuses login "
        r"in clear \(LOGINDISABLED\): use --starttls or --tls",
    )


# --------------------------------------------------------------------------- capabilities


def test_logindisabled_in_clear(clear: Instance) -> None:
    result = check("-H", clear.host, "-p", str(clear.plain_port), "--require-logindisabled", "-v")
    expect(
        result,
        0,
        rf"IMAP OK - {target(clear.host, clear.plain_port)} answered in {NUM}s, {LOGOUT} \| "
        + PLAIN_TIMES,
    )
    caps = next(x for x in result.lines if x.startswith("capabilities: "))
    assert "LOGINDISABLED" in caps.split() and "AUTH=PLAIN" not in caps.split(), caps


def test_logindisabled_missing_in_clear_warns(quota: Instance) -> None:
    result = check("-H", "localhost", "-p", str(quota.plain_port), "--require-logindisabled")
    expect(
        result,
        1,
        rf"IMAP WARNING - {target('localhost', quota.plain_port)}: LOGINDISABLED not advertised "
        rf"in clear: passwords could cross the network in clear \| {PLAIN_TIMES}",
    )


def test_logindisabled_before_starttls_and_not_after(bed: Dovecot, clear: Instance) -> None:
    result = check(*starttls(bed, clear, "--require-logindisabled", "-v"))
    expect(result, 0, tls_head(clear, clear.host, clear.plain_port) + rf", {LOGOUT}{PERFDATA}")
    before = next(x for x in result.lines if x.startswith("capabilities before STARTTLS: "))
    after = next(x for x in result.lines if x.startswith("capabilities: "))
    assert {"STARTTLS", "LOGINDISABLED"} <= set(before.split()), before
    assert "LOGINDISABLED" not in after.split() and "AUTH=PLAIN" in after.split(), after


def test_logindisabled_missing_before_starttls_warns(bed: Dovecot, quota: Instance) -> None:
    result = check(
        *starttls(bed, quota, "--require-logindisabled", "--capability-state", "critical")
    )
    expect(
        result,
        2,
        rf"IMAP CRITICAL - {target('localhost', quota.plain_port)}: LOGINDISABLED not advertised "
        rf"before STARTTLS: passwords could cross the network in clear \| {CERT_PERF}"
        rf"{PLAIN_TIMES} time_tls={NUM}s;;;0",
    )


def test_required_and_forbidden_capabilities(bed: Dovecot, quota: Instance) -> None:
    where = target("localhost", quota.tls_port)
    # QUOTA comes with login: required and there once logged in, missing without login.
    logged_in = check(*tls(bed, quota, "-u", dc.USER, "--require-capability", "quota"))
    expect(logged_in, 0, rf"{tls_head(quota)}, logged in as probe, .*")
    anonymous = check(
        *tls(bed, quota, "--require-capability", "QUOTA", "--forbid-capability", "IDLE")
    )
    expect(
        anonymous,
        1,
        rf"IMAP WARNING - {where}: capability QUOTA not advertised; forbidden capability IDLE "
        rf"advertised \| {CERT_PERF}{PLAIN_TIMES} time_tls={NUM}s;;;0",
    )
    state = check(*tls(bed, quota, "--forbid-capability", "IDLE", "--capability-state", "unknown"))
    expect(state, 3, rf"IMAP UNKNOWN - {where}: forbidden capability IDLE advertised \| .*")


# --------------------------------------------------------------------------- every address


@pytest.fixture
def dual_localhost(tmp_path: Path) -> dict[str, str]:
    """localhost as ::1 then 127.0.0.1 (glibc's order), whatever /etc/hosts says here."""
    if not dc.ipv6_loopback():
        pytest.skip("no IPv6 loopback on this machine")
    return dc.stand_in_resolver(tmp_path / "resolver", {"localhost": ["::1", "127.0.0.1"]})


def _refused_on_v6(port: int) -> None:
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", port))  # nothing listens there


def test_all_addresses_one_listening(v4only: Instance, dual_localhost: dict[str, str]) -> None:
    port = v4only.plain_port or 0
    _refused_on_v6(port)
    args = ("-H", "localhost", "-p", str(port))
    every = check(*args, "--all-addresses", env=dual_localhost)
    expect(
        every,
        2,
        rf"IMAP CRITICAL - localhost:{port}: OK on 127\.0\.0\.1, CRITICAL on ::1: connection "
        rf"refused \| {times('v4_1')}",
    )
    first = check(*args, env=dual_localhost)
    expect(first, 0, rf"IMAP OK - localhost:{port} answered in {NUM}s, {LOGOUT} \| {PLAIN_TIMES}")


def test_all_addresses_both_listening_with_login(
    bed: Dovecot, quota: Instance, dual_localhost: dict[str, str]
) -> None:
    # Dovecot's "count" quota is computed at the first login; two concurrent first logins
    # race it (each may see a partial count), so one plain login settles it first.
    assert check(*tls(bed, quota, "-u", dc.USER)).rc == 0
    result = check(*tls(bed, quota, "-u", dc.USER, "--all-addresses", "-v"), env=dual_localhost)
    expires = time.strftime("%Y-%m-%d", time.gmtime(quota.not_after))
    expect(
        result,
        0,
        rf"IMAP OK - localhost:{quota.tls_port} OK on 127\.0\.0\.1, ::1, TLSv1\.3, certificate "
        rf"'localhost' expires {expires}, logged in as probe, 'INBOX' {dc.MESSAGES} messages "
        rf"\({dc.NEW_MESSAGES} unseen\), quota {re.escape(QUOTA_PERCENT)}% used, {LOGOUT}{PERFDATA}",
    )
    assert f"address v4_1: 127.0.0.1:{quota.tls_port}" in result.lines
    assert f"address v6_1: [::1]:{quota.tls_port}" in result.lines
    # Every address is judged in full, so each has its own certificate, mailbox and quota data.
    both = ("v4_1", "v6_1")
    expected = " ".join(
        [f"cert_days_{a}=\\d+;21:;7:" for a in both]
        + [f"chain_days_{a}=\\d+;21:;7:" for a in both if not LEAF_ONLY]
        + [f"messages_{a}={dc.MESSAGES};;;0" for a in both]
        + [
            quota_perf(quota, f"_{both[0]}").split(" ")[0],
            quota_perf(quota, f"_{both[1]}").split(" ")[0],
        ]
        + [
            quota_perf(quota, f"_{both[0]}").split(" ")[1],
            quota_perf(quota, f"_{both[1]}").split(" ")[1],
        ]
        + [f"recent_{a}=\\d+;;;0" for a in both]
        + [times(*both, steps=("connect", "greeting", "login", "logout", "mailbox", "tls"))]
        + [f"unseen_{a}={dc.NEW_MESSAGES};;;0" for a in both]
    )
    assert re.fullmatch(rf"\| {expected}", result.perfdata), result.first_line


@pytest.mark.skipif(dc.dual_stack_prefix() is None, reason=dc.NO_DUAL_STACK)
def test_all_addresses_with_the_real_resolver(v4only: Instance, quota: Instance) -> None:
    port = v4only.plain_port or 0
    prefix = dc.dual_stack_prefix() or ()
    every = check("-H", "localhost", "-p", str(port), "--all-addresses", prefix=prefix)
    expect(
        every,
        2,
        rf"IMAP CRITICAL - localhost:{port}: OK on 127\.0\.0\.1, CRITICAL on ::1: connection "
        rf"refused \| {times('v4_1')}",
    )
    both = check("-H", "localhost", "-p", str(quota.plain_port), "--all-addresses", prefix=prefix)
    expect(
        both,
        0,
        rf"IMAP OK - localhost:{quota.plain_port} OK on 127\.0\.0\.1, ::1, {LOGOUT} \| "
        + times("v4_1", "v6_1"),
    )
