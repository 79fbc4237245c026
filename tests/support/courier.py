"""Courier-IMAP 5 (Debian's courier-imap, unpacked) on loopback for the tests.

Debian's courier-imap conflicts with dovecot-imapd, so tests/install-servers only
unpacks it (and courier-base, courier-authlib, courier-authdaemon, -userdb) into
``SERVERS_DIR``. Courier's paths are compiled in, so ``courier_launch.sh`` runs it in a
private mount namespace (``unshare -m``) with read-only overlays of the unpacked trees
over /usr and of our own /etc/courier over /etc: the real system is never changed, and
the mounts go away with the last process. Root is needed for that and for the user
switches.

Authentication is Courier's own: authdaemond with the userdb module, whose
``userdb.dat`` / ``userdbshadow.dat`` we build with authlib's makedatprog (user
``probe``, SHA-512 crypt password, uid/gid nobody, Maildir in the temp dir).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import realservers as rs

TREES = ("courier-imap", "courier-base", "courier-authlib", "courier-authdaemon",
         "courier-authlib-userdb")  # fmt: skip
LAUNCH = Path(__file__).with_name("courier_launch.sh")
MAKEDAT = "courier-authlib/usr/lib/courier/courier-authlib/makedatprog"
MAIL_UID = 65534  # nobody, as in the reference test bed


def unavailable() -> str | None:
    return (
        rs.missing_trees(*TREES)
        or rs.require_root("Courier")
        or rs.missing_commands("unshare", "setpriv", "openssl")
    )


def _makedat(root: Path, name: str, line: str) -> None:
    """Build ``etc/courier/<name>.dat`` (GDBM) from one ``key<TAB>value`` line."""
    directory = root / "etc" / "courier"
    subprocess.run(
        [str(rs.SERVERS_DIR / MAKEDAT), "-", str(directory / f"{name}.tmp"),
         str(directory / f"{name}.dat")],
        input=f"{line}\n.\n".encode(),
        env={"LD_LIBRARY_PATH": str(rs.SERVERS_DIR / "courier-authlib/usr/lib"), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip


def _crypt(password: str) -> str:
    """SHA-512 crypt, from openssl (the password on stdin, never in argv)."""
    done = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"],
        input=password.encode(),
        check=True,
        capture_output=True,
        timeout=30,
    )
    return done.stdout.decode().strip()


def _prepare(root: Path) -> rs.ServerPki:
    etc = root / "etc" / "courier"
    etc.mkdir(parents=True)
    (etc / "authdaemonrc").write_text(
        'authmodulelist="authuserdb"\ndaemons=2\nauthdaemonvar=/run/courier/authdaemon\n'
        'DEBUG_LOGIN=0\nDEFAULTOPTIONS=""\n'
    )
    home = root / "home" / rs.USER
    for sub in ("cur", "new", "tmp"):
        (home / "Maildir" / sub).mkdir(parents=True)
    _makedat(root, "userdb", f"{rs.USER}\tuid={MAIL_UID}|gid={MAIL_UID}|home={home}")
    _makedat(root, "userdbshadow", f"{rs.USER}\tsystempw={_crypt(rs.PASSWORD)}")
    (etc / "userdbshadow.dat").chmod(0o600)
    # imaplogin's STARTTLS runs couriertls as the `courier` user: give it one, in our /etc only.
    entry = (
        f"courier:x:{MAIL_UID}:{MAIL_UID}:Courier (test namespace):/nonexistent:/usr/sbin/nologin\n"
    )
    (root / "etc" / "passwd").write_text(Path("/etc/passwd").read_text() + entry)
    (root / "etc" / "group").write_text(Path("/etc/group").read_text() + f"courier:x:{MAIL_UID}:\n")
    pki_ = rs.make_pki(root / "pki")
    for path in [root / "home", *(root / "home").rglob("*"), pki_.pem]:
        os.chown(path, MAIL_UID, MAIL_UID)
    return pki_


def start() -> rs.RealServer:
    """Start Courier; on failure its directory is kept, as its log explains the failure."""
    root = rs.make_root("courier")
    pki_ = _prepare(root)
    password_file = rs.write_password_file(root)

    def attempt(sessions: list[rs.Session]) -> rs.RealServer:
        plain, tls, preauth = rs.ports(3)
        session = rs.Session(
            "courier",
            ["unshare", "-m", "--propagation", "private", "sh", str(LAUNCH),
             str(rs.SERVERS_DIR), str(root), str(MAIL_UID), str(plain), str(tls), str(preauth)],
            root / "courier.log",
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"},
        ).start()  # fmt: skip
        sessions.append(session)
        named = {"plain": plain, "tls": tls, "preauth": preauth}
        found = rs.wait_greetings(
            sessions, {plain: False, tls: True, preauth: True}, session.log_tail
        )
        return rs.RealServer(
            name="courier",
            root=root,
            pki=pki_,
            ports=named,
            greetings={name: found[port] for name, port in named.items()},
            sessions=sessions,
            password_file=password_file,
        )

    server = rs.start_with_retries("Courier", attempt)
    rs.fill_inbox_or_stop(server)
    return server


@pytest.fixture(scope="module")
def courier() -> Iterator[rs.RealServer]:
    """Courier-IMAP with plain+STARTTLS, implicit TLS and a PREAUTH TLS port; module-scoped."""
    yield from rs.module_fixture(unavailable, start)
