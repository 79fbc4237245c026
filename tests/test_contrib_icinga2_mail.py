# SPDX-License-Identifier: MIT
"""The contrib NotificationCommand "notify_on_change-mail-service" with Debian's stock
``/etc/icinga2/scripts/mail-service-notification.sh``, run by a real Icinga 2.

The example that --help and the man page used to give ended in "Required parameter
'SERVICENAME' is missing" with that script. Here Icinga 2 notifies every second about a
lasting CRITICAL and then its recovery; the script runs behind notify_on_change and
pipes its mail into a ``mail`` that records (first on the daemon's PATH, as the script
finds it with ``which``). Exactly one PROBLEM mail and one RECOVERY mail, with the
script's own subject and body, prove the options reach it and the dedup holds.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from support import daemons as d

pytestmark = pytest.mark.daemons

SCRIPT = Path("/etc/icinga2/scripts/mail-service-notification.sh")


class Mailbox:
    """A ``mail`` command that records its argv and the message on stdin."""

    def __init__(self, root: Path) -> None:
        self.bindir = root / "mailbin"
        self.bindir.mkdir()
        self.log = root / "mails.jsonl"
        mail = self.bindir / "mail"
        mail.write_text(
            f"#!{sys.executable}\n"
            "import json, sys\n"
            "rec = {'argv': sys.argv[1:], 'body': sys.stdin.read()}\n"
            f"with open({str(self.log)!r}, 'a') as f:\n"
            "    f.write(json.dumps(rec) + '\\n')\n"
        )
        mail.chmod(0o755)

    def mails(self) -> list[dict[str, object]]:
        try:
            text = self.log.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines()]


def test_debian_mail_script_behind_notify_on_change() -> None:
    d.require(d.ICINGA2)
    if not d.readable_file(SCRIPT):
        pytest.skip(f"{SCRIPT} (Debian's icinga2-common) is not installed or not readable")
    root = d.world_dir("icinga2-mail")
    icinga = d.Icinga2(root)
    daemon = None
    try:
        bindir = d.install_commands(root)
        box = Mailbox(root)
        check = d.FakeCheck(root)
        objects = (
            check.icinga_objects(
                bindir, f'  vars.notify_on_change_state_file = "{root}/notify/state.db"\n'
            )
            + """
object Notification "mail" {
  host_name = "mail"
  service_name = "imap"
  command = "notify_on_change-mail-service"
  users = [ "icingaadmin" ]
  types = [ Problem, Recovery ]
  interval = 1s
}
"""
        )
        env = d.daemon_env(root)
        env["PATH"] = f"{box.bindir}:{env.get('PATH', '/usr/bin:/bin')}"
        daemon = icinga.start_notifying(objects, env)

        def describe() -> str:
            calls = (
                (bindir / "notify_on_change.calls").read_text()
                if d.notifier_invocations(bindir)
                else ""
            )
            return f"{icinga.describe()}\nnotify_on_change calls:\n{calls}\nmails: {box.mails()}"

        d.wait_for(lambda: len(box.mails()) >= 1, "the PROBLEM mail", 60, describe)
        seen = d.notifier_invocations(bindir)
        d.wait_for(
            lambda: d.notifier_invocations(bindir) >= seen + 3, "3 re-notifications", 30, describe
        )
        check.set(0)
        d.wait_for(lambda: len(box.mails()) >= 2, "the RECOVERY mail", 60, describe)
        daemon.assert_running()
        mails = box.mails()
        assert [m["argv"] for m in mails] == [
            ["-s", "[PROBLEM] imap on mail is CRITICAL!", "root@localhost"],
            ["-s", "[RECOVERY] imap on mail is OK!", "root@localhost"],
        ], describe()
        body = str(mails[0]["body"])
        assert "Info:    FAKE state 2\n" in body, body
        assert "Service: imap\nHost:    mail\n" in body, body
        assert "Info:    FAKE state 0\n" in str(mails[1]["body"]), mails[1]
    finally:
        code = daemon.stop() if daemon is not None else 0
        report = icinga.describe()
        shutil.rmtree(root, ignore_errors=True)
        assert code == 0, report
