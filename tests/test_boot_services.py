# SPDX-License-Identifier: MIT
"""tests/run never leaves the daemons it installs enabled at boot.

Debian's postinst scripts enable dovecot, icinga2 and nrpe in
/etc/systemd/system/multi-user.target.wants/ and nagios4 and monit with S links in
/etc/rc[2-5].d/. tests/run records the services whose packages it installed and runs
``tests/boot-services disable`` on them.

- On a copy of such a tree (``--root``), ``disable`` removes exactly those links (an S
  link becomes a K link, as ``update-rc.d disable`` does) and leaves other services'
  alone; ``enabled`` lists the links and exits 1, then nothing and 0.
- On this machine, when tests/run installed the daemons here: none of them is enabled.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "boot-services"
RECORD = Path("/var/lib/check_imap-tests/installed-services")
SERVICES = ("dovecot", "icinga2", "nagios-nrpe-server", "nagios4", "monit")


def boot_services(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=30, check=False
    )


def debian_tree(root: Path) -> None:
    """The links Debian 12's postinst scripts leave, plus an unrelated service."""
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    for unit in ("dovecot", "icinga2", "nagios-nrpe-server", "postgresql"):
        (wants / f"{unit}.service").symlink_to(f"/lib/systemd/system/{unit}.service")
    for level in "2345":
        rc = root / f"etc/rc{level}.d"
        rc.mkdir(parents=True)
        for name in ("dovecot", "icinga2", "monit", "nagios-nrpe-server", "nagios4", "postgresql"):
            (rc / f"S01{name}").symlink_to(f"../init.d/{name}")
        (rc / "K01exim4").symlink_to("../init.d/exim4")


def test_disable_removes_exactly_the_boot_links(tmp_path: Path) -> None:
    debian_tree(tmp_path)
    before = boot_services("enabled", "--root", str(tmp_path), *SERVICES)
    assert before.returncode == 1, before
    assert len(before.stdout.splitlines()) == 3 + 4 * 5, before.stdout

    result = boot_services("disable", "--root", str(tmp_path), *SERVICES)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")

    after = boot_services("enabled", "--root", str(tmp_path), *SERVICES)
    assert (after.returncode, after.stdout) == (0, ""), after
    wants = sorted(p.name for p in (tmp_path / "etc/systemd/system").glob("*.wants/*"))
    assert wants == ["postgresql.service"]
    for level in "2345":
        rc = tmp_path / f"etc/rc{level}.d"
        names = sorted(p.name for p in rc.iterdir())
        assert names == [
            "K01dovecot",
            "K01exim4",
            "K01icinga2",
            "K01monit",
            "K01nagios-nrpe-server",
            "K01nagios4",
            "S01postgresql",
        ], names
        assert os.readlink(rc / "K01nagios4") == "../init.d/nagios4"

    again = boot_services("disable", "--root", str(tmp_path), *SERVICES)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")


def test_bad_usage_is_rc_2() -> None:
    result = boot_services("enable", "dovecot")
    assert result.returncode == 2, result
    assert result.stderr.startswith("usage: "), result.stderr


def test_daemons_tests_run_installed_are_not_enabled_at_boot() -> None:
    if not RECORD.is_file():
        pytest.skip(
            f"tests/run installed no daemon on this machine ({RECORD} is absent): "
            "it disables only what it installed"
        )
    services = sorted(set(RECORD.read_text().split()))
    assert services, f"{RECORD} is empty"
    assert set(services) <= set(SERVICES), services
    result = boot_services("enabled", *services)
    assert (result.returncode, result.stdout) == (0, ""), (
        f"enabled at boot although tests/run installed them only for the tests:\n{result.stdout}"
    )
