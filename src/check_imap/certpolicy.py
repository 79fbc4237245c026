"""Judging certificates: expiry, pinning, weak crypto, and explaining a failed verification.

Pure functions over ``certs`` facts: no sockets, no nagiosplugin. ``check.py`` maps
their findings to states. Verification itself is OpenSSL's and stays strict; the
explanations here only look at what the server presented after it has failed.
"""

from __future__ import annotations

import time

from .certs import CertBlob, CertFacts, CryptoCache, TLSInfo, facts
from .options import CertPolicy

WEAK_HASHES = ("sha1", "md5")
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256
MAX_NAMES_SHOWN = 5

# OpenSSL X509_V_ERR_* codes we explain in our own words.
ERR_NOT_YET_VALID = 9
ERR_EXPIRED = 10
ERR_SELF_SIGNED = 18
ERR_SELF_SIGNED_IN_CHAIN = 19
ERR_UNKNOWN_ISSUER = (2, 20, 21)
ERR_NAME_MISMATCH = (62, 64)


def date(seconds: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(seconds))


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class Expiry:
    """One certificate's remaining validity, as the output names it."""

    __slots__ = ("cert", "days", "is_leaf")

    def __init__(self, cert: CertFacts, days: int, is_leaf: bool) -> None:
        self.cert = cert
        self.days = days
        self.is_leaf = is_leaf

    def describe(self, now: float) -> str:
        what = "certificate" if self.is_leaf else "chain certificate"
        if now < self.cert.not_before:
            return f"{what} '{self.cert.label}' is not valid before {date(self.cert.not_before)}"
        if now >= self.cert.not_after:
            ago = int((now - self.cert.not_after) // 86400)
            when = f"{plural(ago, 'day')} ago" if ago else "today"
            return f"{what} '{self.cert.label}' expired {when} ({date(self.cert.not_after)})"
        return (
            f"{what} '{self.cert.label}' expires in {plural(self.days, 'day')} "
            f"({date(self.cert.not_after)})"
        )


def chain_facts(tls: TLSInfo) -> tuple[CertFacts, ...]:
    return tuple(facts(blob) for blob in tls.presented)


def leaf_and_earliest(tls: TLSInfo, now: float) -> tuple[Expiry, Expiry] | None:
    """The leaf, and the presented certificate that expires first (maybe the leaf)."""
    chain = chain_facts(tls)
    if not chain:
        return None
    leaf = chain[0]
    earliest = min(chain, key=lambda c: c.not_after)
    return (
        Expiry(leaf, leaf.days_left(now), True),
        Expiry(earliest, earliest.days_left(now), earliest is leaf),
    )


def pin_problem(tls: TLSInfo, pins: tuple[str, ...]) -> str | None:
    """None if any certificate matches any pin (several pins allow a key rollover)."""
    if not pins:
        return None
    present = [facts(blob) for blob in (*tls.presented, *tls.chain)]
    if any(c.sha256 in pins for c in present):
        return None
    leaf = present[0].sha256 if present else "none"
    if tls.leaf_only:
        # Python 3.9's ssl shows only the leaf: a CA pin cannot be checked, not "wrong".
        return f"only the leaf is visible on Python 3.9: pin the leaf (SHA-256 {leaf})"
    return f"no certificate matches --fingerprint (leaf SHA-256 {leaf})"


def weaknesses(tls: TLSInfo, options: CertPolicy, cache: CryptoCache) -> list[str]:
    """Weak keys, weak signatures below the trust anchor, a leaf without SAN."""
    if not options.judges_crypto:
        return []
    blobs: tuple[CertBlob, ...] = tls.chain or tls.presented
    problems: list[str] = []
    for index, blob in enumerate(blobs):
        cert = facts(blob)
        crypto = cache.get(blob[0])
        anchor = index == len(blobs) - 1 and cert.self_issued and index > 0
        name = f"'{cert.label}'"
        if (
            crypto.key_type == "RSA"
            and crypto.key_bits < MIN_RSA_BITS
            and not options.ignore_rsa_size
        ):
            problems.append(f"{name} has a {crypto.key_bits}-bit RSA key")
        if crypto.key_type == "EC" and crypto.key_bits < MIN_EC_BITS and not options.ignore_ec_size:
            problems.append(f"{name} has a {crypto.key_bits}-bit EC key")
        weak_sig = crypto.signature_hash in WEAK_HASHES
        if weak_sig and not anchor and not options.ignore_sig_alg and not cert.self_issued:
            hash_name = (crypto.signature_hash or "").upper().replace("SHA1", "SHA-1")
            problems.append(f"{name} is signed with {hash_name}")
        if index == 0 and not crypto.has_san and not options.allow_empty_san:
            problems.append(f"{name} has no subjectAltName")
    return problems


def explain_verify_failure(
    code: int, default: str, presented: TLSInfo | None, name: str, now: float
) -> str:
    """A failed verification in one clear line, using what the server presented."""
    chain = chain_facts(presented) if presented is not None else ()
    if not chain:
        return default
    leaf = chain[0]
    if code == ERR_EXPIRED:
        expired = [c for c in chain if c.not_after < now] or [leaf]
        return Expiry(expired[0], expired[0].days_left(now), expired[0] is leaf).describe(now)
    if code == ERR_NOT_YET_VALID:
        early = [c for c in chain if c.not_before > now] or [leaf]
        return Expiry(early[0], early[0].days_left(now), early[0] is leaf).describe(now)
    if code in ERR_NAME_MISMATCH:
        shown = ", ".join(leaf.names[:MAX_NAMES_SHOWN]) or f"CN {leaf.subject_cn or '(none)'}"
        more = len(leaf.names) - MAX_NAMES_SHOWN
        if more > 0:
            shown += f" and {more} more"
        return f"certificate '{leaf.label}' is not valid for {name}: it covers {shown}"
    if code == ERR_SELF_SIGNED:
        return f"self-signed certificate '{leaf.label}' is not trusted"
    if code == ERR_SELF_SIGNED_IN_CHAIN:
        root = next((c for c in reversed(chain) if c.self_issued), chain[-1])
        return f"certificate '{leaf.label}' chains to untrusted self-signed '{root.label}'"
    if code in ERR_UNKNOWN_ISSUER:
        # Follow the presented chain as far as it links up; its end names the missing issuer.
        top = leaf
        for cert in chain[1:]:
            if cert.subject_cn != top.issuer_cn or top.self_issued:
                break
            top = cert
        return f"certificate '{leaf.label}' has an unknown issuer '{top.issuer_cn or '(no CN)'}'"
    return default
