"""The command line as Nagios sees it: exit codes and single lines, never tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from support.processes import check_imap


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "the following arguments are required: -H/--hostname"),
        (("-H", "x", "-p", "99999"), "argument -p/--port: invalid port '99999' (1-65535)"),
        (("-H", "x", "-p", "imap"), "argument -p/--port: invalid port 'imap'"),
        (
            ("-H", "x", "-t", "0"),
            "argument -t/--timeout: timeout '0' must be above 0 and at most 3600",
        ),
        (
            ("-H", "x", "-t", "nan"),
            "argument -t/--timeout: timeout 'nan' must be above 0 and at most 3600",
        ),
        (
            ("-H", "x", "--tls", "--starttls"),
            "argument --starttls: not allowed with argument --tls",
        ),
        (
            ("-H", "x", "--tls", "--sni", "a..b"),
            "--sni: invalid host name 'a..b' (at most 253 characters, labels of 1 to 63 between the dots)",
        ),
        (
            ("-H", "x", "--tls", "--insecure", "--ca-file", "/etc/hostname"),
            "--insecure and --ca-file contradict each other",
        ),
        (
            ("-H", "x", "--tls", "--ca-file", "/nonexistent/ca.pem"),
            "--ca-file /nonexistent/ca.pem: No such file or directory",
        ),
        (
            ("-H", "x", "-w", "abc"),
            "--warning: invalid range 'abc' (invalid literal for int() with base 10: 'abc')",
        ),
        (
            ("-H", "x", "--logout-critical", "5:1"),
            "--logout-critical: invalid range '5:1' (start 5 must not be greater than end 1)",
        ),
        (("-H", "x", "--bogus"), "unrecognized arguments: --bogus"),
        (
            ("-H", "x", "--timeout-state", "maybe"),
            "argument --timeout-state: invalid choice: 'maybe' (choose from 'ok', 'warning', 'critical', 'unknown')",
        ),
        (("-H", "::1", "-4"), "-4 contradicts the address ::1"),
        (("-H", "bad host\x1b[2J|x"), "invalid host name 'bad host\\x1b[2J/x'"),
    ],
)
def test_bad_input_is_one_unknown_line(args: tuple[str, ...], message: str) -> None:
    result = check_imap(*args)
    assert result.rc == 3
    assert result.err == ""
    assert result.out == f"IMAP UNKNOWN - {message} (see check_imap --help)\n"


def test_help_exits_unknown_with_examples() -> None:
    result = check_imap("--help")
    assert result.rc == 3  # the plugin guidelines: --help and --version are UNKNOWN
    assert result.err == ""
    assert result.first_line.startswith("usage: check_imap -H HOST [-p PORT] [--tls | --starttls]")
    assert "examples:" in result.out
    assert "check_imap -H imap.example.org --tls " in result.out
    for option in (
        "--tls",
        "--starttls",
        "-4",
        "-6",
        "-t",
        "-w",
        "-c",
        "-v",
        "-V",
        "--strict-logout",
        "--timeout-state",
        "--ca-file",
        "--sni",
        "--insecure",
    ):
        assert f" {option}" in result.out, option


def test_version() -> None:
    from check_imap import __version__

    result = check_imap("-V")
    assert (result.rc, result.out, result.err) == (3, f"check_imap {__version__}\n", "")


def test_python_dash_m_runs_the_same_cli() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "check_imap", "-H", "127.0.0.1", "-p", "1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == "IMAP CRITICAL - 127.0.0.1:1: connection refused\n"


def test_unresolvable_host_is_critical_not_unknown() -> None:
    result = check_imap("-H", "no-such-host.invalid", "-t", "5")
    assert result.rc == 2
    assert result.first_line.startswith(
        "IMAP CRITICAL - no-such-host.invalid:143: cannot resolve no-such-host.invalid: "
    )
