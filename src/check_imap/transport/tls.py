"""TLS: the run's contexts, each handshake, and what the server's certificates were."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import time

from .. import tlsreasons
from ..certs import CertBlob, TLSInfo
from ..options import Target, UsageError
from ..steps import Step, waiting
from .session import (
    CertificateError,
    Deadline,
    HandshakeFailure,
    NetworkError,
    NetworkTimeout,
    Session,
    charge,
    strerror,
)

# X509_V_ERR_EE_KEY_TOO_SMALL, _CA_KEY_TOO_SMALL, _CA_MD_TOO_WEAK: OpenSSL's security
# level refused a weak key or digest; our certificate policy makes that a WARNING.
WEAK_CRYPTO = frozenset({66, 67, 68})
# X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT(_LOCALLY): with the hashed directory, try the bundle.
UNKNOWN_ISSUER = frozenset({2, 20})
# What a non-blocking read of a TLS socket raises when there is nothing to read yet.
WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


def _hashed_dir(path: str | None) -> bool:
    """Whether ``path`` is an OpenSSL hashed directory (``5ad8a5d6.0`` entries)."""
    if not path:
        return False
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                name = entry.name
                if len(name) >= 10 and name[8] == "." and name[9:].isdigit():
                    try:
                        int(name[:8], 16)
                    except ValueError:
                        continue
                    return True
    except OSError:
        return False
    return False


class Contexts:
    """The run's TLS contexts, each made once, on first use, and shared by all addresses.

    Without --ca-file the system store is read the fast way: OpenSSL's hashed directory
    loads only the issuer it needs, where the bundle file would be parsed whole (~20 ms).
    A chain the directory cannot complete is retried against the bundle, so the
    verdict is the same as with the full default store.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self._made: dict[str, ssl.SSLContext] = {}
        paths = ssl.get_default_verify_paths()
        self.capath = paths.capath if _hashed_dir(paths.capath) else None
        self.cafile = paths.cafile

    def get(self, kind: str) -> ssl.SSLContext:
        ctx = self._made.get(kind)
        if ctx is None:
            ctx = self._made[kind] = self._make(kind)
        return ctx

    @property
    def can_retry_bundle(self) -> bool:
        return self.target.ca_data is None and self.capath is not None and bool(self.cafile)

    def _make(self, kind: str) -> ssl.SSLContext:
        target = self.target
        unverified = target.insecure or kind in ("insecure", "probe")
        try:
            if unverified:  # nothing to trust: no store to load
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            elif target.ca_data is not None:
                ctx = ssl.create_default_context(cadata=target.ca_data)
            elif kind == "bundle" or self.capath is None:
                ctx = ssl.create_default_context()
            else:
                ctx = ssl.create_default_context(capath=self.capath)
        except ssl.SSLError as exc:
            raise UsageError(f"--ca-file {target.ca_file}: no usable certificate ({exc})") from None
        # Debian's 3.11 and Python 3.9 set this by default: a close without close_notify
        # would then read as a clean EOF, and "closed without reply" is what we must see.
        ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
        ctx.minimum_version = (
            ssl.TLSVersion.TLSv1_3 if target.min_tls == "1.3" else ssl.TLSVersion.TLSv1_2
        )
        if kind == "weak":
            # Chain, dates and name stay verified; key and digest strength are left to
            # our own policy, which reports them as WARNING rather than failing.
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        if kind == "probe":
            # Only to learn what an old server settles for; never trusted, never judged.
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            with contextlib.suppress(ssl.SSLError):
                ctx.set_ciphers("ALL:@SECLEVEL=0")
        return ctx


def explain(target: Target, code: str, settled: tuple[str, str] | None) -> str:
    return tlsreasons.explain(
        code, tls=target.tls, min_tls=target.min_tls, name=target.server_name, settled=settled
    )


def start_tls(
    sock: socket.socket, ctx: ssl.SSLContext, target: Target, deadline: Deadline, session: Session
) -> ssl.SSLSocket:
    start = time.monotonic()
    name = target.server_name
    tls = ctx.wrap_socket(
        sock,
        server_hostname=name,
        do_handshake_on_connect=False,
        suppress_ragged_eofs=False,  # so a missing close_notify is seen and reported
    )
    try:
        tls.settimeout(deadline.remaining(Step.TLS))
        tls.do_handshake()
    except socket.timeout:
        deadline.remaining(Step.TLS)
        reason = f"timeout after {deadline.seconds:g}s {waiting(Step.TLS)}"
        raise NetworkTimeout(reason, Step.TLS) from None
    except ssl.SSLCertVerificationError as exc:
        raise CertificateError(verify_reason(exc, name), Step.TLS, exc.verify_code) from None
    except ssl.SSLError as exc:
        code = str(exc.reason or "")
        if isinstance(exc, ssl.SSLEOFError):
            code = "EOF"
        reason = explain(target, code or str(exc), None)
        raise HandshakeFailure(reason, Step.TLS, code) from None
    except OSError as exc:
        raise NetworkError(f"TLS handshake failed: {strerror(exc)}", Step.TLS) from None
    finally:
        charge(session, Step.TLS, start)
    session.tls = tls_info(tls, verified=ctx.verify_mode != ssl.CERT_NONE)
    return tls


def verify_reason(exc: ssl.SSLCertVerificationError, name: str) -> str:
    message = str(exc.verify_message or exc.reason or exc)
    if exc.verify_code in (62, 64):  # hostname / IP address mismatch
        return f"certificate is not valid for {name}"
    return f"certificate verify failed: {message.rstrip('.')}"


def tls_info(tls: ssl.SSLSocket, verified: bool) -> TLSInfo:
    cipher = tls.cipher() or ("", "", 0)
    presented = chain_of(tls, "get_unverified_chain")
    leaf_only = not presented
    if leaf_only:  # Python 3.9: the leaf is all ssl gives us
        der = tls.getpeercert(binary_form=True)
        presented = ((der, tls.getpeercert() if verified else None),) if der else ()
    chain = chain_of(tls, "get_verified_chain") if verified else ()
    return TLSInfo(
        version=tls.version() or "",
        cipher=cipher[0],
        bits=cipher[2] or 0,
        verified=verified,
        chain=chain or presented,
        presented=presented,
        leaf_only=leaf_only,
    )


def chain_of(tls: ssl.SSLSocket, method: str) -> tuple[CertBlob, ...]:
    """The chain as (DER, decoded dict) pairs, leaf first; () where Python hides it.

    The ssl object's methods (private since 3.10) return Certificate objects that
    decode themselves; 3.13's public SSLSocket methods return bare DER instead.
    """
    sslobj = getattr(tls, "_sslobj", None)
    getter = getattr(sslobj, method, None)
    try:
        if getter is not None:
            certs = getter() or []
            return tuple((c.public_bytes(_DER), c.get_info()) for c in certs)
        public = getattr(tls, method, None)
        if public is not None:
            return tuple((der, None) for der in public() or [])
    except (ssl.SSLError, ValueError, AttributeError):
        pass
    return ()


_DER = getattr(getattr(ssl, "_ssl", None), "ENCODING_DER", 2)
