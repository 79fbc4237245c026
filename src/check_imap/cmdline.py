"""check_imap's command line: argparse -> nested option records. Errors are UNKNOWN (exit 3).

The parser is in arguments.py. Everything typed is checked here, so that later layers
never see bad input: host names (IDNA, label lengths), ranges, non-UTF-8 bytes, and
the files options name (see files.py: no symlink, FIFO or device is followed, read or
waited for).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

from .arguments import build_parser
from .files import KIB, MIB, FileRefused, first_line, private_problem, read_regular
from .options import (
    CapabilityPolicy,
    CertPolicy,
    Judgement,
    Options,
    Range,
    Target,
    Thresholds,
    UsageError,
    ip_family,
)
from .protocol import Credentials, Plan
from .steps import BUCKETS
from .text import add_secret, not_utf8


def parse(argv: list[str] | None) -> Options:
    args_in = sys.argv[1:] if argv is None else argv
    for index, arg in enumerate(args_in, 1):
        if not_utf8(arg):
            raise UsageError(f"argument {index} is not valid UTF-8")
    args = build_parser().parse_args(args_in)
    notes: list[str] = []
    host = check_host(args.host.strip(), "-H")
    literal = ip_family(host)
    if literal and args.family and literal != args.family:
        flag = "-4" if args.family == socket.AF_INET else "-6"
        raise UsageError(f"{flag} contradicts the address {host}")
    encrypted = args.tls or args.starttls
    if args.ca_file == "" or args.password_file == "":
        raise UsageError("--ca-file and --password-file need a file name, not an empty one")
    if args.insecure and args.ca_file:
        raise UsageError("--insecure and --ca-file contradict each other")
    if args.cert_critical > args.cert_warning:
        raise UsageError("--cert-critical must not be more days than --cert-warning")
    given = [o for o, v in _TLS_ONLY if getattr(args, v)]
    if given and not encrypted:
        # One command template for every port: TLS options on a plain check are moot.
        notes.append(f"note: {', '.join(given)} ignored: a plain check uses no TLS")
    sni = check_host(args.sni, "--sni") if args.sni is not None and encrypted else None
    ca_data = _ca_data(args.ca_file) if args.ca_file and encrypted else None
    target = Target(
        host,
        args.port or (993 if args.tls else 143),
        family=args.family or socket.AF_UNSPEC,
        tls=args.tls,
        starttls=args.starttls,
        server_name=sni,
        ca_file=args.ca_file if encrypted else None,
        ca_data=ca_data,
        insecure=args.insecure and encrypted,
        min_tls=args.min_tls,
        timeout=args.timeout,
        all_addresses=args.all_addresses,
    )
    credentials = _credentials(args)
    user = credentials.user if credentials else None
    # Each mailbox once, in the order given: a repeat would only repeat its perfdata.
    mailboxes = tuple(dict.fromkeys(args.mailbox)) or (("INBOX",) if user else ())
    thresholds = _thresholds(args)
    if thresholds.messages != (None, None) and not mailboxes:
        raise UsageError("--messages-warning/--messages-critical need --mailbox or --user")
    if thresholds.quota != (None, None) and not user:
        raise UsageError("--quota-warning/--quota-critical need --user")
    if args.mailbox and not user:
        raise UsageError("--mailbox needs --user (mailboxes are only visible after login)")
    if any(not name or "\0" in name for name in mailboxes):
        raise UsageError("--mailbox: a mailbox name must not be empty or hold a NUL byte")
    for option, caps in (
        ("--require-capability", args.require_capability),
        ("--forbid-capability", args.forbid_capability),
    ):
        bad = [c for c in caps if not c or any(ch in _NOT_ATOM for ch in c) or not c.isascii()]
        if bad:
            raise UsageError(f"{option}: {bad[0]!r} is not an IMAP capability name")
    capabilities = CapabilityPolicy(
        require=tuple(args.require_capability),
        forbid=tuple(args.forbid_capability),
        state=args.capability_state,
        require_logindisabled=args.require_logindisabled,
    )
    plan = Plan(
        starttls=target.starttls,
        encrypted=encrypted,
        want_capabilities=capabilities.active,  # never -v: it must not change the wire
        credentials=credentials,
        mailboxes=mailboxes,
        quota=user is not None,
    )
    cert = CertPolicy(
        warning_days=args.cert_warning,
        critical_days=args.cert_critical,
        fingerprints=tuple(args.fingerprint) if encrypted else (),
        ignore_rsa_size=args.ignore_rsa_size,
        ignore_ec_size=args.ignore_ec_size,
        ignore_sig_alg=args.ignore_sig_alg,
        allow_empty_san=args.allow_empty_san,
        cache_path=_cache_path(args.cert_cache),
    )
    judgement = Judgement(
        timeout_state=args.timeout_state,
        strict_logout=args.strict_logout,
        accept_preauth=args.accept_preauth,
    )
    return Options(
        target,
        plan=plan,
        cert=cert,
        capabilities=capabilities,
        thresholds=thresholds,
        judgement=judgement,
        user=user,
        verbose=min(args.verbose, 3),
        notes=tuple(notes),
    )


_NOT_ATOM = frozenset(' (){%*"\\]\r\n\t\0')  # RFC 3501 atom-specials and controls
_TLS_ONLY = (
    ("--sni", "sni"),
    ("--ca-file", "ca_file"),
    ("--insecure", "insecure"),
    ("--fingerprint", "fingerprint"),
)
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def check_host(name: str, option: str) -> str:
    """A host name or IP literal as resolvers accept it, else a usage error."""
    if ip_family(name):
        return name
    shown = name if len(name) <= 80 else name[:77] + "..."
    option = "" if option == "-H" else f"{option}: "  # -H is what every message is about
    if not name or any(ch.isspace() or not ch.isprintable() for ch in name):
        raise UsageError(f"{option}invalid host name {shown!r}")
    rule = "(at most 253 characters, labels of 1 to 63 between the dots)"
    labels = (name[:-1] if name.endswith(".") else name).split(".")
    if len(name) > 253 or any(not 1 <= len(label) <= 63 for label in labels):
        raise UsageError(f"{option}invalid host name {shown!r} {rule}")
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise UsageError(f"{option}invalid host name {shown!r} (not a valid IDNA name)") from None
    if len(ascii_name) > 253 or any(len(label) > 63 for label in ascii_name.split(".")):
        raise UsageError(f"{option}invalid host name {shown!r} {rule}")
    if any(ch not in _HOST_CHARS for ch in ascii_name):
        raise UsageError(f"{option}invalid host name {shown!r}")
    return name


def _ca_data(path: str) -> str:
    try:
        data, _info = read_regular(path, MIB)
    except FileRefused as exc:
        raise UsageError(f"--ca-file {path}: {exc}") from None
    text = data.decode("ascii", "replace")
    if not data.strip():
        raise UsageError(f"--ca-file {path}: empty")
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise UsageError(f"--ca-file {path}: no PEM certificate in it")
    return text


def _credentials(args: argparse.Namespace) -> Credentials | None:
    """The password never comes from argv: a private file, or the environment."""
    if args.user is None:
        if args.password_file or args.allow_cleartext_login:
            raise UsageError("--password-file and --allow-cleartext-login need --user")
        return None
    if not args.user or any(ch in "\r\n\0" for ch in args.user):
        raise UsageError("-u: the user name is empty or holds a line break")
    if not (args.tls or args.starttls or args.allow_cleartext_login):
        raise UsageError(
            "refusing to send credentials in clear: use --tls or --starttls "
            "(or --allow-cleartext-login)"
        )
    if args.password_file:
        password = _password_file(args.password_file)
    else:
        password = os.environ.get("CHECK_IMAP_PASSWORD", "")
        if not password:
            raise UsageError("--user needs --password-file or $CHECK_IMAP_PASSWORD")
        if not_utf8(password):
            raise UsageError("$CHECK_IMAP_PASSWORD is not valid UTF-8")
    if "\0" in password:
        raise UsageError("the password holds a NUL byte")
    add_secret(password, args.user)
    return Credentials(args.user, password)


def _password_file(path: str) -> str:
    try:
        line, info = first_line(path, KIB)
    except FileRefused as exc:
        raise UsageError(f"--password-file {path}: {exc}") from None
    problem = private_problem(info)
    if problem is not None:
        raise UsageError(f"--password-file {path}: {problem}")
    try:
        password = line.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"--password-file {path}: the first line is not valid UTF-8") from None
    if not password:
        raise UsageError(f"--password-file {path}: the first line is empty")
    return password


def _cache_path(option: str | None) -> str | None:
    if option is None:
        from .certs import default_cache_path  # cheap: certs imports cryptography lazily

        path = default_cache_path()
        return None if path is None or not_utf8(path) else path
    return None if option.lower() in ("off", "none", "") else option


def _range(text: str | None, option: str) -> str | None:
    if text is None:
        return None
    from .check.ranges import check_range  # nagiosplugin: only when a range is given

    return check_range(text, option)


def _pair(args: argparse.Namespace, warning: str, critical: str, name: str) -> Range:
    return (
        _range(getattr(args, warning), f"--{name}-warning" if name else "--warning"),
        _range(getattr(args, critical), f"--{name}-critical" if name else "--critical"),
    )


def _thresholds(args: argparse.Namespace) -> Thresholds:
    steps = {name: _pair(args, f"{name}_warning", f"{name}_critical", name) for name in BUCKETS}
    return Thresholds(
        time=_pair(args, "warning", "critical", ""),
        steps={name: pair for name, pair in steps.items() if pair != (None, None)},
        messages=_pair(args, "messages_warning", "messages_critical", "messages"),
        quota=_pair(args, "quota_warning", "quota_critical", "quota"),
    )
