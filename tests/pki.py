"""Throwaway PKI for the tests, made with cryptography: CA, intermediates, leaves.

Dates, key types and sizes, signature hashes and SANs are all controllable, so the
same helper serves the fake server and the real Dovecot instances.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def days(n: float) -> dt.timedelta:
    return dt.timedelta(days=n)


@dataclass
class Cert:
    cert: x509.Certificate
    key: PrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def sha256(self) -> str:
        return self.cert.fingerprint(hashes.SHA256()).hex()


def make_key(kind: str = "rsa", size: int = 2048) -> PrivateKey:
    if kind == "ec":
        curve = {256: ec.SECP256R1(), 384: ec.SECP384R1(), 192: ec.SECP192R1()}[size]
        return ec.generate_private_key(curve)
    return rsa.generate_private_key(public_exponent=65537, key_size=size)


_KEY_CACHE: dict[tuple[str, int], PrivateKey] = {}


def cached_key(kind: str = "rsa", size: int = 2048) -> PrivateKey:
    """RSA generation is slow; tests may share keys as long as certificates differ."""
    if (kind, size) not in _KEY_CACHE:
        _KEY_CACHE[(kind, size)] = make_key(kind, size)
    return _KEY_CACHE[(kind, size)]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(
    cn: str = "check_imap test CA",
    *,
    issuer: Cert | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    key: PrivateKey | None = None,
    hash_alg: hashes.HashAlgorithm | None = None,
) -> Cert:
    """A root (issuer None) or an intermediate CA."""
    key = key or make_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - days(1))
        .not_valid_after(not_after or NOW + days(3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    signer = issuer.key if issuer else key
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False
        )
    cert = builder.sign(signer, hash_alg or hashes.SHA256())
    return Cert(cert, key)


def make_leaf(
    issuer: Cert,
    names: tuple[str, ...] = ("localhost", "127.0.0.1", "::1"),
    *,
    cn: str | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    key: PrivateKey | None = None,
    hash_alg: hashes.HashAlgorithm | None = None,
    san: bool = True,
) -> Cert:
    """A server certificate for ``names`` (DNS names and IP addresses) signed by ``issuer``."""
    key = key or cached_key()
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn or names[0]))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - days(1))
        .not_valid_after(not_after or NOW + days(365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False
        )
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(issuer.key, hash_alg or hashes.SHA256())
    return Cert(cert, key)


def write_server_files(
    directory: Path, name: str, leaf: Cert, chain: tuple[Cert, ...] = ()
) -> tuple[Path, Path]:
    """Write ``name.crt`` (leaf + chain) and ``name.key``; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    crt = directory / f"{name}.crt"
    key = directory / f"{name}.key"
    crt.write_bytes(leaf.pem + b"".join(c.pem for c in chain))
    key.write_bytes(leaf.key_pem)
    key.chmod(0o600)
    return crt, key


def write_ca(directory: Path, ca: Cert, name: str = "ca.crt") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(ca.pem)
    return path
