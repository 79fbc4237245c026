"""Certificate facts: names, dates, key and signature. No thresholds live here.

Names and dates come from the ssl module's own decoding where Python offers it, so a
default TLS check never pays for importing ``cryptography`` (~30 ms). Key sizes and
signature hashes need ``cryptography``: it is imported lazily, and its findings are
cached per certificate fingerprint in a small JSON file of our own (``CryptoCache``).
"""

from __future__ import annotations

import os
import time

from .text import ip_text

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms)
if TYPE_CHECKING:
    from typing import Any

CertBlob = tuple[bytes, "dict[str, Any] | None"]
"""A certificate as DER, with ssl's decoded dict when Python gave us one."""

CACHE_VERSION = 1
CACHE_MAX_ENTRIES = 256  # a monitoring host sees few distinct certificates


class TLSInfo:
    """What the TLS handshake of one session showed."""

    __slots__ = ("bits", "chain", "cipher", "leaf_only", "presented", "verified", "version")

    def __init__(
        self,
        *,
        version: str,
        cipher: str,
        bits: int,
        verified: bool,
        chain: tuple[CertBlob, ...],
        presented: tuple[CertBlob, ...],
        leaf_only: bool = False,
    ) -> None:
        self.version = version
        self.cipher = cipher
        self.bits = bits
        self.verified = verified
        self.chain = chain  # verified chain (leaf first) when verified, else presented
        self.presented = presented  # what the server sent, leaf first
        self.leaf_only = leaf_only  # Python 3.9 shows only the leaf: no chain checks


class CertFacts:
    """What the output and the expiry checks need: no cryptography required."""

    __slots__ = (
        "issuer_cn",
        "names",
        "not_after",
        "not_before",
        "self_issued",
        "sha256",
        "subject_cn",
    )

    def __init__(
        self,
        *,
        sha256: str,
        subject_cn: str | None,
        issuer_cn: str | None,
        names: tuple[str, ...],
        not_before: float,
        not_after: float,
        self_issued: bool,
    ) -> None:
        self.sha256 = sha256
        self.subject_cn = subject_cn
        self.issuer_cn = issuer_cn
        self.names = names  # subjectAltName DNS names and IP addresses, in order
        self.not_before = not_before  # POSIX seconds
        self.not_after = not_after
        self.self_issued = self_issued

    @property
    def label(self) -> str:
        """How the output names a certificate: its CN, else its first SAN."""
        return self.subject_cn or (self.names[0] if self.names else self.sha256[:16])

    def days_left(self, now: float) -> int:
        """Whole days of validity left; negative once expired (truncated towards zero)."""
        return int((self.not_after - now) / 86400)


class CryptoFacts:
    """What only cryptography can tell: key type and size, signature hash, SAN presence."""

    __slots__ = ("has_san", "key_bits", "key_type", "signature_hash")

    def __init__(
        self, *, key_type: str, key_bits: int, signature_hash: str | None, has_san: bool
    ) -> None:
        self.key_type = key_type  # "RSA", "EC", "Ed25519", "Ed448", "DSA" or the class name
        self.key_bits = key_bits
        self.signature_hash = signature_hash  # "sha256", "sha1", "md5"...; None for EdDSA
        self.has_san = has_san

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def sha256_hex(der: bytes) -> str:
    import hashlib  # only when a certificate is looked at

    return hashlib.sha256(der).hexdigest()


_MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}


def cert_time(text: str) -> float:
    """``"Jun  1 12:00:00 2025 GMT"`` (ssl's notBefore/notAfter) as POSIX seconds.

    ssl.cert_time_to_seconds would import _strptime, locale and calendar (~4 ms).
    """
    try:
        month, day, clock, year, zone = text.split()
        hours, minutes, seconds = (int(part, 10) for part in clock.split(":"))
        y, m, d = int(year, 10), _MONTHS[month], int(day, 10)
    except (ValueError, KeyError):
        raise ValueError(f"unexpected certificate time {text!r}") from None
    if zone != "GMT":
        raise ValueError(f"unexpected certificate time {text!r}")
    # Days from the civil date (Howard Hinnant's algorithm), proleptic Gregorian.
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    return float(days * 86400 + hours * 3600 + minutes * 60 + seconds)


def facts(blob: CertBlob) -> CertFacts:
    der, info = blob
    if info:
        return _facts_from_ssl(der, info)
    return _facts_from_der(der)


def _facts_from_ssl(der: bytes, info: dict[str, Any]) -> CertFacts:
    subject = _rdn(info.get("subject", ()))
    issuer = _rdn(info.get("issuer", ()))
    names = tuple(
        ip_text(value) if kind == "IP Address" else value
        for kind, value in info.get("subjectAltName", ())
        if kind in ("DNS", "IP Address")
    )
    return CertFacts(
        sha256=sha256_hex(der),
        subject_cn=subject.get("commonName"),
        issuer_cn=issuer.get("commonName"),
        names=names,
        not_before=cert_time(info["notBefore"]),
        not_after=cert_time(info["notAfter"]),
        self_issued=info.get("subject") == info.get("issuer"),
    )


def _rdn(rdns: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for rdn in rdns:
        for key, value in rdn:
            out.setdefault(key, value)
    return out


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
    """Per-fingerprint CryptoFacts in a small JSON file of our own; never fatal.

    A certificate never changes under its fingerprint, so entries never go stale: the
    cache only needs a size bound. The file is replaced only when it is missing or is
    a regular file in exactly this cache's format. Anything else (``/etc/passwd``, a
    device, a FIFO, a symlink, a foreign JSON) is left untouched and the cache is off
    for the run; ``note`` says why, for -v. A lost race between two checks costs one
    recomputation, nothing more.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.note: str | None = None  # why the cache is not used, for -v
        self._entries: dict[str, dict[str, Any]] | None = None  # read on first use
        self._writable = False
        self._dirty = False

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._entries is None:
            self._entries = {}
            if self.path:
                self._entries = self._read(self.path)
        return self._entries

    def _read(self, path: str) -> dict[str, dict[str, Any]]:
        from .files import MIB, FileRefused, read_regular

        try:
            data, _info = read_regular(path, MIB)
        except FileRefused as exc:
            if not os.path.lexists(path):
                self._writable = True  # missing: ours to create
            else:
                self.note = f"certificate cache {path} not used: {exc}"
            return {}
        entries = _parse_cache(data)
        if entries is None:
            self.note = f"certificate cache {path} not used: not a check_imap cache, left as it is"
            return {}
        self._writable = True
        return entries

    def get(self, der: bytes) -> CryptoFacts:
        fingerprint = sha256_hex(der)
        entries = self._load()
        entry = entries.get(fingerprint)
        if entry is not None:
            return CryptoFacts(**entry["facts"])  # the shape was checked on load
        computed = crypto_facts(der)
        entries[fingerprint] = {"facts": computed.as_dict(), "seen": int(time.time())}
        self._dirty = True
        return computed

    def save(self) -> None:
        if not (self.path and self._dirty and self._writable and self._entries is not None):
            return
        import json
        import tempfile  # only when the cache changed: ~2 ms of every start-up otherwise

        newest = sorted(self._entries.items(), key=lambda kv: kv[1]["seen"])
        entries = dict(newest[-CACHE_MAX_ENTRIES:])
        directory = os.path.dirname(self.path) or "."
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".certs.", dir=directory)  # O_EXCL, mode 0600
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump({"version": CACHE_VERSION, "certs": entries}, f)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            self.note = f"certificate cache {self.path} not written: {exc.strerror or exc}"


_FACT_TYPES: dict[str, type | tuple[type, ...]] = {
    "key_type": str,
    "key_bits": int,
    "signature_hash": (str, type(None)),
    "has_san": bool,
}


def _parse_cache(data: bytes) -> dict[str, dict[str, Any]] | None:
    """The entries of a cache file in exactly our format, else None (never an exception)."""
    import json

    try:
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("version") != CACHE_VERSION:
        return None
    certs = doc.get("certs")
    if not isinstance(certs, dict) or set(doc) != {"version", "certs"}:
        return None
    for key, entry in certs.items():
        if not (isinstance(key, str) and len(key) == 64 and isinstance(entry, dict)):
            return None
        facts_ = entry.get("facts")
        seen = entry.get("seen")
        if not isinstance(facts_, dict) or set(facts_) != set(_FACT_TYPES):
            return None
        if type(seen) is not int:
            return None
        for name, kind in _FACT_TYPES.items():
            value = facts_[name]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                return None
    return certs


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
