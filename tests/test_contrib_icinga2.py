# SPDX-License-Identifier: MIT
"""contrib/icinga2 against a real Icinga 2 (Debian's icinga2 package).

- ``icinga2 daemon -C`` accepts the contrib files with the ITL and Debian's stock
  templates, and rejects a deliberately broken copy (duplicate ITL name, typo).
- A foreground icinga2 in a throwaway tree runs the Services that the contrib apply
  rule makes from a Host's ``vars.imap`` against the real Dovecot of the session
  fixture; the results are read back over the REST API: state 0 with our perfdata, the
  command line built from the check_imap_* variables, and CRITICAL for a refused port.
  The Host is ``imap.test`` at 127.0.0.1 and the certificate names only imap.test: the
  TLS checks pass only because check_imap_sni defaults to the Host's name.
- A Notification with the contrib NotificationCommand: Icinga runs notify_on_change
  again and again (interval 1s) for a lasting problem; the delivery behind it runs once.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support import daemons as d
from support.dovecot import Dovecot
from support.processes import check_imap

pytestmark = pytest.mark.daemons

ICINGA2_DIR = d.CONTRIB / "icinga2"
CONTRIB_FILES = ("check_imap.conf", "services.conf", "hosts.conf", "notifications.conf")
STOCK = Path("/etc/icinga2/conf.d")
NUM = r"\d+(\.\d+)?"


def stock_or_own_templates() -> str:
    """Debian's stock templates/users/timeperiods when present, else equivalents."""
    files = ("templates.conf", "users.conf", "timeperiods.conf")
    if all(d.readable_file(STOCK / f) for f in files):
        return "".join(f'include "{STOCK / f}"\n' for f in files)
    return """
template Host "generic-host" { max_check_attempts = 3; check_command = "hostalive" }
template Service "generic-service" { max_check_attempts = 5 }
template User "generic-user" { }
object User "icingaadmin" { import "generic-user"; email = "root@localhost" }
object TimePeriod "24x7" { ranges = { } }
"""


def includes(names: tuple[str, ...], directory: Path = ICINGA2_DIR) -> str:
    return "".join(f'include "{directory / n}"\n' for n in names)


# --------------------------------------------------------------------------- static


def test_contrib_command_covers_every_plugin_option() -> None:
    """Every check_imap option (but help/version/verbose) is an argument of the
    CheckCommand: a new plugin option without Icinga 2 support fails here."""
    help_text = check_imap("--help").out
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+|-[a-zA-Z0-9])\b", help_text))
    options -= {"-h", "--help", "-V", "--version", "-v", "--verbose"}
    short_for_long = {"--hostname": "-H", "--port": "-p", "--ipv4": "-4", "--ipv6": "-6"}
    short_for_long |= {"--timeout": "-t", "--warning": "-w", "--critical": "-c", "--user": "-u"}
    conf = (ICINGA2_DIR / "check_imap.conf").read_text()
    keys = set(re.findall(r'^\t\t"(-[^"]+)" = \{', conf, re.M))
    missing = sorted(o for o in options if o not in keys and short_for_long.get(o) not in keys)
    assert not missing, f"check_imap options without an argument in check_imap.conf: {missing}"


@pytest.fixture
def icinga(tmp_path: Path) -> d.Icinga2:
    d.require(d.ICINGA2)
    return d.Icinga2(tmp_path)


def test_contrib_files_validate(icinga: d.Icinga2) -> None:
    config = icinga.write(
        "icinga2.conf", icinga.head() + stock_or_own_templates() + includes(CONTRIB_FILES)
    )
    result = icinga.validate(config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Instantiated 2 NotificationCommands" in result.stdout, result.stdout
    assert "Instantiated 1 Notification." in result.stdout, result.stdout  # the opt-in example
    assert "Instantiated 3 Services" in result.stdout, result.stdout  # from hosts.conf


@pytest.mark.parametrize(
    ("broken", "error"),
    [
        (('object CheckCommand "check_imap" {', 'object CheckCommand "imap" {'), "re-defined"),
        (('"--sni" = {\n\t\t\tvalue', '"--sni" = {\n\t\t\tvalu'), "Invalid attribute"),
        (
            ('$check_imap_fingerprint$"\n', '$check_imap_fingerprint$"\n\t\t}\n\t\t}\n'),
            "syntax error",
        ),
    ],
    ids=["itl-duplicate-name", "typo-in-argument", "syntax-error"],
)
def test_broken_copy_fails_validation(
    icinga: d.Icinga2, broken: tuple[str, str], error: str
) -> None:
    text = d.substitute((ICINGA2_DIR / "check_imap.conf").read_text(), *broken)
    copy = icinga.write("broken.conf", text)
    config = icinga.write("icinga2.conf", icinga.head() + f'include "{copy}"\n')
    result = icinga.validate(config)
    assert result.returncode == 1, result.stdout
    assert error in result.stdout, result.stdout


# --------------------------------------------------------------------------- real run


@dataclass
class Run:
    icinga: d.Icinga2
    bindir: Path
    recorder: d.Recorder
    bed: Dovecot
    refused_port: int


@pytest.fixture(scope="module")
def icinga_run(named_dovecot: Dovecot) -> Iterator[Run]:
    d.require(d.ICINGA2)
    root = d.world_dir("icinga2")
    icinga = d.Icinga2(root)
    daemon = None
    try:
        bindir = d.install_commands(root)
        recorder = d.make_recorder(root)
        main = named_dovecot.named
        refused_port = d.free_port()
        fingerprint = main.cert.sha256
        objects = f"""
    object CheckerComponent "checker" {{ }}
    object NotificationComponent "notification" {{ }}

    template Service "generic-service" {{
      check_interval = 1s
      retry_interval = 1s
      max_check_attempts = 1
    }}
    object User "icingaadmin" {{ email = "root@localhost" }}

    object Host "{d.REAL_NAME}" {{
      check_command = "dummy"
      address = "{main.host}"
      vars.check_imap_command = "{bindir}/check_imap"
      vars.notify_on_change_path = "{bindir}/notify_on_change"
      vars.notify_on_change_command = [ "{recorder.script}", "{{type}}", "{{key}}", "{{state}}", "{{message}}" ]
      vars.imap["imaps"] = {{
        check_imap_mode = "tls"
        check_imap_port = {main.tls_port}
        check_imap_ca_file = "{main.ca_file}"
        check_imap_cert_warning = 20
        check_imap_cert_critical = 5
        check_imap_min_tls = "1.2"
        check_imap_warning = 5
        check_imap_critical = 8
        check_imap_timeout = 9
        check_imap_ipv4 = true
        check_imap_strict_logout = true
      }}
      vars.imap["imap-starttls"] = {{
        check_imap_mode = "starttls"
        check_imap_port = {main.plain_port}
        check_imap_ca_file = "{main.ca_file}"
        check_imap_fingerprint = [ "{"0" * 64}", "{fingerprint}" ]
      }}
      vars.imap["imap-refused"] = {{
        check_imap_port = {refused_port}
        check_imap_timeout = 5
      }}
    }}

    object Notification "oncall" {{
      host_name = "{d.REAL_NAME}"
      service_name = "imap-refused"
      command = "notify_on_change"
      users = [ "icingaadmin" ]
      interval = 1s
    }}
    """
        config = icinga.write(
            "icinga2.conf",
            icinga.head()
            + icinga.api_config()
            + includes(("check_imap.conf", "services.conf", "notifications.conf"))
            + objects,
        )
        result = icinga.validate(config)
        assert result.returncode == 0, result.stdout + result.stderr
        daemon = icinga.start(config, d.daemon_env(root))
        yield Run(icinga, bindir, recorder, named_dovecot, refused_port)
    finally:
        code = daemon.stop() if daemon is not None else 0
        report = icinga.describe()
        shutil.rmtree(root, ignore_errors=True)
        assert code == 0, report


def checked(run: Run, names: tuple[str, ...], timeout: float = 30) -> dict[str, dict[str, Any]]:
    def probe() -> dict[str, dict[str, Any]] | None:
        run.icinga.daemon.assert_running()  # type: ignore[union-attr]
        services = run.icinga.objects("services", "state", "last_check_result")
        wanted = {n: services.get(f"{d.REAL_NAME}!{n}") for n in names}
        if all(s and s.get("last_check_result") for s in wanted.values()):
            return wanted  # type: ignore[return-value]
        return None

    return d.wait_for(probe, f"check results of {names}", timeout, run.icinga.describe)


def test_ok_with_our_perfdata(icinga_run: Run) -> None:
    results = checked(icinga_run, ("imaps", "imap-starttls"))
    main = icinga_run.bed.named
    for name, port in (("imaps", main.tls_port), ("imap-starttls", main.plain_port)):
        attrs = results[name]
        lcr = attrs["last_check_result"]
        assert attrs["state"] == 0, lcr
        assert lcr["exit_status"] == 0, lcr
        assert lcr["output"].startswith(f"IMAP OK - {main.host}:{port} answered in "), lcr
        assert "TLSv1." in lcr["output"], lcr
        labels = [p.split("=", 1)[0] for p in lcr["performance_data"]]
        for label in ("time", "time_connect", "time_tls", "time_greeting", "time_logout"):
            assert label in labels, lcr["performance_data"]
        assert "cert_days" in labels, lcr["performance_data"]
        assert lcr["command"][0] == str(icinga_run.bindir / "check_imap")
    imaps = results["imaps"]["last_check_result"]
    assert imaps["command"][1:] == [
        "-H", main.host, "--ca-file", str(main.ca_file), "--cert-critical", "5",
        "--cert-warning", "20", "--min-tls", "1.2", "--sni", d.REAL_NAME, "--strict-logout",
        "--tls", "-4", "-c", "8", "-p", str(main.tls_port), "-t", "9", "-w", "5",
    ]  # fmt: skip
    assert any(re.fullmatch(rf"cert_days={NUM}d?;20:;5:", p) for p in imaps["performance_data"])
    starttls = results["imap-starttls"]["last_check_result"]
    assert starttls["command"].count("--fingerprint") == 2, starttls["command"]
    assert "--starttls" in starttls["command"], starttls["command"]
    sni = starttls["command"].index("--sni")
    assert starttls["command"][sni + 1] == d.REAL_NAME, starttls["command"]
    assert "--tls" not in starttls["command"], starttls["command"]


def test_refused_port_is_critical(icinga_run: Run) -> None:
    lcr = checked(icinga_run, ("imap-refused",))["imap-refused"]["last_check_result"]
    assert lcr["exit_status"] == 2, lcr
    assert lcr["output"].startswith(
        f"IMAP CRITICAL - {d.HOST}:{icinga_run.refused_port}: connection refused"
    ), lcr
    assert lcr["command"][1:] == ["-H", d.HOST, "-p", str(icinga_run.refused_port), "-t", "5"]


def test_lasting_problem_is_delivered_once(icinga_run: Run) -> None:
    """Icinga re-sends the notification every interval (>= 2 runs of notify_on_change,
    counted by the wrapper); the delivery command behind it runs exactly once."""
    run = icinga_run
    d.wait_for(
        lambda: d.notifier_invocations(run.bindir) >= 3,
        "icinga2 to run the NotificationCommand 3 times",
        25,
        lambda: run.icinga.describe() + f"\ndeliveries: {run.recorder.calls()}",
    )
    calls = run.recorder.calls()
    assert len(calls) == 1, calls
    call = calls[0]
    key = f"{d.REAL_NAME}!imap-refused"
    assert call["argv"][:3] == ["PROBLEM", key, "CRITICAL"], call
    assert call["argv"][3].startswith("IMAP CRITICAL - "), call
    assert call["env"]["NOTIFY_KEY"] == key, call
    state_file = run.icinga.data / "notify_on_change" / "state.db"
    assert state_file.is_file(), "the default --state-file is DataDir/notify_on_change/state.db"
