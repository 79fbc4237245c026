"""#13: the system trust store read the fast way, with the same verdicts.

Without --ca-file, check_imap verifies against OpenSSL's hashed directory (only the
issuer it needs is loaded) and retries against the bundle file when the directory
cannot complete the chain. SSL_CERT_DIR and SSL_CERT_FILE point OpenSSL at stores of
our own, so each case is exact: a CA only in the directory, only in the bundle, or in
neither.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from support.assertions import NUM, expect
from support.fakeserver import Conn, serve, server_context
from support.pki import make_ca, make_leaf, write_ca, write_server_files
from support.processes import run

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def hashed_dir(directory: Path, ca_file: Path) -> Path:
    """An OpenSSL hashed directory holding ``ca_file`` as ``<subject hash>.0``."""
    directory.mkdir()
    digest = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(ca_file)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    shutil.copy(ca_file, directory / f"{digest}.0")
    return directory


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("stores")
    ours, other = make_ca("our test CA"), make_ca("some other CA")
    crt, key = write_server_files(d, "imap", make_leaf(ours, ("imap.test",)), ())
    our_ca = write_ca(d, ours, "ours.pem")
    other_ca = write_ca(d, other, "other.pem")
    return {
        "crt": str(crt),
        "key": str(key),
        "our_dir": str(hashed_dir(d / "our_dir", our_ca)),
        "other_dir": str(hashed_dir(d / "other_dir", other_ca)),
        "our_bundle": str(our_ca),
        "other_bundle": str(other_ca),
        "missing": str(d / "missing.pem"),
    }


def _greet(conn: Conn) -> None:
    conn.send(b"* OK hi\r\n")
    conn.logout()


@pytest.mark.parametrize(
    ("cert_dir", "cert_file", "rc"),
    [
        ("our_dir", "missing", 0),  # the CA only in the hashed directory
        ("other_dir", "our_bundle", 0),  # only in the bundle: the retry finds it
        ("other_dir", "other_bundle", 2),  # in neither: the same failure as ever
    ],
)
def test_default_store_verdicts(
    stores: dict[str, str], cert_dir: str, cert_file: str, rc: int
) -> None:
    env = {"SSL_CERT_DIR": stores[cert_dir], "SSL_CERT_FILE": stores[cert_file]}
    with serve(_greet, server_context(stores["crt"], stores["key"])) as srv:
        result = run(
            "check_imap",
            "-H",
            "127.0.0.1",
            "-p",
            str(srv.port),
            "--tls",
            "--sni",
            "imap.test",
            env=env,
        )
    if rc == 0:
        expect(
            result,
            0,
            rf"IMAP OK - 127\.0\.0\.1:{srv.port} answered in {NUM}s, TLSv1\.3, certificate "
            r"'imap\.test' expires \S+, logout: BYE \+ tagged OK \| .*",
        )
    else:
        expect(
            result,
            2,
            rf"IMAP CRITICAL - 127\.0\.0\.1:{srv.port}: certificate 'imap\.test' has an unknown "
            r"issuer 'our test CA'",
        )
