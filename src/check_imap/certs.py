"""Certificate facts: names, dates, key and signature. No thresholds live here.

Names and dates come from the ssl module's own decoding where Python offers it, so a
default TLS check never pays for importing ``cryptography`` (~30 ms). Key sizes and
signature hashes need ``cryptography``: it is imported lazily, and its findings are
cached per certificate fingerprint in a small, atomically replaced JSON file.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import time
from dataclasses import asdict, dataclass

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms)
if TYPE_CHECKING:
    from typing import Any

CertBlob = tuple[bytes, "dict[str, Any] | None"]
"""A certificate as DER, with ssl's decoded dict when Python gave us one."""

CACHE_VERSION = 1
CACHE_MAX_ENTRIES = 256  # a monitoring host sees few distinct certificates


@dataclass(frozen=True)
class CertFacts:
    """What the output and the expiry checks need: no cryptography required."""

    sha256: str
    subject_cn: str | None
    issuer_cn: str | None
    names: tuple[str, ...]  # subjectAltName DNS names and IP addresses, in order
    not_before: float  # POSIX seconds
    not_after: float
    self_issued: bool

    @property
    def label(self) -> str:
        """How the output names a certificate: its CN, else its first SAN."""
        return self.subject_cn or (self.names[0] if self.names else self.sha256[:16])

    def days_left(self, now: float) -> int:
        """Whole days of validity left; negative once expired (truncated towards zero)."""
        return int((self.not_after - now) / 86400)


@dataclass(frozen=True)
class CryptoFacts:
    """What only cryptography can tell: key type and size, signature hash, SAN presence."""

    key_type: str  # "RSA", "EC", "Ed25519", "Ed448", "DSA" or the class name
    key_bits: int
    signature_hash: str | None  # "sha256", "sha1", "md5"...; None for EdDSA
    has_san: bool


def sha256_hex(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def facts(blob: CertBlob) -> CertFacts:
    der, info = blob
    if info:
        return _facts_from_ssl(der, info)
    return _facts_from_der(der)


def _facts_from_ssl(der: bytes, info: dict[str, Any]) -> CertFacts:
    subject = _rdn(info.get("subject", ()))
    issuer = _rdn(info.get("issuer", ()))
    names = tuple(
        _ip_text(value) if kind == "IP Address" else value
        for kind, value in info.get("subjectAltName", ())
        if kind in ("DNS", "IP Address")
    )
    return CertFacts(
        sha256=sha256_hex(der),
        subject_cn=subject.get("commonName"),
        issuer_cn=issuer.get("commonName"),
        names=names,
        not_before=float(ssl.cert_time_to_seconds(info["notBefore"])),
        not_after=float(ssl.cert_time_to_seconds(info["notAfter"])),
        self_issued=info.get("subject") == info.get("issuer"),
    )


def _rdn(rdns: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for rdn in rdns:
        for key, value in rdn:
            out.setdefault(key, value)
    return out


def _ip_text(value: str) -> str:
    """ssl spells ::1 as 0:0:0:0:0:0:0:1; show the compressed form people type."""
    if ":" not in value:
        return value
    import ipaddress

    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value


def _load(der: bytes) -> Any:
    from cryptography import x509  # lazy: ~30 ms, only when ssl cannot tell us

    return x509.load_der_x509_certificate(der)


def _facts_from_der(der: bytes) -> CertFacts:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = _load(der)

    def cn(name: x509.Name) -> str | None:
        attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(attrs[0].value) if attrs else None

    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        for general in san:
            if isinstance(general, x509.DNSName):
                names.append(general.value)
            elif isinstance(general, x509.IPAddress):
                names.append(str(general.value))
    return CertFacts(
        sha256=sha256_hex(der),
        subject_cn=cn(cert.subject),
        issuer_cn=cn(cert.issuer),
        names=tuple(names),
        not_before=_utc(cert, "not_valid_before"),
        not_after=_utc(cert, "not_valid_after"),
        self_issued=cert.subject == cert.issuer,
    )


def _utc(cert: Any, attr: str) -> float:
    """cryptography >= 42 has *_utc (aware); older versions return naive UTC datetimes."""
    import calendar

    aware = getattr(cert, f"{attr}_utc", None)
    if aware is not None:
        return float(aware.timestamp())
    return float(calendar.timegm(getattr(cert, attr).utctimetuple()))


def crypto_facts(der: bytes) -> CryptoFacts:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

    cert = _load(der)
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        key_type, bits = "RSA", key.key_size
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key_type, bits = "EC", key.curve.key_size
    elif isinstance(key, dsa.DSAPublicKey):
        key_type, bits = "DSA", key.key_size
    else:
        key_type = type(key).__name__.replace("PublicKey", "").lstrip("_")
        bits = 0
    algorithm = cert.signature_hash_algorithm
    try:
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        has_san = True
    except x509.ExtensionNotFound:
        has_san = False
    return CryptoFacts(
        key_type=key_type,
        key_bits=bits,
        signature_hash=algorithm.name if algorithm is not None else None,
        has_san=has_san,
    )


class CryptoCache:
    """Per-fingerprint CryptoFacts in a JSON file, replaced atomically; never fatal.

    A certificate never changes under its fingerprint, so entries never go stale:
    the cache only needs a size bound. A lost race between two checks costs one
    recomputation, nothing more.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._entries: dict[str, dict[str, Any]] | None = None  # read on first use
        self._dirty = False

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._entries is None:
            self._entries = {}
            if self.path:
                try:
                    with open(self.path, encoding="utf-8") as f:
                        data = json.load(f)
                    if data.get("version") == CACHE_VERSION:
                        self._entries = dict(data.get("certs", {}))
                except (OSError, ValueError, AttributeError):
                    pass  # unreadable or foreign: start empty, the next save replaces it
        return self._entries

    def get(self, der: bytes) -> CryptoFacts:
        fingerprint = sha256_hex(der)
        entries = self._load()
        entry = entries.get(fingerprint)
        if entry is not None:
            try:
                found = CryptoFacts(**entry["facts"])
            except (KeyError, TypeError):
                found = None
            if found is not None:
                return found
        computed = crypto_facts(der)
        entries[fingerprint] = {"facts": asdict(computed), "seen": int(time.time())}
        self._dirty = True
        return computed

    def save(self) -> None:
        if not (self.path and self._dirty and self._entries is not None):
            return
        import tempfile  # only when the cache changed: ~2 ms of every start-up otherwise

        newest = sorted(self._entries.items(), key=lambda kv: kv[1].get("seen", 0))
        entries = dict(newest[-CACHE_MAX_ENTRIES:])
        directory = os.path.dirname(self.path) or "."
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".certs.", dir=directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump({"version": CACHE_VERSION, "certs": entries}, f)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError:
            pass  # a cache that cannot be written only costs speed


def default_cache_path() -> str | None:
    """$XDG_CACHE_HOME, else /var/cache for root, else ~/.cache; None if none is known."""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    if not base:
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            base = "/var/cache"
        elif os.environ.get("HOME"):
            base = os.path.join(os.environ["HOME"], ".cache")
        else:
            return None
    return os.path.join(base, "check_imap", "certs.json")
