"""check_imap's arguments: the one argparse parser, built only when there is input to parse.

argparse exits 2 on bad input, which Nagios reads as CRITICAL; the plugin guidelines
want UNKNOWN for bad options and for --help/--version alike, so every exit of this
parser is a UsageError or exit 3. ``dest`` names are the record fields they fill.
"""

from __future__ import annotations

import argparse
import socket
import sys

from . import PROG, UNKNOWN, __version__
from .options import UsageError
from .steps import BUCKETS
from .text import help_width

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms)
if TYPE_CHECKING:
    from typing import NoReturn

EPILOG = """\
examples:
  check_imap -H imap.example.org                      plain IMAP on port 143
  check_imap -H imap.example.org --tls                implicit TLS (IMAPS) on port 993
  check_imap -H imap.example.org --starttls -w 1 -c 3 STARTTLS on 143, time thresholds
  check_imap -H 192.0.2.7 --tls --sni imap.example.org --ca-file /etc/ssl/my-ca.pem
  check_imap -H imap.example.org --tls --connect-critical 0.5 --strict-logout -v
  check_imap -H imap.example.org --tls --cert-warning 30 --cert-critical 10
  check_imap -H imap.example.org --tls --fingerprint SHA256HEX --fingerprint NEXT_SHA256HEX
  CHECK_IMAP_PASSWORD=... check_imap -H imap.example.org --tls -u probe --quota-warning 80
  check_imap -H imap.example.org --tls -u probe --password-file /etc/nagios/imap.pw \\
      --mailbox Queue --messages-critical 0   (a queue that must stay empty)
  check_imap -H imap.example.org --starttls --require-logindisabled --all-addresses

thresholds use the Nagios range syntax: "1" alerts above 1s, "0.2:1" outside 0.2..1s,
"@0:0.1" inside. A network timeout is CRITICAL unless --timeout-state says otherwise.

LOGOUT: any healthy ending (BYE and tagged OK, BYE then close, OK without BYE, or
the server simply closing or resetting the connection) is OK and named in the
output; a NO/BAD reply or a reply with a foreign tag is WARNING; --strict-logout
also makes a missing BYE a WARNING.

exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also for --help and --version).
"""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose every exit is a plugin UNKNOWN."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stdout.write(message)
        sys.stdout.flush()
        sys.exit(UNKNOWN)

    def print_help(self, file: object = None) -> None:
        super().print_help(sys.stdout)


def build_parser() -> Parser:
    p = Parser(
        prog=PROG,
        usage="%(prog)s -H HOST [-p PORT] [--tls | --starttls] [options]",
        description="Check an IMAP server: greeting, optional TLS or STARTTLS, and a "
        "tolerant LOGOUT; Nagios/Icinga exit codes and performance data.",
        epilog=EPILOG,
        formatter_class=_formatter,
        allow_abbrev=False,
    )
    p.add_argument("-V", "--version", action="version", version=f"{PROG} {__version__}")
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more detail: capabilities, TLS, timings, transcript (up to -vvv)",
    )

    net = p.add_argument_group("connection")
    net.add_argument(
        "-H",
        "--hostname",
        dest="host",
        metavar="HOST",
        required=True,
        help="host name or IP address of the IMAP server",
    )
    net.add_argument(
        "-p", "--port", type=_port, metavar="PORT", help="TCP port (default 143; 993 with --tls)"
    )
    mode = net.add_mutually_exclusive_group()
    mode.add_argument("--tls", action="store_true", help="implicit TLS (IMAPS) from the first byte")
    mode.add_argument(
        "--starttls",
        action="store_true",
        help="plain connection upgraded with STARTTLS, which must be advertised",
    )
    fam = net.add_mutually_exclusive_group()
    fam.add_argument(
        "-4",
        "--ipv4",
        dest="family",
        action="store_const",
        const=socket.AF_INET,
        help="use IPv4 only",
    )
    fam.add_argument(
        "-6",
        "--ipv6",
        dest="family",
        action="store_const",
        const=socket.AF_INET6,
        help="use IPv6 only",
    )
    net.add_argument(
        "-t",
        "--timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="one deadline for the whole check, DNS to LOGOUT (default 10)",
    )
    net.add_argument(
        "--timeout-state",
        choices=("ok", "warning", "critical", "unknown"),
        default="critical",
        type=str.lower,
        help="state when the deadline runs out (default critical)",
    )

    tls = p.add_argument_group("TLS (with --tls or --starttls; ignored on a plain check)")
    tls.add_argument(
        "--sni",
        metavar="NAME",
        help="server name sent in TLS and verified in the certificate (default -H)",
    )
    tls.add_argument(
        "--ca-file",
        metavar="FILE",
        help="trust these CA certificates (PEM, at most 1 MiB) instead of the system store",
    )
    tls.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify the certificate (shown in the output)",
    )
    tls.add_argument(
        "--min-tls",
        choices=("1.2", "1.3"),
        default="1.2",
        help="lowest acceptable TLS version (default 1.2)",
    )

    cert = p.add_argument_group("certificate (with --tls or --starttls)")
    cert.add_argument(
        "--cert-warning",
        type=_days,
        default=21,
        metavar="DAYS",
        help="WARNING when a certificate expires sooner (default 21)",
    )
    cert.add_argument(
        "--cert-critical",
        type=_days,
        default=7,
        metavar="DAYS",
        help="CRITICAL when it expires sooner (default 7)",
    )
    cert.add_argument(
        "--fingerprint",
        action="append",
        type=_fingerprint,
        default=[],
        metavar="SHA256HEX",
        help="require the leaf or a chain certificate to have this SHA-256 "
        "fingerprint; repeat for key rollover",
    )
    cert.add_argument(
        "--ignore-rsa-size", action="store_true", help="no WARNING for RSA keys under 2048 bits"
    )
    cert.add_argument(
        "--ignore-ec-size", action="store_true", help="no WARNING for EC keys under 256 bits"
    )
    cert.add_argument(
        "--ignore-sig-alg",
        action="store_true",
        help="no WARNING for SHA-1 or MD5 signatures below the trust anchor",
    )
    cert.add_argument(
        "--allow-empty-san",
        action="store_true",
        help="no WARNING for a leaf without subjectAltName",
    )
    cert.add_argument(
        "--cert-cache",
        metavar="FILE|off",
        help="cache of key sizes and signature algorithms per certificate, so "
        "most runs need not load cryptography (default "
        "$XDG_CACHE_HOME/check_imap/certs.json, /var/cache/... for root)",
    )

    caps = p.add_argument_group("capabilities")
    caps.add_argument(
        "--require-capability",
        action="append",
        default=[],
        metavar="CAP",
        type=str.upper,
        help="the server must advertise CAP (repeatable)",
    )
    caps.add_argument(
        "--forbid-capability",
        action="append",
        default=[],
        metavar="CAP",
        type=str.upper,
        help="the server must not advertise CAP (repeatable)",
    )
    caps.add_argument(
        "--capability-state",
        choices=("ok", "warning", "critical", "unknown"),
        default="warning",
        type=str.lower,
        help="state of a capability violation (default warning)",
    )
    caps.add_argument(
        "--require-logindisabled",
        action="store_true",
        help="in clear (plain, or before STARTTLS) LOGINDISABLED must be "
        "advertised, and after TLS it must not",
    )

    login = p.add_argument_group("login, mailboxes and quota")
    login.add_argument(
        "-u",
        "--user",
        metavar="NAME",
        help="log in as NAME (the password: --password-file, or the environment)",
    )
    login.add_argument(
        "--password-file",
        metavar="FILE",
        help="private file (not readable by others) whose first line is the password",
    )
    login.add_argument(
        "--allow-cleartext-login", action="store_true", help="allow sending credentials without TLS"
    )
    login.add_argument(
        "--mailbox",
        action="append",
        default=[],
        metavar="NAME",
        help="EXAMINE this mailbox and report its messages (repeatable; "
        "default INBOX when logged in)",
    )
    login.add_argument(
        "--messages-warning", metavar="RANGE", help="message count warning (each --mailbox)"
    )
    login.add_argument(
        "--messages-critical", metavar="RANGE", help="message count critical (each --mailbox)"
    )
    login.add_argument(
        "--quota-warning", metavar="PERCENT", help="quota usage warning, in percent (needs QUOTA)"
    )
    login.add_argument(
        "--quota-critical", metavar="PERCENT", help="quota usage critical, in percent (needs QUOTA)"
    )

    net.add_argument(
        "--all-addresses",
        action="store_true",
        help="check every A and AAAA address concurrently; the worst counts",
    )

    th = p.add_argument_group("thresholds (seconds, Nagios range syntax)")
    th.add_argument("-w", "--warning", metavar="RANGE", help="total response time warning")
    th.add_argument("-c", "--critical", metavar="RANGE", help="total response time critical")
    for name in BUCKETS:
        th.add_argument(f"--{name}-warning", metavar="RANGE", help=f"{name} time warning")
        th.add_argument(f"--{name}-critical", metavar="RANGE", help=f"{name} time critical")

    p.add_argument(
        "--strict-logout",
        action="store_true",
        help="WARNING when the server ends the session without BYE",
    )
    p.add_argument(
        "--accept-preauth",
        action="store_true",
        help="OK when the server pre-authenticates the connection (PREAUTH) although "
        "-u names a user, who is then not checked (default WARNING)",
    )
    return p


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, width=help_width())


def _digits(text: str) -> bool:
    """ASCII digits only: int() also takes ``٣``, ``1_0`` and surrounding blanks."""
    return 0 < len(text) <= 20 and text.isascii() and text.isdigit()


def _port(text: str) -> int:
    if not _digits(text):
        raise argparse.ArgumentTypeError(f"invalid port {text[:30]!r}")
    port = int(text, 10)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r} (1-65535)")
    return port


def _days(text: str) -> int:
    if not _digits(text):
        raise argparse.ArgumentTypeError(f"invalid number of days {text[:30]!r}")
    value = int(text, 10)
    if not 0 <= value <= 36500:
        raise argparse.ArgumentTypeError(f"days {text!r} must be between 0 and 36500")
    return value


def _fingerprint(text: str) -> str:
    hexdigits = text.replace(":", "").replace(" ", "").lower()
    if len(hexdigits) != 64 or any(ch not in "0123456789abcdef" for ch in hexdigits):
        raise argparse.ArgumentTypeError(f"{text!r} is not a SHA-256 fingerprint (64 hex digits)")
    return hexdigits


def _seconds(text: str) -> float:
    if not (text.isascii() and "_" not in text and text == text.strip()):
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text[:30]!r}")
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text[:30]!r}") from None
    if not 0 < value <= 3600:  # also rejects nan and inf
        raise argparse.ArgumentTypeError(f"timeout {text!r} must be above 0 and at most 3600")
    return value
