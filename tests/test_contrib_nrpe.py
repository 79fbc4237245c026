# SPDX-License-Identifier: MIT
"""contrib/nrpe against a real nrpe (Debian's nagios-nrpe-server) and check_nrpe.

nrpe runs on a free loopback port with the contrib ``command[...]`` lines; only the
install path, the address (127.0.0.1 for localhost), the server's name (imap.test for
mail.example.org), the ports and a ``--ca-file`` for the test CA are put in. The Dovecot
certificate names only imap.test, so the checks pass only because the contrib lines
send and verify that name (``--sni``); the same line without it is CRITICAL. check_nrpe
gets our plugin's line (with perfdata) and exit code: 0 for IMAPS and STARTTLS against
the real Dovecot, 2 for a refused port. A request with arguments is refused, which is why
the contrib file has fixed command lines (Debian builds nrpe without argument passing).

Permissions: nrpe refuses to run as root and drops to ``nagios`` before it runs a
command, but the installed plugin lives in a virtualenv under a 0700 home (CI: the
clone's .venv; here: /root/.pyenv). ``daemons.portable_commands`` therefore copies the
package and its installed dependencies into a world-readable temporary directory and
runs it with ``python -m check_imap`` through an interpreter of the same version that
``nagios`` can execute (the venv's base python in CI, else /usr/bin/python3.X). This is
the test's stand-in for the documented install in /opt/check_imap, which is world-readable.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from support import daemons as d
from support.dovecot import Dovecot

pytestmark = pytest.mark.daemons

NUM = r"\d+\.\d+"


@dataclass
class Run:
    nrpe: d.Nrpe
    bed: Dovecot
    refused_port: int


@pytest.fixture(scope="module")
def nrpe_run(named_dovecot: Dovecot) -> Iterator[Run]:
    d.require(d.NRPE, d.CHECK_NRPE)
    d.require_root("nrpe")
    root = d.world_dir("nrpe")
    nrpe = d.Nrpe(root)
    daemon = None
    try:
        bindir, _python = d.portable_commands(root / "plugin")
        plugin = bindir / "check_imap"
        main = named_dovecot.named
        refused = d.free_port()
        lines = [
            line
            for line in (d.CONTRIB / "nrpe" / "check_imap.cfg").read_text().splitlines()
            if line.startswith("command[")
        ]
        assert len(lines) == 2, lines
        text = "\n".join(lines) + "\n"
        text = d.substitute(text, "/opt/check_imap/bin/check_imap", str(plugin), count=2)
        text = d.substitute(text, " -H localhost ", f" -H {d.HOST} ", count=2)
        text = d.substitute(text, " --sni mail.example.org ", f" --sni {d.REAL_NAME} ", count=2)
        text = d.substitute(text, " -p 143 ", f" -p {main.plain_port} --ca-file {main.ca_file} ")
        text = d.substitute(text, " -p 993 ", f" -p {main.tls_port} --ca-file {main.ca_file} ")
        starttls = text.splitlines()[0]
        text += (
            starttls.replace("[check_imap_starttls]", "[check_imap_refused]").replace(
                f" -p {main.plain_port} ", f" -p {refused} "
            )
            + "\n"
        )
        imaps = text.splitlines()[1]
        text += d.substitute(
            imaps.replace("[check_imaps]", "[check_imaps_without_sni]"),
            f" --sni {d.REAL_NAME} ",
            " ",
        )
        text += "\n" + imaps.replace("[check_imaps]", "[check_imaps_verbose]") + " -vvv\n"
        nrpe.write(text + "\n")
        env = d.daemon_env(root)
        account = pwd.getpwnam(d.NRPE_USER)
        os.chown(env["XDG_CACHE_HOME"], account.pw_uid, account.pw_gid)
        daemon = nrpe.start(env)
        d.wait_for(
            lambda: _alive(daemon) and nrpe.query("_NRPE_CHECK").returncode == 0,
            "nrpe to answer",
            10,
            nrpe.describe,
        )
        yield Run(nrpe, named_dovecot, refused)
    finally:
        code = daemon.stop() if daemon is not None else 0
        report = nrpe.describe()
        shutil.rmtree(root, ignore_errors=True)
        assert code == 0, report


@pytest.mark.parametrize("name", ["check_imap_starttls", "check_imaps"])
def test_ok_line_and_exit_code(nrpe_run: Run, name: str) -> None:
    main = nrpe_run.bed.named
    port = main.plain_port if name == "check_imap_starttls" else main.tls_port
    result = nrpe_run.nrpe.query(name)
    assert result.returncode == 0, result.stdout + nrpe_run.nrpe.describe()
    line = result.stdout.rstrip("\n")
    assert "\n" not in line, line
    assert re.match(rf"IMAP OK - {d.HOST}:{port} answered in {NUM}s, TLSv1\.[23], ", line), line
    output, perfdata = line.split(" | ")
    assert "logout: BYE + tagged OK" in output, line
    for label in ("time", "time_connect", "time_tls", "time_greeting", "time_logout", "cert_days"):
        assert re.search(rf"(^| ){label}=\d", perfdata), perfdata
    if name == "check_imaps":
        assert re.search(r"cert_days=\d+;30:;10:", perfdata), perfdata


def test_perfdata_survives_the_cut_of_long_output(nrpe_run: Run) -> None:
    """check_nrpe (protocol v2, ``-2``) keeps 1 KiB of a plugin's output; -vvv with the
    certificates and the transcript is longer. The perfdata is on the first line at
    every -v, so the cut takes only detail lines."""
    nrpe = nrpe_run.nrpe
    argv = [str(d.CHECK_NRPE), "-2", "-H", d.HOST, "-p", str(nrpe.port), "-t", "25"]
    result = d.run([*argv, "-c", "check_imaps_verbose"], timeout=30)
    assert result.returncode == 0, result.stdout + nrpe.describe()
    assert 1000 <= len(result.stdout.encode()) <= 1025, len(result.stdout)  # it was cut
    first = result.stdout.splitlines()[0]
    status, perfdata = first.split(" | ")
    assert status.startswith(f"IMAP OK - {d.HOST}:{nrpe_run.bed.named.tls_port} answered"), first
    assert re.search(r"(^| )cert_days=\d+;30:;10:", perfdata), first
    assert re.search(rf"(^| )time_logout={NUM}s", perfdata), first
    assert "server: " in result.stdout.splitlines()[1], result.stdout


def test_refused_port_is_critical(nrpe_run: Run) -> None:
    result = nrpe_run.nrpe.query("check_imap_refused")
    assert result.returncode == 2, result.stdout + nrpe_run.nrpe.describe()
    assert result.stdout.startswith(
        f"IMAP CRITICAL - {d.HOST}:{nrpe_run.refused_port}: connection refused"
    ), result.stdout


def test_without_sni_the_real_name_is_missed(nrpe_run: Run) -> None:
    """What the contrib line's --sni is for: connecting to the address alone, the
    certificate (for imap.test only) does not match."""
    result = nrpe_run.nrpe.query("check_imaps_without_sni")
    assert result.returncode == 2, result.stdout + nrpe_run.nrpe.describe()
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"IMAP CRITICAL - {d.HOST}:{nrpe_run.bed.named.tls_port}"), first
    assert d.REAL_NAME in first and d.HOST in first, first


def test_arguments_are_refused(nrpe_run: Run) -> None:
    """Why the contrib file has fixed lines: Debian's nrpe has no argument passing."""
    nrpe = nrpe_run.nrpe
    result = d.run(
        [str(d.CHECK_NRPE), "-H", d.HOST, "-p", str(nrpe.port), "-c", "check_imaps", "-a", "x"]
    )
    assert result.returncode == 3, result.stdout
    d.wait_for(
        lambda: "Request contained command arguments" in (nrpe.root / "nrpe.log").read_text(),
        "nrpe to log the refusal",
        5,
        nrpe.describe,
    )


def _alive(daemon: d.Daemon) -> bool:
    daemon.assert_running()
    return True
