"""The validated options of one run, as nested frozen records: each layer gets its own.

cmdline builds them once; transport receives the Target, the handshake its Plan
(protocol.records), certpolicy the CertPolicy, the contexts the Thresholds. Plain
``__slots__`` classes: dataclasses would cost every start-up ~70 M instructions.
"""

from __future__ import annotations

from .protocol.records import Plan


class UsageError(Exception):
    """Bad command-line input: reported as one UNKNOWN line, exit 3."""


def ip_family(host: str) -> int:
    """AF_INET or AF_INET6 when ``host`` is an IP address literal, else 0."""
    import socket  # already loaded by every caller; imported here to keep this module light

    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    return 0


class Record:
    """Frozen after __init__: a record is built once and only read."""

    __slots__ = ()

    def _set(self, **values: object) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __repr__(self) -> str:
        names: tuple[str, ...] = tuple(getattr(self, "__slots__", ()))
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
        return f"{type(self).__name__}({fields})"


class Target(Record):
    """Where to connect and how: all transport.py needs."""

    __slots__ = (
        "all_addresses",
        "ca_data",
        "ca_file",
        "family",
        "host",
        "insecure",
        "min_tls",
        "port",
        "server_name",
        "starttls",
        "timeout",
        "tls",
    )
    host: str
    port: int
    family: int  # socket.AF_UNSPEC, AF_INET or AF_INET6
    tls: bool  # implicit TLS
    starttls: bool
    server_name: str  # sent as SNI and verified in the certificate (--sni, else -H)
    ca_file: str | None  # for messages; the certificates are in ca_data
    ca_data: str | None  # PEM text, read once by cmdline
    insecure: bool
    min_tls: str  # "1.2" or "1.3"
    timeout: float
    all_addresses: bool

    def __init__(
        self,
        host: str,
        port: int,
        *,
        family: int = 0,
        tls: bool = False,
        starttls: bool = False,
        server_name: str | None = None,
        ca_file: str | None = None,
        ca_data: str | None = None,
        insecure: bool = False,
        min_tls: str = "1.2",
        timeout: float = 10.0,
        all_addresses: bool = False,
    ) -> None:
        self._set(
            host=host,
            port=port,
            family=family,
            tls=tls,
            starttls=starttls,
            server_name=server_name or host,
            ca_file=ca_file,
            ca_data=ca_data,
            insecure=insecure,
            min_tls=min_tls,
            timeout=timeout,
            all_addresses=all_addresses,
        )

    @property
    def encrypted(self) -> bool:
        return self.tls or self.starttls

    @property
    def mode(self) -> str:
        return "implicit TLS" if self.tls else "STARTTLS" if self.starttls else "plain IMAP"

    @property
    def label(self) -> str:
        """``host:port`` as the status line names the target."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class CertPolicy(Record):
    __slots__ = (
        "allow_empty_san",
        "cache_path",
        "critical_days",
        "fingerprints",
        "ignore_ec_size",
        "ignore_rsa_size",
        "ignore_sig_alg",
        "warning_days",
    )
    warning_days: int
    critical_days: int
    fingerprints: tuple[str, ...]  # lower-case SHA-256 hex
    ignore_rsa_size: bool
    ignore_ec_size: bool
    ignore_sig_alg: bool
    allow_empty_san: bool
    cache_path: str | None  # None: no cache

    def __init__(
        self,
        *,
        warning_days: int = 21,
        critical_days: int = 7,
        fingerprints: tuple[str, ...] = (),
        ignore_rsa_size: bool = False,
        ignore_ec_size: bool = False,
        ignore_sig_alg: bool = False,
        allow_empty_san: bool = False,
        cache_path: str | None = None,
    ) -> None:
        self._set(
            warning_days=warning_days,
            critical_days=critical_days,
            fingerprints=fingerprints,
            ignore_rsa_size=ignore_rsa_size,
            ignore_ec_size=ignore_ec_size,
            ignore_sig_alg=ignore_sig_alg,
            allow_empty_san=allow_empty_san,
            cache_path=cache_path,
        )

    @property
    def judges_crypto(self) -> bool:
        """Whether key sizes or signatures are judged (they need cryptography)."""
        return not (
            self.ignore_rsa_size
            and self.ignore_ec_size
            and self.ignore_sig_alg
            and self.allow_empty_san
        )


class CapabilityPolicy(Record):
    __slots__ = ("forbid", "require", "require_logindisabled", "state")
    require: tuple[str, ...]
    forbid: tuple[str, ...]
    state: str  # "ok", "warning", "critical" or "unknown"
    require_logindisabled: bool

    def __init__(
        self,
        *,
        require: tuple[str, ...] = (),
        forbid: tuple[str, ...] = (),
        state: str = "warning",
        require_logindisabled: bool = False,
    ) -> None:
        self._set(
            require=require,
            forbid=forbid,
            state=state,
            require_logindisabled=require_logindisabled,
        )

    @property
    def active(self) -> bool:
        return bool(self.require or self.forbid or self.require_logindisabled)


Range = tuple["str | None", "str | None"]  # (warning, critical) in Nagios range syntax


class Thresholds(Record):
    __slots__ = ("messages", "quota", "steps", "time")
    time: Range  # the whole check
    steps: dict[str, Range]  # steps.BUCKETS -> ranges
    messages: Range
    quota: Range  # percent

    def __init__(
        self,
        *,
        time: Range = (None, None),
        steps: dict[str, Range] | None = None,
        messages: Range = (None, None),
        quota: Range = (None, None),
    ) -> None:
        self._set(time=time, steps=steps or {}, messages=messages, quota=quota)


class Judgement(Record):
    """How findings that are not thresholds become states."""

    __slots__ = ("accept_preauth", "strict_logout", "timeout_state")
    timeout_state: str
    strict_logout: bool
    accept_preauth: bool

    def __init__(
        self,
        *,
        timeout_state: str = "critical",
        strict_logout: bool = False,
        accept_preauth: bool = False,
    ) -> None:
        self._set(
            timeout_state=timeout_state,
            strict_logout=strict_logout,
            accept_preauth=accept_preauth,
        )


class Options(Record):
    __slots__ = (
        "capabilities",
        "cert",
        "judgement",
        "notes",
        "plan",
        "target",
        "thresholds",
        "user",
        "verbose",
    )
    target: Target
    plan: Plan
    cert: CertPolicy
    capabilities: CapabilityPolicy
    thresholds: Thresholds
    judgement: Judgement
    user: str | None  # shown in the output; the password is only in plan.credentials
    verbose: int
    notes: tuple[str, ...]  # -v notes about options, e.g. TLS options on a plain check

    def __init__(
        self,
        target: Target,
        *,
        plan: Plan | None = None,
        cert: CertPolicy | None = None,
        capabilities: CapabilityPolicy | None = None,
        thresholds: Thresholds | None = None,
        judgement: Judgement | None = None,
        user: str | None = None,
        verbose: int = 0,
        notes: tuple[str, ...] = (),
    ) -> None:
        self._set(
            target=target,
            plan=plan or Plan(starttls=target.starttls, encrypted=target.encrypted),
            cert=cert or CertPolicy(),
            capabilities=capabilities or CapabilityPolicy(),
            thresholds=thresholds or Thresholds(),
            judgement=judgement or Judgement(),
            user=user,
            verbose=verbose,
            notes=notes,
        )
