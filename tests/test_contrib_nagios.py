# SPDX-License-Identifier: MIT
"""contrib/nagios against a real Nagios 4 (Debian's nagios4-core).

- ``nagios4 -v`` accepts the contrib files together with everything Debian's stock
  nagios.cfg loads (objects/*.cfg and /etc/nagios-plugins/config, which defines
  monitoring-plugins' check_imap), plus a host in the check_imap_servers hostgroup;
  it rejects a broken copy.
- A short foreground run (interval_length=1, so intervals are seconds) with services
  that use the contrib template and commands against the real Dovecot: the host is
  ``imap.test`` at 127.0.0.1, the certificate names only imap.test, so the TLS checks
  pass only because the commands pass $HOSTNAME$ as --sni. status.dat shows OK with our
  perfdata for IMAPS and STARTTLS and CRITICAL for a refused port.
  Nagios re-notifies the lasting problem every second through the contrib
  notification command (environment macros); the delivery behind it runs once, and
  the template's own contacts are the only ones notified (not generic-service's admins).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import daemons as d
from support.dovecot import Dovecot

pytestmark = pytest.mark.daemons

NAGIOS_DIR = d.CONTRIB / "nagios"
CONTRIB_FILES = ("commands.cfg", "services.cfg", "contacts.cfg")
STOCK = Path("/etc/nagios4/objects")
STOCK_OBJECTS = (
    "commands.cfg",
    "contacts.cfg",
    "timeperiods.cfg",
    "templates.cfg",
    "localhost.cfg",
)
STOCK_PLUGINS = Path("/etc/nagios-plugins/config")  # a cfg_dir of Debian's nagios.cfg
STATE_FILE = "/var/lib/nagios/notify_on_change/state.db"

HOST_IN_GROUP = """define command {
    command_name            host-up
    command_line            /bin/true
}
define host {
    use                     linux-server
    host_name               mail.example.org
    address                 192.0.2.25
    hostgroups              check_imap_servers
    check_command           host-up
}
"""


def contrib_copy(directory: Path, bindir: Path, state: Path, deliver: Path) -> list[Path]:
    """The contrib files with only the site-specific paths replaced."""
    out = []
    for name in CONTRIB_FILES:
        text = (NAGIOS_DIR / name).read_text()
        if name == "commands.cfg":
            text = d.substitute(text, d.INSTALL_PREFIX, f"{bindir}/", count=5)
            text = d.substitute(text, STATE_FILE, str(state), count=2)
            text = d.substitute(text, "-- /usr/bin/mail ", f"-- {deliver} ", count=2)
        path = directory / name
        path.write_text(text)
        out.append(path)
    return out


@pytest.fixture
def nagios(tmp_path: Path) -> d.Nagios:
    d.require(d.NAGIOS4)
    return d.Nagios(tmp_path)


def debian_stock() -> list[Path]:
    """What Debian's stock nagios.cfg loads: its objects and monitoring-plugins' commands."""
    stock = [STOCK / f for f in STOCK_OBJECTS]
    if not all(p.is_file() for p in stock):
        pytest.skip(f"Debian's stock objects are not in {STOCK}")
    plugins = sorted(STOCK_PLUGINS.glob("*.cfg"))
    if not (STOCK_PLUGINS / "mail.cfg").is_file():
        pytest.skip(f"{STOCK_PLUGINS}/mail.cfg (monitoring-plugins-standard) is not installed")
    return stock + plugins


def test_contrib_files_validate_next_to_debian_stock(nagios: d.Nagios) -> None:
    stock = debian_stock()
    assert "command_name\tcheck_imap\n" in (STOCK_PLUGINS / "mail.cfg").read_text()
    host = nagios.root / "host.cfg"
    host.write_text(HOST_IN_GROUP)
    nagios.write_main([*stock, *(NAGIOS_DIR / f for f in CONTRIB_FILES), host])
    result = nagios.validate()
    assert result.returncode == 0, result.stdout
    assert "Total Errors:   0" in result.stdout, result.stdout
    # the contrib's two services on mail.example.org next to those of the stock files
    nagios.write_main(stock)
    alone = nagios.validate()
    assert alone.returncode == 0, alone.stdout
    stock_services = int(re.findall(r"Checked\s+(\d+) services\.", alone.stdout)[0])
    assert re.search(rf"Checked\s+{stock_services + 2} services\.", result.stdout), result.stdout


def test_broken_copy_fails_validation(nagios: d.Nagios) -> None:
    stock = debian_stock()
    broken = nagios.root / "services.cfg"
    text = (NAGIOS_DIR / "services.cfg").read_text()
    broken.write_text(d.substitute(text, "check_imap_tls!", "check_imap_tlz!"))
    host = nagios.root / "host.cfg"
    host.write_text(HOST_IN_GROUP)
    nagios.write_main(
        [*stock, NAGIOS_DIR / "commands.cfg", NAGIOS_DIR / "contacts.cfg", broken, host]
    )
    result = nagios.validate()
    assert result.returncode == 1, result.stdout
    assert "check_imap_tlz" in result.stdout and "not defined" in result.stdout, result.stdout


@dataclass
class Run:
    nagios: d.Nagios
    bindir: Path
    recorder: d.Recorder
    bed: Dovecot
    refused_port: int


HARNESS = """define timeperiod {{
    timeperiod_name         24x7
    alias                   24x7
    sunday                  00:00-24:00
    monday                  00:00-24:00
    tuesday                 00:00-24:00
    wednesday               00:00-24:00
    thursday                00:00-24:00
    friday                  00:00-24:00
    saturday                00:00-24:00
}}
define command {{
    command_name            host-up
    command_line            /bin/true
}}
define contact {{
    name                    generic-contact
    service_notification_period 24x7
    host_notification_period    24x7
    host_notification_options   n
    host_notification_commands  host-up
    register                0
}}
define contact {{
    contact_name            nagiosadmin
    use                     generic-contact
    service_notification_options w,u,c,r
    service_notification_commands host-up
}}
define contactgroup {{
    contactgroup_name       admins
    members                 nagiosadmin
}}
define service {{
    name                    generic-service
    check_period            24x7
    notification_period     24x7
    notification_options    w,u,c,r
    contact_groups          admins
    register                0
}}
define host {{
    host_name               {name}
    address                 {host}
    check_command           host-up
    max_check_attempts      1
    check_period            24x7
    notification_period     24x7
    notifications_enabled   0
}}
define service {{
    use                     check_imap_service
    host_name               {name}
    service_description     IMAPS
    check_command           check_imap_tls!-p {tls_port} --ca-file {ca} -w 5 -c 8
    max_check_attempts      1
    check_interval          1
}}
define service {{
    use                     check_imap_service
    host_name               {name}
    service_description     IMAP STARTTLS
    check_command           check_imap_starttls!-p {plain_port} --ca-file {ca}
    max_check_attempts      1
    check_interval          1
}}
define service {{
    use                     check_imap_service
    host_name               {name}
    service_description     IMAP refused
    check_command           check_imap_plain!-p {refused} -t 5
    max_check_attempts      1
    check_interval          1
    notification_interval   1
}}
"""


@pytest.fixture(scope="module")
def nagios_run(named_dovecot: Dovecot) -> Iterator[Run]:
    d.require(d.NAGIOS4)
    root = d.world_dir("nagios4")
    nagios = d.Nagios(root)
    daemon = None
    try:
        bindir = d.install_commands(root)
        recorder = d.make_recorder(root)
        main = named_dovecot.named
        refused = d.free_port()
        files = contrib_copy(root, bindir, root / "notify" / "state.db", recorder.script)
        harness = root / "harness.cfg"
        harness.write_text(
            HARNESS.format(
                name=d.REAL_NAME,
                host=main.host,
                tls_port=main.tls_port,
                plain_port=main.plain_port,
                ca=main.ca_file,
                refused=refused,
            )
        )
        nagios.write_main([harness, *files])
        result = nagios.validate()
        assert result.returncode == 0, result.stdout
        daemon = nagios.start(d.daemon_env(root))
        yield Run(nagios, bindir, recorder, named_dovecot, refused)
    finally:
        code = daemon.stop() if daemon is not None else 0
        report = nagios.describe()
        shutil.rmtree(root, ignore_errors=True)
        assert code == 0, report


def checked(run: Run, names: tuple[str, ...], timeout: float = 30) -> dict[str, dict[str, str]]:
    def probe() -> dict[str, dict[str, str]] | None:
        assert run.nagios.daemon is not None
        run.nagios.daemon.assert_running()
        services = run.nagios.services()
        if all(services.get(n, {}).get("has_been_checked") == "1" for n in names):
            return {n: services[n] for n in names}
        return None

    return d.wait_for(probe, f"{names} in status.dat", timeout, run.nagios.describe)


def test_status_dat_shows_ok_with_perfdata(nagios_run: Run) -> None:
    main = nagios_run.bed.named
    services = checked(nagios_run, ("IMAPS", "IMAP STARTTLS"))
    for name, port in (("IMAPS", main.tls_port), ("IMAP STARTTLS", main.plain_port)):
        status = services[name]
        assert status["current_state"] == "0", status
        assert status["plugin_output"].startswith(f"IMAP OK - {main.host}:{port} answered in "), (
            status
        )
        labels = re.findall(r"(?:^| )([a-z_]+)=", status["performance_data"])
        for label in (
            "time",
            "time_connect",
            "time_tls",
            "time_greeting",
            "time_logout",
            "cert_days",
        ):
            assert label in labels, status["performance_data"]


def test_status_dat_shows_critical_for_refused_port(nagios_run: Run) -> None:
    status = checked(nagios_run, ("IMAP refused",))["IMAP refused"]
    assert status["current_state"] == "2", status
    assert status["plugin_output"] == (
        f"IMAP CRITICAL - {d.HOST}:{nagios_run.refused_port}: connection refused"
    ), status


def test_lasting_problem_is_delivered_once(nagios_run: Run) -> None:
    run = nagios_run
    d.wait_for(
        lambda: d.notifier_invocations(run.bindir) >= 3,
        "nagios4 to run the notification command 3 times",
        30,
        lambda: run.nagios.describe() + f"\ndeliveries: {run.recorder.calls()}",
    )
    calls = run.recorder.calls()
    assert len(calls) == 1, calls
    key = f"{d.REAL_NAME}!IMAP refused"
    subject = f"PROBLEM: {key} is CRITICAL: IMAP CRITICAL - {d.HOST}:{run.refused_port}: connection refused"
    assert calls[0]["argv"] == ["-s", subject, "root@localhost"], calls


def test_only_the_templates_own_contacts_are_notified(nagios_run: Run) -> None:
    """generic-service's contact group (admins) is replaced, so every notification
    Nagios sends goes through notify_on_change, once per round (the contact is in the
    template's contacts and in its contact group: Nagios notifies it once)."""
    run = nagios_run
    d.wait_for(
        lambda: d.notifier_invocations(run.bindir) >= 2,
        "nagios4 to notify twice",
        30,
        run.nagios.describe,
    )
    log = (run.nagios.var / "nagios.log").read_text()
    notified = re.findall(r"SERVICE NOTIFICATION: ([^;]+);([^;]+);([^;]+);", log)
    assert notified, log
    assert {contact for contact, _h, _s in notified} == {"check_imap_oncall"}, notified
    assert {(h, s) for _c, h, s in notified} == {(d.REAL_NAME, "IMAP refused")}, notified
    assert len(notified) <= d.notifier_invocations(run.bindir) + 1, notified
