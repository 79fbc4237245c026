"""notify_on_change trusts the monitoring core about new problems: real Nagios 4 and Icinga 2.

The core suppresses the RECOVERY notification (here: the service's notification options
or the Notification's types leave Recovery out; flapping, downtimes and notification
periods suppress it the same way), so notify_on_change never hears that the first
outage ended. The second outage's PROBLEM carries a newer last state change
(NAGIOS_LASTSERVICESTATECHANGE, or LASTSERVICESTATECHANGE from the contrib Icinga 2
NotificationCommand): it is a new problem and is delivered. The re-notifications of
each outage (interval 1 s) are not.

The check is a script that reports whatever exit code a file holds, so a test turns
the service CRITICAL and OK on cue. Each daemon runs in a throwaway tree and is
stopped by its pid.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from support import daemons as d

pytestmark = pytest.mark.daemons

CONTRIB_STATE = "/var/lib/nagios/notify_on_change/state.db"


def _outage_twice(
    recorder: d.Recorder,
    bindir: Path,
    check: d.FakeCheck,
    state_of: Callable[[int], float | None],
    describe: Callable[[], str],
) -> list[dict[str, object]]:
    """CRITICAL (delivered), OK (the core sends nothing), CRITICAL again (delivered)."""
    d.wait_for(lambda: len(recorder.calls()) >= 1, "the first PROBLEM", 60, describe)
    check.set(0)
    changed = d.wait_for(lambda: state_of(0), "the service to be OK", 30, describe)
    # Nagios counts state changes in whole seconds: let the clock pass the recovery's.
    d.wait_for(lambda: time.time() >= changed + 1.1, "the next second", 5)
    check.set(2)
    d.wait_for(lambda: len(recorder.calls()) >= 2, "the second PROBLEM", 60, describe)
    seen = d.notifier_invocations(bindir)
    d.wait_for(
        lambda: d.notifier_invocations(bindir) >= seen + 3, "3 re-notifications", 30, describe
    )
    return recorder.calls()


NAGIOS_HARNESS = """define timeperiod {{
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
define command {{
    command_name            fake-check
    command_line            {script}
}}
define contact {{
    contact_name                    oncall
    email                           root@localhost
    service_notification_period     24x7
    host_notification_period        24x7
    service_notification_options    w,u,c,r
    host_notification_options       n
    service_notification_commands   notify_on_change_service
    host_notification_commands      host-up
}}
define host {{
    host_name               mail
    address                 127.0.0.1
    check_command           host-up
    max_check_attempts      1
    check_period            24x7
    notification_period     24x7
    notifications_enabled   0
}}
define service {{
    host_name               mail
    service_description     IMAP
    check_command           fake-check
    contacts                oncall
    max_check_attempts      1
    check_interval          1
    retry_interval          1
    check_period            24x7
    notification_period     24x7
    notification_interval   1
    notification_options    w,u,c
    flap_detection_enabled  0
}}
"""


def test_nagios_second_outage_after_a_suppressed_recovery_is_delivered() -> None:
    d.require(d.NAGIOS4)
    root = d.world_dir("nagios4-notify")
    nagios = d.Nagios(root)
    daemon = None
    try:
        bindir = d.install_commands(root)
        recorder = d.make_recorder(root)
        check = d.FakeCheck(root)
        text = (d.CONTRIB / "nagios" / "commands.cfg").read_text()
        text = d.substitute(text, d.INSTALL_PREFIX, f"{bindir}/", count=None)
        text = d.substitute(text, CONTRIB_STATE, str(root / "notify" / "state.db"), count=None)
        text = d.substitute(text, "-- /usr/bin/mail ", f"-- {recorder.script} ", count=None)
        commands = root / "commands.cfg"
        commands.write_text(text)
        harness = root / "harness.cfg"
        harness.write_text(NAGIOS_HARNESS.format(script=check.script))
        nagios.write_main([harness, commands])
        result = nagios.validate()
        assert result.returncode == 0, result.stdout
        daemon = nagios.start(d.daemon_env(root))

        def state_of(code: int) -> float | None:
            daemon.assert_running()
            status = nagios.services().get("IMAP", {})
            if status.get("current_state") == str(code):
                return float(status["last_state_change"])
            return None

        def describe() -> str:
            return nagios.describe() + f"\ndeliveries: {recorder.calls()}"

        calls = _outage_twice(recorder, bindir, check, state_of, describe)
        assert [c["argv"] for c in calls] == [
            ["-s", "PROBLEM: mail!IMAP is CRITICAL: FAKE state 2", "root@localhost"]
        ] * 2, describe()
        assert "SERVICE NOTIFICATION: oncall;mail;IMAP;OK" not in describe()
    finally:
        code = daemon.stop() if daemon is not None else 0
        report = nagios.describe()
        shutil.rmtree(root, ignore_errors=True)
        assert code == 0, report


def test_icinga2_second_outage_after_a_suppressed_recovery_is_delivered() -> None:
    d.require(d.ICINGA2)
    root = d.world_dir("icinga2-notify")
    icinga = d.Icinga2(root)
    daemon = None
    try:
        bindir = d.install_commands(root)
        recorder = d.make_recorder(root)
        check = d.FakeCheck(root)
        objects = (
            check.icinga_objects(
                bindir,
                f'  vars.notify_on_change_command = [ "{recorder.script}", "{{type}}", "{{key}}", "{{state}}" ]\n',
            )
            + """
object Notification "oncall" {
  host_name = "mail"
  service_name = "imap"
  command = "notify_on_change"
  users = [ "icingaadmin" ]
  types = [ Problem ]
  interval = 1s
}
"""
        )
        daemon = icinga.start_notifying(objects, d.daemon_env(root))

        def state_of(code: int) -> float | None:
            daemon.assert_running()
            attrs = icinga.objects("services", "state", "last_state_change").get("mail!imap")
            if attrs and attrs.get("state") == code:
                return float(attrs["last_state_change"])
            return None

        def describe() -> str:
            return icinga.describe() + f"\ndeliveries: {recorder.calls()}"

        calls = _outage_twice(recorder, bindir, check, state_of, describe)
        assert [c["argv"] for c in calls] == [["PROBLEM", "mail!imap", "CRITICAL"]] * 2, describe()
    finally:
        code = daemon.stop() if daemon is not None else 0
        report = icinga.describe()
        shutil.rmtree(root, ignore_errors=True)
        assert code == 0, report
