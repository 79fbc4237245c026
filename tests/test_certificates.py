"""Certificate and TLS policy, in both implicit TLS and STARTTLS, against generated chains."""

from __future__ import annotations

import contextlib
import ipaddress
import re
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from check_imap.text import ip_text
from support.assertions import LEAF_ONLY
from support.fakeserver import Conn, FakeServer, serve, server_context
from support.pki import (
    NOW,
    Cert,
    days,
    make_ca,
    make_key,
    make_leaf,
    not_after,
    not_before,
    openssl_root,
    resign_with_openssl,
    write_ca,
    write_server_files,
)
from support.processes import Run, check_imap

NUM = r"\d+\.\d+"
DATE = r"\d{4}-\d\d-\d\d"
GREETING = b"* OK [CAPABILITY IMAP4rev1 STARTTLS] certificate test server\r\n"
MODES = ["--tls", "--starttls"]


def expected_date(cert: Cert) -> str:
    return not_after(cert).strftime("%Y-%m-%d")


def left(cert: Cert) -> int:
    """Days left as check_imap counts them: whole days, truncated."""
    return int((not_after(cert).timestamp() - time.time()) / 86400)


class Chain:
    """A root, an intermediate and a leaf, written as server files."""

    def __init__(self, directory: Path, **leaf_args: object) -> None:
        self.root = ROOT
        self.inter = INTER
        self.leaf = make_leaf(self.inter, **leaf_args)  # type: ignore[arg-type]
        self.files = write_server_files(directory, "leaf", self.leaf, (self.inter,))


ROOT = make_ca("Test Root CA")
INTER = make_ca("Test Intermediate CA", issuer=ROOT)


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_ca(tmp_path_factory.mktemp("ca"), ROOT))


@contextlib.contextmanager
def tls_server(mode: str, ctx: ssl.SSLContext) -> Iterator[FakeServer]:
    if mode == "--tls":

        def implicit(conn: Conn) -> None:
            conn.send(GREETING)
            conn.logout()

        with serve(implicit, ctx) as srv:
            yield srv
    else:

        def starttls(conn: Conn) -> None:
            conn.send(GREETING)
            tag = conn.expect("STARTTLS")
            conn.send(f"{tag} OK go\r\n".encode())
            conn.start_tls(ctx)
            conn.logout()

        with serve(starttls) as srv:
            yield srv


def run_against(chain: Chain, mode: str, ca: str, *args: str, host: str = "localhost") -> Run:
    ctx = server_context(str(chain.files[0]), str(chain.files[1]))
    with tls_server(mode, ctx) as srv:
        result = check_imap("-H", host, "-p", str(srv.port), mode, "--ca-file", ca, *args)
    assert result.err == ""
    return result


def status(result: Run) -> str:
    """The status text between the target and the perfdata."""
    text = result.first_line.split(" | ")[0]
    return re.sub(r"^IMAP \w+ - [^ ]+?:\d+:? ", "", text)


# ----------------------------------------------------------------- expiry


@pytest.mark.skipif(LEAF_ONLY, reason="Python 3.9 shows only the leaf: no chain checks")
@pytest.mark.parametrize("mode", MODES)
def test_ten_days_left_warns_naming_certificate_and_date(
    tmp_path: Path, mode: str, ca_file: str
) -> None:
    chain = Chain(tmp_path, not_after=NOW + days(10) + days(0.5))
    result = run_against(chain, mode, ca_file, "--cert-warning", "30")
    assert result.rc == 1
    assert (
        status(result)
        == f"certificate 'localhost' expires in 10 days ({expected_date(chain.leaf)})"
    )
    assert re.search(r" cert_days=10;30:;7: chain_days=10;30:;7: ", result.first_line)


@pytest.mark.parametrize("mode", MODES)
def test_five_days_left_is_critical_by_default(tmp_path: Path, mode: str, ca_file: str) -> None:
    chain = Chain(tmp_path, not_after=NOW + days(5) + days(0.5))
    result = run_against(chain, mode, ca_file)
    assert result.rc == 2
    assert (
        status(result) == f"certificate 'localhost' expires in 5 days ({expected_date(chain.leaf)})"
    )


@pytest.mark.skipif(LEAF_ONLY, reason="Python 3.9 shows only the leaf: no chain checks")
@pytest.mark.parametrize("mode", MODES)
def test_healthy_chain_names_leaf_and_date(tmp_path: Path, mode: str, ca_file: str) -> None:
    chain = Chain(tmp_path)
    result = run_against(chain, mode, ca_file)
    assert result.rc == 0
    assert re.fullmatch(
        rf"answered in {NUM}s, TLSv1\.3, certificate 'localhost' expires {expected_date(chain.leaf)}, "
        r"logout: BYE \+ tagged OK",
        status(result),
    )
    inter_days = left(INTER)
    assert (
        f" cert_days={left(chain.leaf)};21:;7: chain_days={min(left(chain.leaf), inter_days)};21:;7: "
        in result.first_line
    )


@pytest.mark.skipif(LEAF_ONLY, reason="Python 3.9 shows only the leaf: no chain checks")
@pytest.mark.parametrize("mode", MODES)
def test_intermediate_expiring_first_is_judged(tmp_path: Path, mode: str, ca_file: str) -> None:
    inter = make_ca("Short Intermediate", issuer=ROOT, not_after=NOW + days(15) + days(0.5))
    leaf = make_leaf(inter)
    files = write_server_files(tmp_path, "leaf", leaf, (inter,))
    ctx = server_context(str(files[0]), str(files[1]))
    with tls_server(mode, ctx) as srv:
        result = check_imap("-H", "localhost", "-p", str(srv.port), mode, "--ca-file", ca_file)
    assert result.rc == 1
    assert (
        status(result)
        == f"chain certificate 'Short Intermediate' expires in 15 days ({expected_date(inter)})"
    )
    assert f" cert_days={left(leaf)};21:;7: chain_days=15;21:;7: " in result.first_line


@pytest.mark.parametrize("mode", MODES)
def test_expired_leaf_says_how_long_ago(tmp_path: Path, mode: str, ca_file: str) -> None:
    chain = Chain(tmp_path, not_before=NOW - days(100), not_after=NOW - days(12) - days(0.5))
    result = run_against(chain, mode, ca_file)
    assert result.rc == 2
    assert result.first_line == (
        f"{result.first_line.split(': ')[0]}: certificate 'localhost' expired 12 days ago ({expected_date(chain.leaf)})"
    )


@pytest.mark.parametrize("mode", MODES)
def test_not_yet_valid_is_critical(tmp_path: Path, mode: str, ca_file: str) -> None:
    chain = Chain(tmp_path, not_before=NOW + days(2), not_after=NOW + days(300))
    when = not_before(chain.leaf).strftime("%Y-%m-%d")
    for extra in ((), ("--insecure",)):
        args = extra if extra else ()
        ca = () if extra else ("--ca-file", ca_file)
        ctx = server_context(str(chain.files[0]), str(chain.files[1]))
        with tls_server(mode, ctx) as srv:
            result = check_imap("-H", "localhost", "-p", str(srv.port), mode, *ca, *args)
        assert result.rc == 2, result.out
        assert status(result).startswith(f"certificate 'localhost' is not valid before {when}")


# ----------------------------------------------------------------- verification failures


@pytest.mark.parametrize("mode", MODES)
def test_hostname_mismatch_lists_covered_names(tmp_path: Path, mode: str, ca_file: str) -> None:
    chain = Chain(tmp_path, names=("mail.example.org", "imap.example.org", "192.0.2.7"))
    result = run_against(chain, mode, ca_file)
    assert result.rc == 2
    assert status(result) == (
        "certificate 'mail.example.org' is not valid for localhost: "
        "it covers mail.example.org, imap.example.org, 192.0.2.7"
    )


@pytest.mark.parametrize("mode", MODES)
def test_ip_address_sans_are_judged_when_host_is_an_ip(
    tmp_path: Path, mode: str, ca_file: str
) -> None:
    with_ip = Chain(tmp_path / "a", names=("localhost", "127.0.0.1"))
    assert run_against(with_ip, mode, ca_file, host="127.0.0.1").rc == 0
    without_ip = Chain(tmp_path / "b", names=("localhost",))
    result = run_against(without_ip, mode, ca_file, host="127.0.0.1")
    assert result.rc == 2
    assert (
        status(result) == "certificate 'localhost' is not valid for 127.0.0.1: it covers localhost"
    )


@pytest.mark.parametrize("mode", MODES)
def test_self_signed_leaf(tmp_path: Path, mode: str, ca_file: str) -> None:
    lonely = make_ca("localhost")  # a self-signed certificate, as many appliances ship
    files = write_server_files(tmp_path, "self", lonely)
    ctx = server_context(str(files[0]), str(files[1]))
    with tls_server(mode, ctx) as srv:
        result = check_imap("-H", "localhost", "-p", str(srv.port), mode, "--ca-file", ca_file)
    assert result.rc == 2
    assert status(result) == "self-signed certificate 'localhost' is not trusted"


@pytest.mark.skipif(LEAF_ONLY, reason="Python 3.9 shows only the leaf: no chain checks")
@pytest.mark.parametrize("mode", MODES)
def test_unknown_issuer_is_named(tmp_path: Path, mode: str) -> None:
    chain = Chain(tmp_path)
    other = str(write_ca(tmp_path, make_ca("Unrelated CA"), "other.crt"))
    result = run_against(chain, mode, other)
    assert result.rc == 2
    assert status(result) == "certificate 'localhost' has an unknown issuer 'Test Root CA'"


# ----------------------------------------------------------------- pinning


@pytest.mark.skipif(LEAF_ONLY, reason="Python 3.9 shows only the leaf: no chain checks")
@pytest.mark.parametrize("mode", MODES)
def test_fingerprint_pins_leaf_or_chain(tmp_path: Path, mode: str, ca_file: str) -> None:
    chain = Chain(tmp_path)
    wrong = "ab" * 32
    assert run_against(chain, mode, ca_file, "--fingerprint", chain.leaf.sha256).rc == 0
    upper_colons = ":".join(re.findall("..", INTER.sha256.upper()))
    assert run_against(chain, mode, ca_file, "--fingerprint", upper_colons).rc == 0
    rollover = run_against(
        chain, mode, ca_file, "--fingerprint", wrong, "--fingerprint", chain.leaf.sha256
    )
    assert rollover.rc == 0
    result = run_against(chain, mode, ca_file, "--fingerprint", wrong)
    assert result.rc == 2
    assert (
        status(result) == f"no certificate matches --fingerprint (leaf SHA-256 {chain.leaf.sha256})"
    )


# ----------------------------------------------------------------- TLS policy


@pytest.mark.parametrize("mode", MODES)
def test_min_tls(tmp_path: Path, mode: str, ca_file: str) -> None:
    chain = Chain(tmp_path)
    ctx = server_context(str(chain.files[0]), str(chain.files[1]))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with tls_server(mode, ctx) as srv:
        ok = check_imap("-H", "localhost", "-p", str(srv.port), mode, "--ca-file", ca_file)
        strict = check_imap(
            "-H", "localhost", "-p", str(srv.port), mode, "--ca-file", ca_file, "--min-tls", "1.3"
        )
    assert ok.rc == 0
    assert ", TLSv1.2, " in ok.first_line
    assert strict.rc == 2
    assert status(strict) == (
        "TLS handshake failed: the server offers only TLS 1.2; "
        "this check requires TLS 1.3 (see --min-tls)"
    )


# ----------------------------------------------------------------- weak crypto


def serve_chain(
    mode: str, leaf: Cert, chain: tuple[Cert, ...], directory: Path, ca: str, *args: str
) -> Run:
    files = write_server_files(directory, "leaf", leaf, chain)
    ctx = server_context(str(files[0]), str(files[1]))
    with tls_server(mode, ctx) as srv:
        result = check_imap("-H", "localhost", "-p", str(srv.port), mode, "--ca-file", ca, *args)
    assert result.err == ""
    return result


@pytest.mark.parametrize("mode", MODES)
def test_small_rsa_key_warns_with_opt_out(tmp_path: Path, mode: str, ca_file: str) -> None:
    leaf = make_leaf(INTER, key=make_key("rsa", 1024))
    result = serve_chain(mode, leaf, (INTER,), tmp_path, ca_file)
    assert result.rc == 1, result.out
    assert status(result) == "weak crypto: 'localhost' has a 1024-bit RSA key"
    assert serve_chain(mode, leaf, (INTER,), tmp_path, ca_file, "--ignore-rsa-size").rc == 0


@pytest.mark.skipif(LEAF_ONLY, reason="Python 3.9 shows only the leaf: no chain checks")
@pytest.mark.parametrize("mode", MODES)
def test_small_ec_key_in_chain_warns_with_opt_out(tmp_path: Path, mode: str, ca_file: str) -> None:
    # TLS 1.3 cannot even sign with a P-224 leaf; a P-224 intermediate is what one meets.
    ec_inter = make_ca("EC Intermediate", issuer=ROOT, key=make_key("ec", 224))
    leaf = make_leaf(ec_inter)
    result = serve_chain(mode, leaf, (ec_inter,), tmp_path, ca_file)
    assert result.rc == 1, result.out
    assert status(result) == "weak crypto: 'EC Intermediate' has a 224-bit EC key"
    assert serve_chain(mode, leaf, (ec_inter,), tmp_path, ca_file, "--ignore-ec-size").rc == 0


@pytest.mark.parametrize("mode", MODES)
def test_sha1_signature_warns_with_opt_out(tmp_path: Path, mode: str, ca_file: str) -> None:
    leaf = resign_with_openssl(make_leaf(INTER), INTER, "sha1", tmp_path / "sign")
    result = serve_chain(mode, leaf, (INTER,), tmp_path, ca_file)
    assert result.rc == 1, result.out
    assert status(result) == "weak crypto: 'localhost' is signed with SHA-1"
    assert serve_chain(mode, leaf, (INTER,), tmp_path, ca_file, "--ignore-sig-alg").rc == 0


def test_sha1_self_signature_of_the_trust_anchor_is_fine(tmp_path: Path) -> None:
    old_root = openssl_root(tmp_path / "root", "Old SHA-1 Root", "sha1")
    leaf = make_leaf(old_root)
    ca = str(write_ca(tmp_path, old_root, "old-root.crt"))
    result = serve_chain("--tls", leaf, (), tmp_path, ca)
    assert result.rc == 0, result.out


@pytest.mark.parametrize("mode", MODES)
def test_leaf_without_san(tmp_path: Path, mode: str) -> None:
    # Without a SAN no host name can verify, so this is only seen with --insecure.
    chain = Chain(tmp_path, san=False)
    ctx = server_context(str(chain.files[0]), str(chain.files[1]))
    with tls_server(mode, ctx) as srv:
        result = check_imap("-H", "localhost", "-p", str(srv.port), mode, "--insecure")
        quiet = check_imap(
            "-H", "localhost", "-p", str(srv.port), mode, "--insecure", "--allow-empty-san"
        )
    assert result.rc == 1
    assert (
        status(result)
        == "weak crypto: 'localhost' has no subjectAltName (certificate NOT verified: --insecure)"
    )
    assert quiet.rc == 0


@pytest.mark.skipif(LEAF_ONLY, reason="Python 3.9 shows only the leaf: no chain checks")
def test_weak_crypto_findings_are_cached_per_fingerprint(tmp_path: Path, ca_file: str) -> None:
    chain = Chain(tmp_path)
    cache = tmp_path / "cache" / "certs.json"
    first = run_against(chain, "--tls", ca_file, "--cert-cache", str(cache))
    assert first.rc == 0
    import json

    data = json.loads(cache.read_text())
    assert data["version"] == 1
    assert set(data["certs"]) == {chain.leaf.sha256, INTER.sha256, ROOT.sha256}
    assert data["certs"][chain.leaf.sha256]["facts"] == {
        "key_type": "RSA",
        "key_bits": 2048,
        "signature_hash": "sha256",
        "has_san": True,
    }
    # A cached verdict is used as is: poison it and watch the check believe the cache.
    data["certs"][chain.leaf.sha256]["facts"]["key_bits"] = 512
    cache.write_text(json.dumps(data))
    second = run_against(chain, "--tls", ca_file, "--cert-cache", str(cache))
    assert second.rc == 1
    assert status(second) == "weak crypto: 'localhost' has a 512-bit RSA key"


_WORD = st.one_of(st.just(0), st.just(1), st.just(0xFFFF), st.integers(0, 0xFFFF))


@settings(max_examples=2000, deadline=None)
@given(st.lists(_WORD, min_size=8, max_size=8))
def test_ipv6_san_reads_as_ipaddress_writes_it(words: list[int]) -> None:
    """certs compresses ssl's 0:0:0:0:0:0:0:1 itself (no ipaddress import): same text."""
    spelled = ":".join(f"{word:X}" for word in words)  # as ssl's getpeercert() spells it
    assert ip_text(spelled) == str(ipaddress.ip_address(spelled))


@pytest.mark.parametrize(
    "value", ["127.0.0.1", "0:0:0:0:0:FFFF:C000:207", "fe80::1", "::", "1:2:3", "x:0:0:0:0:0:0:1"]
)
def test_ip_text_falls_back_to_ipaddress(value: str) -> None:
    try:
        want = str(ipaddress.ip_address(value))
    except ValueError:
        want = value
    assert ip_text(value) == want
