"""Login, mailboxes, quota, capability policy and --all-addresses against scripted servers.

The scripts check every byte check_imap sends (exact commands, quoting, literals) and
answer what no real server shows on demand: LOGINDISABLED after TLS, no QUOTA, NO on
login, literals in responses. Every test asserts the exit code, the exact first line
(numbers as ``\\d+\\.\\d+``), an empty stderr and the elapsed time.
"""

from __future__ import annotations

import base64
import re
import socket
import ssl
from pathlib import Path
from typing import Callable

import pytest

from support import dovecot as dc
from support.assertions import PERFDATA, assert_redacted, chain_perf, expect, times
from support.fakeserver import Conn, FakeServer, Script, serve, server_context
from support.pki import make_ca, make_leaf, write_ca, write_server_files
from support.processes import Run, run

NUM = r"\d+\.\d+"
USER = "probe"
PASSWORD = "s3cret-Pa55"
STATUS_ITEMS = "(MESSAGES RECENT UNSEEN)"
LOGOUT = r"logout: BYE \+ tagged OK"
TIMES = (
    rf"time={NUM}s;;;0;{NUM} (?:time_capability={NUM}s;;;0 )?time_connect={NUM}s;;;0 time_greeting={NUM}s;;;0 "
    rf"time_login={NUM}s;;;0 time_logout={NUM}s;;;0 time_mailbox={NUM}s;;;0"
)


# --------------------------------------------------------------------------- helpers


def check(port: int, *args: str, password: str | None = PASSWORD, **env: str) -> Run:
    """check_imap on 127.0.0.1:port; the password comes from the environment only."""
    full_env = {"CHECK_IMAP_PASSWORD": password or "", **env}
    return run("check_imap", "-H", "127.0.0.1", "-p", str(port), *args, env=full_env)


def login_args(*more: str) -> tuple[str, ...]:
    return ("-u", USER, "--allow-cleartext-login", *more)


def target(port: int, host: str = "127.0.0.1") -> str:
    return re.escape(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")


def plain_token(user: str = USER, password: str = PASSWORD) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def greeting(caps: str) -> bytes:
    return f"* OK [CAPABILITY {caps}] fake ready\r\n".encode()


def ok(conn: Conn, tag: str, untagged: str = "", code: str = "") -> None:
    code = f"[{code}] " if code else ""
    conn.send(f"{untagged}{tag} OK {code}done\r\n".encode())


def mailbox(
    conn: Conn,
    wire_name: str,
    counts: tuple[int, int, int],
    *,
    status_name: bytes | None = None,
) -> None:
    """STATUS then EXAMINE of one mailbox; ``status_name`` as the server echoes it."""
    messages, recent, unseen = counts
    tag = conn.expect(f"STATUS {wire_name} {STATUS_ITEMS}")
    echoed = status_name if status_name is not None else wire_name.encode()
    conn.send(
        b"* STATUS "
        + echoed
        + f" (MESSAGES {messages} RECENT {recent} UNSEEN {unseen})\r\n"
        f"{tag} OK Status completed\r\n".encode()
    )
    tag = conn.expect(f"EXAMINE {wire_name}")
    conn.send(
        f"* FLAGS (\\Seen)\r\n* {messages} EXISTS\r\n* {recent} RECENT\r\n"
        f"{tag} OK [READ-ONLY] Examine completed\r\n".encode()
    )


def quota_reply(conn: Conn, wire_name: str, root: bytes, resources: bytes) -> None:
    tag = conn.expect(f"GETQUOTAROOT {wire_name}")
    conn.send(
        b"* QUOTAROOT " + wire_name.encode() + b" " + root + b"\r\n"
        b"* QUOTA " + root + b" (" + resources + b")\r\n" + f"{tag} OK done\r\n".encode()
    )


def sasl_ir_login(conn: Conn, after_caps: str = "IMAP4rev1 QUOTA") -> None:
    tag = conn.expect(f"AUTHENTICATE PLAIN {plain_token()}")
    ok(conn, tag, code=f"CAPABILITY {after_caps}")


def mail_server(
    caps: str,
    login: Callable[[Conn], None],
    boxes: tuple[tuple[str, tuple[int, int, int]], ...] = (('"INBOX"', (3, 0, 1)),),
    quota: bytes | None = b"STORAGE 256 1024 MESSAGE 3 12",
) -> Script:
    """Greeting, ``login``, STATUS + EXAMINE (+ GETQUOTAROOT) per box, LOGOUT."""

    def script(conn: Conn) -> None:
        conn.send(greeting(caps))
        login(conn)
        for wire_name, counts in boxes:
            mailbox(conn, wire_name, counts)
            if quota is not None:
                quota_reply(conn, wire_name, b'""', quota)
        conn.logout()

    return script


OK_INBOX = (
    r"'INBOX' 3 messages \(1 unseen\), quota 25\.0% used, " + LOGOUT + r" \| "
    r"messages=3;;;0 quota_messages=3;;;0;12 quota_storage=262144B;;;0;1048576 "
    r"recent=0;;;0 " + TIMES + r" unseen=1;;;0"
)


def ok_login(port: int, tail: str = OK_INBOX) -> str:
    return rf"IMAP OK - {target(port)} answered in {NUM}s, logged in as probe, {tail}"


# --------------------------------------------------------------------------- PKI (STARTTLS)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, str]:
    d: Path = tmp_path_factory.mktemp("pki")
    ca = make_ca()
    crt, key = write_server_files(d, "good", make_leaf(ca), (ca,))
    return server_context(str(crt), str(key)), str(write_ca(d, ca))


# --------------------------------------------------------------------------- login paths


def test_authenticate_plain_with_sasl_ir_quota_and_redaction() -> None:
    with serve(mail_server("IMAP4rev1 SASL-IR AUTH=PLAIN", sasl_ir_login)) as srv:
        result = check(srv.port, *login_args("--quota-warning", "80", "-vvv"))
    expect(result, 0, ok_login(srv.port, OK_INBOX))
    assert "login: probe via AUTHENTICATE PLAIN" in result.lines
    assert "C: a1 AUTHENTICATE PLAIN [credentials redacted]" in result.lines
    assert (
        "mailbox 'INBOX': 3 messages, 0 recent, 1 unseen, EXAMINE saw 3; "
        "quota root '': STORAGE 256/1024, MESSAGE 3/12"
    ) in result.lines
    assert_redacted(result, PASSWORD, plain_token())


def test_authenticate_plain_without_sasl_ir_waits_for_the_continuation() -> None:
    def login(conn: Conn) -> None:
        tag = conn.expect("AUTHENTICATE PLAIN")
        conn.send(b"+ \r\n")
        token = conn.readline().decode()
        assert token == plain_token(), token
        ok(conn, tag, code="CAPABILITY IMAP4rev1 QUOTA")

    with serve(mail_server("IMAP4rev1 AUTH=PLAIN", login)) as srv:
        result = check(srv.port, *login_args("-vvv"))
    expect(result, 0, ok_login(srv.port, OK_INBOX))
    transcript = result.lines[result.lines.index("transcript:") + 1 :]
    assert transcript[1:4] == [
        "C: a1 AUTHENTICATE PLAIN",
        "S: +",  # sanitized: trailing space dropped
        "C: [credentials redacted]",
    ], transcript
    assert_redacted(result, PASSWORD, plain_token())


# A password needing escapes in a quoted string, and one that needs a literal.
QUOTED_PASSWORD = 'pa"ss\\word'
LITERAL_PASSWORD = "pässwörd-ü"


def test_login_command_quotes_the_password_and_redacts_it() -> None:
    wire = '"probe" "pa\\"ss\\\\word"'

    def login(conn: Conn) -> None:
        ok(conn, conn.expect(f"LOGIN {wire}"), code="CAPABILITY IMAP4rev1 QUOTA")

    with serve(mail_server("IMAP4rev1", login)) as srv:
        result = check(srv.port, *login_args("-vvv"), password=QUOTED_PASSWORD)
    expect(result, 0, ok_login(srv.port, OK_INBOX))
    assert "login: probe via LOGIN" in result.lines
    assert 'C: a1 LOGIN "probe" [password redacted]' in result.lines
    assert_redacted(result, QUOTED_PASSWORD, 'pa\\"ss\\\\word', "pa/")


@pytest.mark.parametrize("literal_plus", [False, True], ids=["synchronizing", "LITERAL+"])
def test_login_command_sends_a_non_ascii_password_as_a_literal(literal_plus: bool) -> None:
    raw = LITERAL_PASSWORD.encode()

    def login(conn: Conn) -> None:
        if literal_plus:
            tag = conn.expect(f'LOGIN "probe" {{{len(raw)}+}}')
        else:
            tag = conn.expect(f'LOGIN "probe" {{{len(raw)}}}')
            conn.send(b"+ Ready for literal data\r\n")
        assert conn.readline() == raw
        ok(conn, tag, code="CAPABILITY IMAP4rev1 QUOTA")

    caps = "IMAP4rev1 LITERAL+" if literal_plus else "IMAP4rev1"
    with serve(mail_server(caps, login)) as srv:
        result = check(srv.port, *login_args("-vvv"), password=LITERAL_PASSWORD)
    expect(result, 0, ok_login(srv.port, OK_INBOX))
    assert_redacted(result, LITERAL_PASSWORD, "p?ssw", "p\\xe4ssw")


@pytest.mark.parametrize(
    ("caps", "command"),
    [
        ("IMAP4rev1 SASL-IR AUTH=PLAIN", f"AUTHENTICATE PLAIN {plain_token()}"),
        ("IMAP4rev1", f'LOGIN "probe" "{PASSWORD}"'),
    ],
    ids=["AUTHENTICATE", "LOGIN"],
)
def test_no_on_login_is_critical_with_the_server_text(caps: str, command: str) -> None:
    def script(conn: Conn) -> None:
        conn.send(greeting(caps))
        tag = conn.expect(command)
        conn.send(f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials (0.002 secs)\r\n".encode())
        conn.wait_client_close()

    with serve(script) as srv:
        result = check(srv.port, *login_args("-vvv"))
    expect(
        result,
        2,
        rf"IMAP CRITICAL - {target(srv.port)}: login failed: NO \[AUTHENTICATIONFAILED\] "
        r"Invalid credentials \(0\.002 secs\)",
    )
    assert_redacted(result, PASSWORD, plain_token())


@pytest.mark.parametrize(
    ("caps", "password"),
    [("IMAP4rev1", QUOTED_PASSWORD), ("IMAP4rev1 SASL-IR AUTH=PLAIN", PASSWORD)],
    ids=["LOGIN", "AUTHENTICATE"],
)
def test_a_server_echoing_the_command_cannot_leak_the_password(caps: str, password: str) -> None:
    def script(conn: Conn) -> None:
        conn.send(greeting(caps))
        line = conn.readline().decode()
        tag, _, command = line.partition(" ")
        conn.send(f"* BAD echo: {line}\r\n{tag} NO Rejected {command}\r\n".encode())
        conn.wait_client_close()

    with serve(script) as srv:
        result = check(srv.port, *login_args("-vvv"), password=password)
    shown = 'LOGIN "probe" [redacted]' if caps == "IMAP4rev1" else "AUTHENTICATE PLAIN [redacted]"
    expect(
        result,
        2,
        rf"IMAP CRITICAL - {target(srv.port)}: login failed: NO Rejected {re.escape(shown)}",
    )
    assert f"S: * BAD echo: a1 {shown}" in result.lines
    assert_redacted(result, password, plain_token(password=password), 'pa\\"ss')


def test_logindisabled_without_auth_plain_sends_no_credentials() -> None:
    def script(conn: Conn) -> None:
        conn.send(greeting("IMAP4rev1 STARTTLS LOGINDISABLED"))
        conn.wait_client_close()  # any command here would be a script error below

    with serve(script) as srv:
        result = check(srv.port, *login_args())
    expect(  # --allow-cleartext-login against a server that rightly refuses: UNKNOWN
        result,
        3,
        rf"IMAP UNKNOWN - {target(srv.port)}: the server refuses login in clear "
        r"\(LOGINDISABLED\): use --starttls or --tls",
    )


def test_capabilities_are_asked_after_login_when_the_ok_has_none() -> None:
    def login(conn: Conn) -> None:
        ok(conn, conn.expect(f"AUTHENTICATE PLAIN {plain_token()}"))
        tag = conn.expect("CAPABILITY")
        ok(conn, tag, untagged="* CAPABILITY IMAP4rev1 QUOTA\r\n")

    with serve(mail_server("IMAP4rev1 SASL-IR AUTH=PLAIN", login)) as srv:
        result = check(srv.port, *login_args("--quota-critical", "20"))
    expect(
        result,
        2,
        rf"IMAP CRITICAL - {target(srv.port)}: quota of 'INBOX' 25\.0% used \(storage\) \| "
        + OK_INBOX.split(r" \| ")[1],
    )


# --------------------------------------------------------------------------- quota


def test_quota_warning_without_quota_capability_is_unknown() -> None:
    login = sasl_ir_login  # whose OK lists no QUOTA: the script expects no GETQUOTAROOT

    def no_quota_login(conn: Conn) -> None:
        login(conn, after_caps="IMAP4rev1 IDLE")

    script = mail_server("IMAP4rev1 SASL-IR AUTH=PLAIN", no_quota_login, quota=None)
    with serve(script) as srv:
        result = check(srv.port, *login_args("--quota-warning", "80"))
    expect(
        result,
        3,
        rf"IMAP UNKNOWN - {target(srv.port)}: cannot check quota: the server does not advertise "
        rf"QUOTA \| messages=3;;;0 recent=0;;;0 {TIMES} unseen=1;;;0",
    )


def test_no_quota_capability_and_no_threshold_is_ok_without_quota_perfdata() -> None:
    def login(conn: Conn) -> None:
        sasl_ir_login(conn, after_caps="IMAP4rev1 IDLE")

    script = mail_server("IMAP4rev1 SASL-IR AUTH=PLAIN", login, quota=None)
    with serve(script) as srv:
        result = check(srv.port, *login_args())
    expect(
        result,
        0,
        ok_login(
            srv.port,
            rf"'INBOX' 3 messages \(1 unseen\), {LOGOUT} \| messages=3;;;0 recent=0;;;0 "
            rf"{TIMES} unseen=1;;;0",
        ),
    )


@pytest.mark.parametrize(
    ("args", "rc", "state", "text"),
    [
        (("--quota-warning", "20"), 1, "WARNING", r"quota of 'INBOX' 25\.0% used \(storage\)"),
        (("--quota-warning", "30", "--quota-critical", "90"), 0, "OK", ""),
        (("--quota-critical", "24.9"), 2, "CRITICAL", r"quota of 'INBOX' 25\.0% used \(storage\)"),
    ],
)
def test_quota_thresholds_in_percent(args: tuple[str, ...], rc: int, state: str, text: str) -> None:
    with serve(mail_server("IMAP4rev1 SASL-IR AUTH=PLAIN", sasl_ir_login)) as srv:
        result = check(srv.port, *login_args(*args))
    if rc == 0:
        expect(result, 0, ok_login(srv.port))
    else:
        expect(
            result,
            rc,
            rf"IMAP {state} - {target(srv.port)}: {text} \| " + OK_INBOX.split(r" \| ")[1],
        )


def test_quota_without_limits_cannot_be_judged() -> None:
    script = mail_server("IMAP4rev1 SASL-IR AUTH=PLAIN", sasl_ir_login, quota=b"")
    with serve(script) as srv:
        result = check(srv.port, *login_args("--quota-warning", "80"))
    expect(
        result,
        3,
        rf"IMAP UNKNOWN - {target(srv.port)}: no quota limit on 'INBOX' \| messages=3;;;0 "
        rf"recent=0;;;0 {TIMES} unseen=1;;;0",
    )


# --------------------------------------------------------------------------- mailboxes


def test_mailbox_names_quoted_modified_utf7_and_literals_in_replies() -> None:
    """Quoting (space, quote, backslash), modified UTF-7 (ü, &), and a server that
    answers with the mailbox name and the quota root as literals."""
    names = ['Sent "Items"\\old', "Entwürfe & Co"]
    wire = ['"Sent \\"Items\\"\\\\old"', '"Entw&APw-rfe &- Co"']

    def script(conn: Conn) -> None:
        conn.send(greeting("IMAP4rev1 SASL-IR AUTH=PLAIN"))
        sasl_ir_login(conn)
        mailbox(conn, wire[0], (2, 0, 2), status_name=b'"Sent \\"Items\\"\\\\old"')
        quota_reply(conn, wire[0], b"{4}\r\nroot", b"STORAGE 512 1024")
        mailbox(conn, wire[1], (0, 0, 0), status_name=b"{17}\r\nEntw&APw-rfe &- Co")
        quota_reply(conn, wire[1], b"{4}\r\nroot", b"STORAGE 512 1024")
        conn.logout()

    with serve(script) as srv:
        result = check(srv.port, *login_args("--mailbox", names[0], "--mailbox", names[1], "-v"))
    expect(
        result,
        0,
        ok_login(
            srv.port,
            r"'Sent \"Items\"\\old' 2 messages \(2 unseen\), quota 50\.0% used, "
            rf"'Entwürfe & Co' 0 messages \(0 unseen\), {LOGOUT}",  # one root: said once
        )
        + PERFDATA,
    )
    assert (
        "mailbox 'Entwürfe & Co': 0 messages, 0 recent, 0 unseen, EXAMINE saw 0; "
        "quota root 'root': STORAGE 512/1024"
    ) in result.lines
    perf = result.perfdata
    assert re.fullmatch(
        r"\| messages_Entw_rfe___Co=0;;;0 messages_Sent__Items__old=2;;;0 "
        r"quota_storage_Sent__Items__old=524288B;;;0;1048576 "  # one quota root: once
        rf"recent_Entw_rfe___Co=0;;;0 recent_Sent__Items__old=0;;;0 {TIMES} "
        r"unseen_Entw_rfe___Co=0;;;0 unseen_Sent__Items__old=2;;;0",
        perf,
    ), perf


def test_control_characters_in_a_mailbox_name_are_modified_utf7() -> None:
    """Modified UTF-7 encodes a line break too, so a name never needs a literal."""

    def script(conn: Conn) -> None:
        conn.send(greeting("IMAP4rev1 SASL-IR AUTH=PLAIN"))
        sasl_ir_login(conn, after_caps="IMAP4rev1")
        tag = conn.expect(f'STATUS "a&AAo-b" {STATUS_ITEMS}')
        conn.send(f"{tag} NO [NONEXISTENT] no such mailbox\r\n".encode())
        tag = conn.expect('EXAMINE "a&AAo-b"')
        conn.send(f"{tag} NO [NONEXISTENT] no such mailbox\r\n".encode())
        conn.logout()

    with serve(script) as srv:
        result = check(srv.port, *login_args("--mailbox", "a\nb"))
    expect(
        result,
        2,
        rf"IMAP CRITICAL - {target(srv.port)}: mailbox 'a\?b': STATUS NO \[NONEXISTENT\] no such mailbox \| {TIMES}",
    )


@pytest.mark.parametrize(("queued", "rc"), [(0, 0), (2, 2)])
def test_queue_mailbox_must_stay_empty(queued: int, rc: int) -> None:
    def login(conn: Conn) -> None:
        sasl_ir_login(conn, after_caps="IMAP4rev1")

    script = mail_server(
        "IMAP4rev1 SASL-IR AUTH=PLAIN",
        login,
        boxes=(('"Queue"', (queued, queued, queued)),),
        quota=None,
    )
    with serve(script) as srv:
        result = check(srv.port, *login_args("--mailbox", "Queue", "--messages-critical", "0"))
    perf = rf"messages={queued};;0;0 recent={queued};;;0 {TIMES} unseen={queued};;;0"
    if rc == 0:
        line = ok_login(srv.port, rf"'Queue' 0 messages \(0 unseen\), {LOGOUT} \| {perf}")
    else:
        line = rf"IMAP CRITICAL - {target(srv.port)}: mailbox 'Queue' has 2 messages \(outside range 0:0\) \| {perf}"
    expect(result, rc, line)


def test_examine_refused_is_critical() -> None:
    def script(conn: Conn) -> None:
        conn.send(greeting("IMAP4rev1 SASL-IR AUTH=PLAIN"))
        sasl_ir_login(conn, after_caps="IMAP4rev1")
        tag = conn.expect(f'STATUS "Archive" {STATUS_ITEMS}')
        conn.send(f"* STATUS Archive (MESSAGES 1 RECENT 0 UNSEEN 0)\r\n{tag} OK\r\n".encode())
        tag = conn.expect('EXAMINE "Archive"')
        conn.send(f"{tag} NO [SERVERBUG] Internal error\r\n".encode())
        conn.logout()

    with serve(script) as srv:
        result = check(srv.port, *login_args("--mailbox", "Archive"))
    expect(
        result,
        2,
        rf"IMAP CRITICAL - {target(srv.port)}: mailbox 'Archive': EXAMINE NO \[SERVERBUG\] Internal error"
        rf" \| {TIMES}",
    )


def test_critical_is_not_hidden_behind_unknown() -> None:
    """A refused mailbox (CRITICAL) and an unanswerable quota threshold (UNKNOWN): CRITICAL.

    nagiosplugin alone would rank UNKNOWN (exit 3) above CRITICAL (exit 2)."""

    def script(conn: Conn) -> None:
        conn.send(greeting("IMAP4rev1 SASL-IR AUTH=PLAIN"))
        sasl_ir_login(conn, after_caps="IMAP4rev1")
        tag = conn.expect(f'STATUS "Archive" {STATUS_ITEMS}')
        conn.send(f"{tag} NO [NONEXISTENT] Mailbox doesn't exist: Archive\r\n".encode())
        tag = conn.expect('EXAMINE "Archive"')
        conn.send(f"{tag} NO [NONEXISTENT] Mailbox doesn't exist: Archive\r\n".encode())
        conn.logout()

    with serve(script) as srv:
        result = check(srv.port, *login_args("--mailbox", "Archive", "--quota-warning", "80"))
    expect(
        result,
        2,
        rf"IMAP CRITICAL - {target(srv.port)}: mailbox 'Archive': STATUS NO \[NONEXISTENT\] "
        r"Mailbox doesn't exist: Archive; cannot check quota: the server does not advertise QUOTA"
        rf" \| {TIMES}",
    )


# --------------------------------------------------------------------------- password sources


def test_password_file_first_line_is_used(tmp_path: Path) -> None:
    secret = tmp_path / "imap.pw"
    secret.write_text(f"{PASSWORD}\nsecond line ignored\n")
    secret.chmod(0o600)  # a password file must be private
    with serve(mail_server("IMAP4rev1 SASL-IR AUTH=PLAIN", sasl_ir_login)) as srv:
        # The file wins over a (wrong) environment variable.
        result = check(
            srv.port, *login_args("--password-file", str(secret), "-vvv"), password="wrong"
        )
    expect(result, 0, ok_login(srv.port, OK_INBOX))
    assert_redacted(result, PASSWORD, plain_token(), "second line")


@pytest.mark.parametrize("case", ["missing", "empty", "blank first line"])
def test_unusable_password_file_is_unknown_before_connecting(tmp_path: Path, case: str) -> None:
    secret = tmp_path / "imap.pw"
    if case == "empty":
        secret.write_text("")
        secret.chmod(0o600)  # a password file must be private
    elif case == "blank first line":
        secret.write_text(f"\n{PASSWORD}\n")
        secret.chmod(0o600)  # a password file must be private
    reason = {
        "missing": "No such file or directory",
        "empty": "the first line is empty",
        "blank first line": "the first line is empty",
    }[case]
    with serve(lambda c: c.send(b"unexpected\r\n")) as srv:
        result = check(srv.port, *login_args("--password-file", str(secret)))
        assert srv.connections == 0
    expect(
        result,
        3,
        rf"IMAP UNKNOWN - --password-file {re.escape(str(secret))}: {reason} "
        r"\(see check_imap --help\)",
    )
    assert result.lines == [result.first_line]


def test_no_password_anywhere_is_unknown() -> None:
    result = check(1, *login_args(), password=None)
    expect(
        result,
        3,
        r"IMAP UNKNOWN - --user needs --password-file or \$CHECK_IMAP_PASSWORD "
        r"\(see check_imap --help\)",
    )
    assert result.lines == [result.first_line]


@pytest.mark.parametrize("option", ["--password", "--pass", "-P", "--password-file-"])
def test_there_is_no_password_option(option: str) -> None:
    result = check(1, *login_args(option, "x"), password=None)
    expect(
        result,
        3,
        rf"IMAP UNKNOWN - unrecognized arguments: {re.escape(option)} x "
        r"\(see check_imap --help\)",
    )


def test_cleartext_login_is_refused_without_the_option() -> None:
    with serve(lambda c: c.send(greeting("IMAP4rev1 AUTH=PLAIN"))) as srv:
        result = check(srv.port, "-u", USER)
        assert srv.connections == 0
    expect(
        result,
        3,
        r"IMAP UNKNOWN - refusing to send credentials in clear: use --tls or --starttls "
        r"\(or --allow-cleartext-login\) \(see check_imap --help\)",
    )
    assert result.lines == [result.first_line]


# --------------------------------------------------------------------------- capabilities


def _caps_server(caps: str) -> Script:
    def script(conn: Conn) -> None:
        conn.send(greeting(caps))
        conn.logout()

    return script


PLAIN_PERF = rf"time={NUM}s;;;0;{NUM} (?:time_capability={NUM}s;;;0 )?time_connect={NUM}s;;;0 time_greeting={NUM}s;;;0 time_logout={NUM}s;;;0"


@pytest.mark.parametrize(
    ("caps", "args", "rc", "text"),
    [
        ("IMAP4rev1 STARTTLS LOGINDISABLED", ("--require-logindisabled",), 0, ""),
        (
            "IMAP4rev1 STARTTLS AUTH=PLAIN",
            ("--require-logindisabled",),
            1,
            "WARNING - {t}: LOGINDISABLED not advertised in clear: passwords could cross "
            "the network in clear",
        ),
        (
            "IMAP4rev1 AUTH=PLAIN",
            ("--require-logindisabled", "--capability-state", "critical"),
            2,
            "CRITICAL - {t}: LOGINDISABLED not advertised in clear: passwords could cross "
            "the network in clear",
        ),
        (
            "IMAP4rev1 IDLE AUTH=PLAIN",
            ("--require-capability", "idle", "--require-capability", "QUOTA"),
            1,
            "WARNING - {t}: capability QUOTA not advertised",
        ),
        (
            "IMAP4rev1 IDLE AUTH=PLAIN",
            ("--forbid-capability", "AUTH=PLAIN", "--capability-state", "unknown"),
            3,
            "UNKNOWN - {t}: forbidden capability AUTH=PLAIN advertised",
        ),
        (
            "IMAP4rev1 IDLE AUTH=PLAIN",
            ("--forbid-capability", "AUTH=PLAIN", "--capability-state", "ok"),
            0,
            "",
        ),
    ],
)
def test_capability_policy_in_clear(caps: str, args: tuple[str, ...], rc: int, text: str) -> None:
    with serve(_caps_server(caps)) as srv:
        result = check(srv.port, *args)
    if rc == 0:
        line = rf"IMAP OK - {target(srv.port)} answered in {NUM}s, {LOGOUT} \| {PLAIN_PERF}"
    else:
        line = "IMAP " + re.escape(text.format(t=f"127.0.0.1:{srv.port}")) + rf" \| {PLAIN_PERF}"
    expect(result, rc, line)


def _starttls_server(ctx: ssl.SSLContext, before: str, after: str) -> Script:
    def script(conn: Conn) -> None:
        conn.send(greeting(before))
        tag = conn.expect("STARTTLS")
        conn.send(f"{tag} OK Begin TLS\r\n".encode())
        conn.start_tls(ctx)
        tag = conn.expect("CAPABILITY")
        ok(conn, tag, untagged=f"* CAPABILITY {after}\r\n")
        conn.logout()

    return script


STARTTLS_PERF = (
    r"cert_days=\d+;21:;7: "
    + chain_perf(r"chain_days=\d+;21:;7: ")
    + rf"{PLAIN_PERF} time_tls={NUM}s;;;0"
)


@pytest.mark.parametrize(
    ("before", "after", "rc", "text"),
    [
        ("IMAP4rev1 STARTTLS LOGINDISABLED", "IMAP4rev1 AUTH=PLAIN", 0, ""),
        (
            "IMAP4rev1 STARTTLS AUTH=PLAIN",
            "IMAP4rev1 AUTH=PLAIN",
            1,
            "LOGINDISABLED not advertised before STARTTLS: passwords could cross the network "
            "in clear",
        ),
        (
            "IMAP4rev1 STARTTLS LOGINDISABLED",
            "IMAP4rev1 LOGINDISABLED",
            1,
            "LOGINDISABLED advertised after TLS: nobody can log in",
        ),
    ],
)
def test_require_logindisabled_with_starttls(
    tls: tuple[ssl.SSLContext, str], before: str, after: str, rc: int, text: str
) -> None:
    ctx, ca = tls
    with serve(_starttls_server(ctx, before, after)) as srv:
        result = run(
            "check_imap",
            *("-H", "localhost", "-p", str(srv.port), "--starttls", "--ca-file", ca),
            *("--require-logindisabled", "-v"),
        )
    if rc == 0:
        line = (
            rf"IMAP OK - {target(srv.port, 'localhost')} answered in {NUM}s, TLSv1\.3, "
            rf"certificate 'localhost' expires \d{{4}}-\d\d-\d\d, {LOGOUT}"
        )
    else:
        line = rf"IMAP WARNING - {target(srv.port, 'localhost')}: {re.escape(text)}"
    expect(result, rc, line + PERFDATA)
    assert f"capabilities before STARTTLS: {before.upper()}" in result.lines
    assert f"capabilities: {after.upper()}" in result.lines
    assert re.fullmatch(rf"\| {STARTTLS_PERF}", result.perfdata), result.first_line


def test_capability_policy_sees_capabilities_added_by_login() -> None:
    """QUOTA only after login (as Dovecot does): required, it is there; NOTIFY forbidden."""
    with serve(mail_server("IMAP4rev1 SASL-IR AUTH=PLAIN", sasl_ir_login)) as srv:
        result = check(srv.port, *login_args("--require-capability", "QUOTA"))
    expect(result, 0, ok_login(srv.port))

    def login(conn: Conn) -> None:
        sasl_ir_login(conn, after_caps="IMAP4rev1 QUOTA NOTIFY")

    with serve(mail_server("IMAP4rev1 SASL-IR AUTH=PLAIN", login)) as srv:
        result = check(srv.port, *login_args("--forbid-capability", "NOTIFY"))
    expect(
        result,
        1,
        rf"IMAP WARNING - {target(srv.port)}: forbidden capability NOTIFY advertised \| "
        + OK_INBOX.split(r" \| ")[1],
    )


# --------------------------------------------------------------------------- every address


class FakeServerAt(FakeServer):
    """A FakeServer on a given address and port (e.g. ::1 on the port of another)."""

    def __init__(self, script: Script, host: str, port: int) -> None:
        super().__init__(script)
        self.listener.close()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.create_server((host, port), family=family)
        self.port = port


@pytest.fixture
def dual_localhost(tmp_path: Path) -> dict[str, str]:
    """Environment in which localhost is ::1 then 127.0.0.1, as glibc orders them."""
    if not dc.ipv6_loopback():
        pytest.skip("no IPv6 loopback on this machine")
    return dc.stand_in_resolver(tmp_path / "resolver", {"localhost": ["::1", "127.0.0.1"]})


def _free_on_v6(port: int) -> None:
    """Nothing listens on [::1]:port (else 'connection refused' could not be expected)."""
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", port))


def _all_addresses_run(
    port: int, env: dict[str, str], *args: str, prefix: tuple[str, ...] = ()
) -> Run:
    return run("check_imap", "-H", "localhost", "-p", str(port), *args, env=env, prefix=prefix)


def test_all_addresses_names_the_refusing_address(dual_localhost: dict[str, str]) -> None:
    with serve(_caps_server("IMAP4rev1")) as srv:
        _free_on_v6(srv.port)
        every = _all_addresses_run(srv.port, dual_localhost, "--all-addresses", "-v")
        first = _all_addresses_run(srv.port, dual_localhost)
    expect(
        every,
        2,
        rf"IMAP CRITICAL - localhost:{srv.port}: OK on 127\.0\.0\.1, "
        r"CRITICAL on ::1: connection refused" + PERFDATA,
    )
    assert f"address v4_1: 127.0.0.1:{srv.port}" in every.lines
    assert f"address v6_1: [::1]:{srv.port}" in every.lines
    assert re.fullmatch(rf"\| {times('v4_1')}", every.perfdata), every.first_line
    # Without --all-addresses the first address that works is enough, as before.
    expect(
        first,
        0,
        rf"IMAP OK - localhost:{srv.port} answered in {NUM}s, {LOGOUT} \| {PLAIN_PERF}",
    )


def test_all_addresses_both_answering(dual_localhost: dict[str, str]) -> None:
    with (
        serve(_caps_server("IMAP4rev1")) as v4,
        FakeServerAt(_caps_server("IMAP4rev1"), "::1", v4.port),
    ):
        result = _all_addresses_run(v4.port, dual_localhost, "--all-addresses")
    expect(
        result,
        0,
        rf"IMAP OK - localhost:{v4.port} OK on 127\.0\.0\.1, ::1, {LOGOUT} \| "
        + times("v4_1", "v6_1"),
    )


def test_all_addresses_reports_the_worst_session(dual_localhost: dict[str, str]) -> None:
    def bye(conn: Conn) -> None:
        conn.send(b"* BYE Too many connections\r\n")

    with serve(_caps_server("IMAP4rev1")) as v4, FakeServerAt(bye, "::1", v4.port):
        result = _all_addresses_run(v4.port, dual_localhost, "--all-addresses")
    expect(
        result,
        2,
        rf"IMAP CRITICAL - localhost:{v4.port}: OK on 127\.0\.0\.1, CRITICAL on ::1: server "
        r'refused the session with a BYE greeting: "Too many connections" \| ' + times("v4_1"),
    )


def test_all_addresses_judges_capabilities_of_every_address(
    dual_localhost: dict[str, str],
) -> None:
    with (
        serve(_caps_server("IMAP4rev1 STARTTLS LOGINDISABLED")) as v4,
        FakeServerAt(_caps_server("IMAP4rev1 STARTTLS AUTH=PLAIN"), "::1", v4.port),
    ):
        result = _all_addresses_run(
            v4.port, dual_localhost, "--all-addresses", "--require-logindisabled"
        )
    expect(
        result,
        1,
        rf"IMAP WARNING - localhost:{v4.port}: .*::1.*LOGINDISABLED not advertised in clear.*",
    )


@pytest.mark.skipif(dc.dual_stack_prefix() is None, reason=dc.NO_DUAL_STACK)
def test_all_addresses_with_the_real_resolver() -> None:
    """The same as above through this machine's own /etc/hosts."""
    with serve(_caps_server("IMAP4rev1")) as srv:
        _free_on_v6(srv.port)
        prefix = dc.dual_stack_prefix() or ()
        every = _all_addresses_run(srv.port, {}, "--all-addresses", prefix=prefix)
        first = _all_addresses_run(srv.port, {}, prefix=prefix)
    expect(
        every,
        2,
        rf"IMAP CRITICAL - localhost:{srv.port}: OK on 127\.0\.0\.1, "
        rf"CRITICAL on ::1: connection refused \| {times('v4_1')}",
    )
    expect(
        first, 0, rf"IMAP OK - localhost:{srv.port} answered in {NUM}s, {LOGOUT} \| {PLAIN_PERF}"
    )
