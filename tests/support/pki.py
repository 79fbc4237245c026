# SPDX-License-Identifier: MIT
"""Throwaway PKI for the tests, made with cryptography: CA, intermediates, leaves.

Dates, key types and sizes, signature hashes and SANs are all controllable, so the
same helper serves the fake server and the real Dovecot instances.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, cast

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
        curve = {256: ec.SECP256R1(), 384: ec.SECP384R1(), 224: ec.SECP224R1()}[size]
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
    cert = builder.sign(signer, cast(Any, hash_alg or hashes.SHA256()))
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
    cert = builder.sign(issuer.key, cast(Any, hash_alg or hashes.SHA256()))
    return Cert(cert, key)


REAL_NAME = "imap.test"
"""The one name of :func:`name_only_leaf`: a real-looking host name (RFC 2606 ``.test``)
that a certificate can carry while the tests connect to 127.0.0.1."""


def name_only_leaf(issuer: Cert, name: str = REAL_NAME, **kwargs: Any) -> Cert:
    """A server certificate for ``name`` alone: no localhost, no 127.0.0.1, no ::1.

    A check that connects to 127.0.0.1 passes against it only when it sends and
    verifies ``name`` (``--sni``, or ``-H`` with the name): what a deployment against a
    real server needs, and what a certificate for localhost would hide.
    """
    return make_leaf(issuer, (name,), **kwargs)


def _utc(cert: Cert | x509.Certificate, attr: str) -> dt.datetime:
    """``not_valid_*`` as an aware UTC datetime on every cryptography (``*_utc``: 42+)."""
    x = cert.cert if isinstance(cert, Cert) else cert
    aware: dt.datetime | None = getattr(x, f"{attr}_utc", None)
    if aware is not None:
        return aware
    naive: dt.datetime = getattr(x, attr)
    return naive.replace(tzinfo=dt.timezone.utc)


def not_after(cert: Cert | x509.Certificate) -> dt.datetime:
    """End of validity, aware UTC (works with cryptography older than 42 too)."""
    return _utc(cert, "not_valid_after")


def not_before(cert: Cert | x509.Certificate) -> dt.datetime:
    """Start of validity, aware UTC (works with cryptography older than 42 too)."""
    return _utc(cert, "not_valid_before")


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


def resign_with_openssl(cert: Cert, issuer: Cert, digest: str, directory: Path) -> Cert:
    """Re-sign ``cert`` with a digest cryptography refuses (SHA-1, MD5), via the openssl CLI."""
    import subprocess

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "in.crt").write_bytes(cert.pem)
    (directory / "in.key").write_bytes(cert.key_pem)
    (directory / "ca.crt").write_bytes(issuer.pem)
    (directory / "ca.key").write_bytes(issuer.key_pem)
    (directory / "ext.cnf").write_text(
        "subjectAltName="
        + ",".join(
            ("IP:" if n.value.__class__.__name__.startswith("IPv") else "DNS:") + str(n.value)
            for n in cert.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        )
        + "\n"
    )
    days_left = max(1, (not_after(cert) - NOW).days)
    subprocess.run(
        [
            "openssl",
            "x509",
            "-in",
            str(directory / "in.crt"),
            "-signkey",
            str(directory / "in.key"),
            "-x509toreq",
            "-out",
            str(directory / "in.csr"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    subprocess.run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(directory / "in.csr"),
            "-CA",
            str(directory / "ca.crt"),
            "-CAkey",
            str(directory / "ca.key"),
            "-set_serial",
            "4242",
            f"-{digest}",
            "-days",
            str(days_left),
            "-extfile",
            str(directory / "ext.cnf"),
            "-out",
            str(directory / "out.crt"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    signed = x509.load_pem_x509_certificate((directory / "out.crt").read_bytes())
    return Cert(signed, cert.key)


def openssl_root(directory: Path, cn: str, digest: str) -> Cert:
    """A self-signed CA made by the openssl CLI, signed with ``digest`` (e.g. sha1)."""
    import subprocess

    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    directory.mkdir(parents=True, exist_ok=True)
    key, crt = directory / "root.key", directory / "root.crt"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-subj",
            f"/CN={cn}",
            "-days",
            "3650",
            f"-{digest}",
            "-addext",
            "basicConstraints=critical,CA:true",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    private = load_pem_private_key(key.read_bytes(), None)
    assert isinstance(private, rsa.RSAPrivateKey)
    return Cert(x509.load_pem_x509_certificate(crt.read_bytes()), private)
