"""The Debian package (debian/), built with Debian's own tools from a copy of this tree.

- ``dpkg-buildpackage -b`` (debhelper + dh-python/pybuild) builds it against Debian's
  python3-nagiosplugin and python3-cryptography; its version is the plugin's.
- The .deb holds the plugin as /usr/lib/nagios/plugins/check_imap_tolerant (never
  check_imap: monitoring-plugins-basic owns that), notify_on_change in /usr/bin, both
  man pages, the Icinga 2 definitions in plugins-contrib.d and contrib as examples.
- ``lintian`` finds no error.
- ``apt-get install ./<deb>`` installs it beside monitoring-plugins, whose check_imap
  stays as it was; the installed plugin passes real checks against Dovecot as the
  ``nagios`` user, and ``icinga2 daemon -C`` accepts its ITL-style definition.

Root only (it installs into /usr, and removes the package again afterwards unless it
was installed before); about 40 s. Marked ``package``; tests/run installs the tools.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import daemons as d
from support.assertions import NUM, times
from support.dovecot import Dovecot

pytestmark = pytest.mark.package

PACKAGE = "monitoring-plugins-imap-tolerant"
PLUGIN = Path("/usr/lib/nagios/plugins/check_imap_tolerant")
NOTIFIER = Path("/usr/bin/notify_on_change")
ICINGA2_CONF = Path("/usr/share/icinga2/include/plugins-contrib.d/imap-tolerant.conf")
DOC = Path(f"/usr/share/doc/{PACKAGE}")
MONITORING_PLUGINS_IMAP = Path("/usr/lib/nagios/plugins/check_imap")
SYSTEM_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root"}
"""Debian's tools with Debian's python3, whatever interpreter runs the tests."""
BUILD_TIMEOUT = 300
APT_TIMEOUT = 600
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".pybuild"
)


def version() -> str:
    text = (d.REPO / "src/check_imap/__init__.py").read_text()
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    assert found, "no __version__ in src/check_imap/__init__.py"
    return found.group(1)


def installed(package: str) -> bool:
    query = d.run(["dpkg-query", "-W", "-f=${Status}", package], env=SYSTEM_ENV)
    return query.returncode == 0 and "install ok installed" in query.stdout


@dataclass
class Built:
    deb: Path
    changes: Path
    log: str


@pytest.fixture(scope="module")
def built() -> Iterator[Built]:
    if os.geteuid() != 0:
        pytest.skip("the package test installs into /usr: root only (tests/run as root)")
    if shutil.which("dpkg-buildpackage", path=SYSTEM_ENV["PATH"]) is None:
        pytest.skip("dpkg-dev not installed: run tests/run as root")
    work = Path(tempfile.mkdtemp(prefix="check-imap-deb-"))
    try:
        tree = work / "src"
        shutil.copytree(d.REPO, tree, ignore=COPY_IGNORE, symlinks=True)
        deps = d.run(["dpkg-checkbuilddeps"], cwd=tree, env=SYSTEM_ENV)
        if deps.returncode != 0:
            pytest.skip(f"build dependencies missing (tests/run installs them): {deps.stderr}")
        build = d.run(
            ["dpkg-buildpackage", "-us", "-uc", "-b"],
            cwd=tree,
            env=SYSTEM_ENV,
            timeout=BUILD_TIMEOUT,
        )
        log = build.stdout + build.stderr
        assert build.returncode == 0, log
        ver = version()
        yield Built(work / f"{PACKAGE}_{ver}_all.deb", next(work.glob("*.changes")), log)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def contents(deb: Path) -> dict[str, str]:
    """``{path: mode string}`` of the .deb (symlinks as ``l`` + target)."""
    listing = d.run(["dpkg-deb", "-c", str(deb)], env=SYSTEM_ENV)
    assert listing.returncode == 0, listing.stderr
    found = {}
    for line in listing.stdout.splitlines():
        fields = line.split(None, 5)
        path = fields[5].split(" -> ")[0].removeprefix(".")
        found[path.rstrip("/") or "/"] = fields[0]
    return found


def test_version_is_the_plugins(built: Built) -> None:
    field = d.run(["dpkg-deb", "-f", str(built.deb), "Version", "Depends"], env=SYSTEM_ENV)
    assert field.returncode == 0, field.stderr
    assert f"Version: {version()}\n" in field.stdout, field.stdout
    assert "python3-nagiosplugin (>= 1.3.2)" in field.stdout, field.stdout
    assert "python3-cryptography" in field.stdout, field.stdout


def test_contents(built: Built) -> None:
    files = contents(built.deb)
    for path in (PLUGIN, NOTIFIER):
        assert files.get(str(path), "").startswith("-rwxr-xr-x"), (path, sorted(files))
    for path in (
        ICINGA2_CONF,
        Path("/usr/share/man/man1/check_imap.1.gz"),
        Path("/usr/share/man/man1/notify_on_change.1.gz"),
        Path("/usr/share/man/man1/check_imap_tolerant.1.gz"),
        DOC / "copyright",
        DOC / "examples/icinga2/check_imap.conf",
        DOC / "examples/icinga2/distributed/README.md",
        DOC / "examples/nagios/commands.cfg",
        Path("/usr/lib/python3/dist-packages/check_imap/cli.py"),
    ):
        assert str(path) in files, (path, sorted(files))
    assert "/usr/bin/check_imap" not in files
    assert str(MONITORING_PLUGINS_IMAP) not in files


def test_lintian_finds_no_error(built: Built) -> None:
    lintian = d.run(
        ["lintian", "--fail-on", "error", "--tag-display-limit", "0", str(built.changes)],
        env=SYSTEM_ENV,
        timeout=BUILD_TIMEOUT,
    )
    assert lintian.returncode == 0, lintian.stdout + lintian.stderr
    errors = [line for line in lintian.stdout.splitlines() if line.startswith("E:")]
    assert not errors, lintian.stdout


# --------------------------------------------------------------------------- installed


@pytest.fixture(scope="module")
def install(built: Built) -> Iterator[Path]:
    had_it = installed(PACKAGE)
    before = os.readlink(MONITORING_PLUGINS_IMAP) if MONITORING_PLUGINS_IMAP.is_symlink() else None
    apt = d.run(
        [
            "apt-get", "install", "-y", "-q", "--no-install-recommends",
            "-o", "DPkg::Lock::Timeout=300", str(built.deb),
        ],
        env={**SYSTEM_ENV, "DEBIAN_FRONTEND": "noninteractive"},
        timeout=APT_TIMEOUT,
    )  # fmt: skip
    try:
        assert apt.returncode == 0, apt.stdout + apt.stderr
        assert installed(PACKAGE)
        if before is not None:  # monitoring-plugins' check_imap is untouched
            assert os.readlink(MONITORING_PLUGINS_IMAP) == before
        yield PLUGIN
    finally:
        if not had_it and installed(PACKAGE):
            purge = d.run(
                ["apt-get", "purge", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", PACKAGE],
                env={**SYSTEM_ENV, "DEBIAN_FRONTEND": "noninteractive"},
                timeout=APT_TIMEOUT,
            )
            assert purge.returncode == 0, purge.stdout + purge.stderr


@pytest.fixture(scope="module")
def nagios_env() -> Iterator[dict[str, str]]:
    """What a monitoring daemon gives a plugin: little. The certificate cache goes to a
    directory the nagios user owns."""
    home = d.world_dir("deb-nagios")
    account = pwd.getpwnam(d.NRPE_USER)
    os.chown(home, account.pw_uid, account.pw_gid)
    yield {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "XDG_CACHE_HOME": str(home)}
    shutil.rmtree(home, ignore_errors=True)


def test_installed_plugin_version(install: Path, nagios_env: dict[str, str]) -> None:
    run = d.run_as(d.NRPE_USER, [str(install), "--version"], env=nagios_env)
    assert run.stdout == f"check_imap {version()}\n", run
    assert run.returncode == 3, run  # plugin convention: no check made, UNKNOWN


def test_installed_plugin_checks_dovecot_as_nagios(
    install: Path, dovecot: Dovecot, nagios_env: dict[str, str]
) -> None:
    main = dovecot.main
    env = nagios_env
    plain = d.run_as(d.NRPE_USER, [str(install), "-H", main.host, "-p", str(main.plain_port)], env)
    first = plain.stdout.split("\n", 1)[0]
    want = rf"IMAP OK - {re.escape(main.host)}:{main.plain_port} answered in {NUM}s, logout: BYE \+ tagged OK \| {times('')}"
    assert re.fullmatch(want, first), plain
    assert (plain.returncode, plain.stderr) == (0, ""), plain

    argv = [str(install), "-H", "localhost", "-p", str(main.plain_port), "--starttls"]
    tls = d.run_as(d.NRPE_USER, [*argv, "--ca-file", str(main.ca_file)], env)
    first = tls.stdout.split("\n", 1)[0]
    assert re.match(
        rf"IMAP OK - localhost:{main.plain_port} answered in {NUM}s, TLSv1\.3, certificate 'localhost' expires ",
        first,
    ), tls
    assert (tls.returncode, tls.stderr) == (0, ""), tls

    notifier = d.run_as(d.NRPE_USER, [str(NOTIFIER), "--version"], env)
    assert (notifier.returncode, notifier.stdout) == (0, f"notify_on_change {version()}\n")


def test_installed_icinga2_definition_validates(install: Path, tmp_path: Path) -> None:
    """The ITL way: Debian's icinga2.conf includes <plugins-contrib>, which now brings
    our CheckCommand "check_imap" (beside the ITL's "imap") pointing at the plugin.
    (The NotificationCommands live in contrib/icinga2/notifications.conf, an example.)"""
    d.require(d.ICINGA2)
    text = ICINGA2_CONF.read_text()
    assert '\tvars.check_imap_command = PluginContribDir + "/check_imap_tolerant"\n' in text
    icinga = d.Icinga2(tmp_path)
    config = icinga.write(
        "icinga2.conf",
        icinga.head()
        + "include <plugins-contrib>\n"
        + 'object Host "mail" { check_command = "dummy"; address = "127.0.0.1" }\n'
        + 'object Service "imap" { host_name = "mail"; check_command = "check_imap" }\n'
        + 'object Service "imap-itl" { host_name = "mail"; check_command = "imap" }\n',
    )
    result = icinga.validate(config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Instantiated 2 Services" in result.stdout, result.stdout


def test_man_page_of_the_plugin_name(install: Path) -> None:
    link = Path("/usr/share/man/man1/check_imap_tolerant.1.gz")
    assert link.is_symlink(), link
    assert os.readlink(link) == "check_imap.1.gz"
    assert (link.parent / "check_imap.1.gz").is_file()
    assert subprocess.run(["gzip", "-t", str(link)], check=False).returncode == 0
