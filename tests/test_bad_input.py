"""#10: a systematic corpus of bad command lines, each one clear UNKNOWN line.

Every case runs the installed check_imap as Nagios would and must: exit 3, print
exactly one line starting ``IMAP UNKNOWN - `` that is not the last-resort handler's
("internal error"), print nothing on stderr and no traceback, and end within 2 s.
A case that slipped through would try ``imap.test`` (which does not resolve) and end
CRITICAL, so every case can fail. Files are decoys made per run: FIFOs (which would
block a naive open), a character device, a directory, symlinks, oversized files.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from check_imap.steps import BUCKETS
from support.processes import command

BASE = ("-H", "imap.test", "--tls")
Case = tuple[str, tuple["str | bytes", ...], dict[str, "str | bytes"]]


def _files(d: Path) -> dict[str, str]:
    fifo = d / "fifo"
    os.mkfifo(fifo)
    (d / "dir").mkdir()
    empty = d / "empty"
    empty.write_text("")
    nocert = d / "nocert.pem"
    nocert.write_text("just some text\n")
    big = d / "big.pem"
    big.write_bytes(b"-----BEGIN CERTIFICATE-----\n" + b"A" * (2 * 1024 * 1024))
    target = d / "real.pem"
    target.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    link = d / "link"
    link.symlink_to(target)
    public = d / "public.pw"
    public.write_text("secret\n")
    public.chmod(0o644)
    writable = d / "writable.pw"
    writable.write_text("secret\n")
    writable.chmod(0o602)
    blank = d / "blank.pw"
    blank.write_text("\nsecret\n")
    blank.chmod(0o600)
    latin1 = d / "latin1.pw"
    latin1.write_bytes(b"p\xe4ss\n")
    latin1.chmod(0o600)
    long_line = d / "long.pw"
    long_line.write_text("x" * 2048 + "\n")
    long_line.chmod(0o600)
    emptypw = d / "empty.pw"
    emptypw.write_text("")
    emptypw.chmod(0o600)
    linkpw = d / "link.pw"
    linkpw.symlink_to(blank)
    return {
        "fifo": str(fifo),
        "dir": str(d / "dir"),
        "dev": "/dev/null",
        "zero": "/dev/zero",
        "missing": str(d / "missing"),
        "empty": str(empty),
        "nocert": str(nocert),
        "big": str(big),
        "link": str(link),
        "public": str(public),
        "writable": str(writable),
        "blank": str(blank),
        "latin1": str(latin1),
        "long": str(long_line),
        "emptypw": str(emptypw),
        "linkpw": str(linkpw),
    }


def _cases(files: dict[str, str]) -> Iterator[Case]:
    bad_ranges = ("", "@", "@:", "abc", "5:1", "1:x", "~:~")
    for value in ("", "0", "65536", "x", "-1", "1e3", "9" * 100, "143.5", "\u0663", "1_43", " 143"):
        yield f"port {value!r}", (*BASE, "-p", value), {}
    for value in ("", "0", "-1", "nan", "inf", "3601", "x", "1e400", "\u0663", "1_0", " 5"):
        yield f"timeout {value!r}", (*BASE, "-t", value), {}
    for option in ("--timeout-state", "--capability-state"):
        for value in ("", "x", "9", "critical2"):
            yield f"{option} {value!r}", (*BASE, option, value), {}
    for value in ("", "1.1", "x", "1.0"):
        yield f"min-tls {value!r}", (*BASE, "--min-tls", value), {}
    for option in ("--cert-warning", "--cert-critical"):
        for value in ("", "-1", "x", "36501", "1.5", "\u0663", "1_0"):
            yield f"{option} {value!r}", (*BASE, option, value), {}
    yield "cert-critical above warning", (*BASE, "--cert-warning", "5", "--cert-critical", "9"), {}
    for value in ("", "zz", "ab" * 31, "ab" * 33, "g" * 64):
        yield f"fingerprint {value!r}", (*BASE, "--fingerprint", value), {}
    hosts: tuple[str, ...] = (
        "",
        "a..b",
        ".",
        "x" * 64 + ".test",
        "x" * 100_000,
        "bad host",
        "\x1b[2J",
        "a b.c",
    )
    hosts += ("-" * 3 + ".test", "..", "x" * 254)
    for value in hosts:
        yield f"host {value[:20]!r}", ("-H", value, "--tls"), {}
        yield f"sni {value[:20]!r}", (*BASE, "--sni", value), {}
    for key in ("fifo", "dir", "dev", "zero", "missing", "empty", "nocert", "big", "link"):
        yield f"ca-file {key}", (*BASE, "--ca-file", files[key]), {}
    yield "ca-file empty name", (*BASE, "--ca-file", ""), {}
    yield "password-file empty name", (*BASE, "-u", "probe", "--password-file", ""), {}
    yield "ca-file and insecure", (*BASE, "--insecure", "--ca-file", files["link"]), {}
    login = (*BASE, "-u", "probe")
    for key in ("fifo", "dir", "dev", "zero", "missing", "public", "writable", "blank"):
        yield f"password-file {key}", (*login, "--password-file", files[key]), {}
    for key in ("latin1", "long", "emptypw", "linkpw"):
        yield f"password-file {key}", (*login, "--password-file", files[key]), {}
    yield "user without password", login, {}
    yield "empty user", (*BASE, "-u", ""), {"CHECK_IMAP_PASSWORD": "x"}
    yield "user with line break", (*BASE, "-u", "a\nb"), {"CHECK_IMAP_PASSWORD": "x"}
    yield "cleartext login", ("-H", "imap.test", "-u", "probe"), {"CHECK_IMAP_PASSWORD": "x"}
    yield "password file without user", (*BASE, "--password-file", files["blank"]), {}
    yield "cleartext flag without user", (*BASE, "--allow-cleartext-login"), {}
    yield "mailbox without user", (*BASE, "--mailbox", "INBOX"), {}
    yield "empty mailbox", (*login, "--mailbox", ""), {"CHECK_IMAP_PASSWORD": "x"}
    yield "quota without user", (*BASE, "--quota-warning", "80"), {}
    yield "messages without mailbox", (*BASE, "--messages-warning", "1"), {}
    for option in ("--require-capability", "--forbid-capability"):
        for value in ("", "A B", "X(", "é", 'Q"'):
            yield f"{option} {value!r}", (*BASE, option, value), {}
    thresholds = ["-w", "-c"] + [
        f"--{b}-{level}" for b in BUCKETS for level in ("warning", "critical")
    ]
    for option in thresholds:
        for value in bad_ranges:
            yield f"{option} {value!r}", (*BASE, option, value), {}
    for option in (
        "--messages-warning",
        "--messages-critical",
        "--quota-warning",
        "--quota-critical",
    ):
        for value in bad_ranges:
            yield f"{option} {value!r}", (*login, option, value), {"CHECK_IMAP_PASSWORD": "x"}
    every_valued = [
        "-p",
        "-t",
        "--timeout-state",
        "--sni",
        "--ca-file",
        "--min-tls",
        "--cert-warning",
        "--cert-critical",
        "--fingerprint",
        "--cert-cache",
        "--require-capability",
        "--forbid-capability",
        "--capability-state",
        "-u",
        "--password-file",
        "--mailbox",
        "--messages-warning",
        "--messages-critical",
        "--quota-warning",
        "--quota-critical",
        *thresholds,
    ]
    for option in every_valued:
        yield f"{option} without value", (*BASE, option), {}
    yield "no host", ("--tls",), {}
    yield "tls and starttls", (*BASE, "--starttls"), {}
    yield "-4 with an IPv6 address", ("-H", "::1", "-4"), {}
    yield "-6 with an IPv4 address", ("-H", "127.0.0.1", "-6"), {}
    yield "-4 and -6", (*BASE, "-4", "-6"), {}
    yield "unknown option", (*BASE, "--bogus"), {}
    yield "abbreviated option", (*BASE, "--time", "5"), {}
    yield "positional argument", (*BASE, "extra"), {}
    for where in ("-H", "-u", "--mailbox", "--sni"):
        args: tuple[str | bytes, ...] = (*login, where, b"\xff\xfe")
        yield f"non-UTF-8 {where}", args, {"CHECK_IMAP_PASSWORD": "x"}
    yield "non-UTF-8 password", login, {"CHECK_IMAP_PASSWORD": b"\xff"}
    yield "NUL-free but odd password env", login, {"CHECK_IMAP_PASSWORD": ""}


def _run(case: Case) -> tuple[str, int, bytes, bytes, float]:
    name, args, env = case
    full_env: dict[bytes, bytes] = {os.fsencode(k): os.fsencode(v) for k, v in os.environ.items()}
    full_env.pop(b"CHECK_IMAP_PASSWORD", None)
    full_env.update({os.fsencode(k): os.fsencode(v) for k, v in env.items()})
    argv = [os.fsencode(command("check_imap")), *(os.fsencode(a) for a in args)]
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, env=full_env, timeout=10, check=False)
    return name, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start


def test_every_bad_command_line_is_one_clear_unknown_line(tmp_path: Path) -> None:
    cases = list(_cases(_files(tmp_path)))
    assert len(cases) >= 200, len(cases)
    # One run per core: the 2 s bound is per run, so runs must not queue for a CPU.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(_run, cases))
    problems = []
    for name, rc, out, err, elapsed in results:
        lines = out.decode("utf-8", "replace").splitlines()
        ok = (
            rc == 3
            and len(lines) == 1
            and lines[0].startswith("IMAP UNKNOWN - ")
            and "internal error" not in lines[0]
            and err == b""
            and b"Traceback" not in out + err
            and elapsed < 2.0
        )
        if not ok:
            problems.append(f"{name}: rc={rc} {elapsed:.2f}s out={out[:300]!r} err={err[:300]!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("verbose", ["-v", "-vvv"])
def test_verbose_bad_input_is_still_one_line(tmp_path: Path, verbose: str) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    _name, rc, out, err, elapsed = _run(("fifo", (*BASE, verbose, "--ca-file", str(fifo)), {}))
    assert rc == 3 and err == b"" and elapsed < 2.0
    assert out.decode() == (
        f"IMAP UNKNOWN - --ca-file {fifo}: a FIFO, not a regular file (see check_imap --help)\n"
    )
