"""TLS handshake failures in words: OpenSSL reason codes -> what the admin should know.

Pure text, no ssl import: transport.py passes the reason and what a diagnostic probe
learnt (the version and cipher the server settles for when we allow anything).
"""

from __future__ import annotations

# The other side is not speaking TLS at all.
NOT_TLS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "PACKET_LENGTH_TOO_LONG",
        "RECORD_LAYER_FAILURE",
        "HTTP_REQUEST",
        "UNKNOWN_PROTOCOL",
        "RECORD_TOO_LARGE",
    }
)

# We could not agree on a version or cipher: worth a probe that allows anything.
NO_AGREEMENT = frozenset(
    {
        "UNSUPPORTED_PROTOCOL",
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "NO_PROTOCOLS_AVAILABLE",
        "SSLV3_ALERT_HANDSHAKE_FAILURE",
        "NO_SHARED_CIPHER",
        "NO_CIPHERS_AVAILABLE",
        "NO_SUITABLE_SIGNATURE_ALGORITHM",
        "UNSAFE_LEGACY_RENEGOTIATION_DISABLED",
    }
)

_HINTS = {
    "TLSV1_UNRECOGNIZED_NAME": "the server does not know the name {name} (check --sni)",
    "TLSV1_ALERT_UNRECOGNIZED_NAME": "the server does not know the name {name} (check --sni)",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the server requires a client certificate",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the server rejected the handshake (bad certificate alert)",
    "DH_KEY_TOO_SMALL": "the server's Diffie-Hellman key is too small (weak DH parameters)",
    "TLSV1_ALERT_INTERNAL_ERROR": "the server reported an internal TLS error",
    "TLSV1_ALERT_INSUFFICIENT_SECURITY": "the server wants stronger ciphers than offered",
    "UNSAFE_LEGACY_RENEGOTIATION_DISABLED": "the server lacks secure renegotiation (RFC 5746)",
}

_OFFERED = {"1.2": "TLS 1.2 or newer", "1.3": "TLS 1.3"}


def explain(
    reason: str,
    *,
    tls: bool,
    min_tls: str,
    name: str,
    settled: tuple[str, str] | None = None,
) -> str:
    """One line for a failed handshake; ``settled``: (version, cipher) of the probe."""
    wanted = _OFFERED.get(min_tls, f"TLS {min_tls}")
    if reason in NOT_TLS:
        hint = "plain IMAP port? try without --tls" if tls else "not TLS after STARTTLS"
        return f"TLS handshake failed: the server does not speak TLS ({hint})"
    if reason in NO_AGREEMENT:
        if settled is not None:
            version, cipher = settled
            if _older(version, min_tls):
                return (
                    f"TLS handshake failed: the server offers only {_spell(version)}; "
                    f"this check requires {wanted} (see --min-tls)"
                )
            return (
                f"TLS handshake failed: the server settles only for {cipher} "
                f"({_spell(version)}), which OpenSSL's default security level refuses"
            )
        if reason in ("UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION"):
            return f"TLS handshake failed: the server does not support {wanted} (see --min-tls)"
        return f"TLS handshake failed: no TLS version and cipher in common ({reason})"
    if reason in ("UNEXPECTED_EOF_WHILE_READING", "EOF"):
        return "TLS handshake failed: connection closed by the server"
    known = _HINTS.get(reason)
    if known is not None:
        return f"TLS handshake failed: {known.format(name=name)} ({reason})"
    return f"TLS handshake failed: {reason}"


def _older(version: str, min_tls: str) -> bool:
    order = ["SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
    wanted = "TLSv1.3" if min_tls == "1.3" else "TLSv1.2"
    return version in order and order.index(version) < order.index(wanted)


def _spell(version: str) -> str:
    """``TLSv1.1`` -> ``TLS 1.1``; ``TLSv1`` -> ``TLS 1.0``."""
    if version == "TLSv1":
        return "TLS 1.0"
    return version.replace("TLSv", "TLS ")
