"""Helpers for the notify_on_change tests: a recording notifier and a CLI runner."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

# Appends its argv and NOTIFY_* environment as one JSON line, then exits with
# $REC_EXIT (default 0) or sleeps $REC_SLEEP seconds first. With $REC_FAIL_ONCE (a
# path) it fails (exit 9, recording nothing) when that file does not exist yet, and
# creates it. With $REC_SLEEP_ONCE (a path) only the first call sleeps.
RECORDER = """\
import json, os, sys, time
once = os.environ.get("REC_FAIL_ONCE")
if once and not os.path.exists(once):
    open(once, "w").close()
    sys.exit(9)
with open(os.environ["REC_FILE"], "a", encoding="utf-8", errors="surrogateescape") as f:
    env = {k: v for k, v in os.environ.items()
           if k.startswith("NOTIFY_") and not k.startswith("NOTIFY_ON_CHANGE")}
    f.write(json.dumps({"argv": sys.argv[1:], "env": env, "pid": os.getpid()}) + "\\n")
if os.environ.get("REC_STARTED"):
    with open(os.environ["REC_STARTED"], "w") as f:
        f.write(str(os.getpid()))
sleep_once = os.environ.get("REC_SLEEP_ONCE")  # a path: sleep only while it is missing
if not sleep_once or not os.path.exists(sleep_once):
    if sleep_once:
        open(sleep_once, "w").close()
    time.sleep(float(os.environ.get("REC_SLEEP", "0")))
sys.exit(int(os.environ.get("REC_EXIT", "0")))
"""

_FOREIGN = ("MONIT_", "NAGIOS_", "NOTIFY_", "REC_")
_ICINGA = ("SERVICESTATE", "HOSTSTATE", "NOTIFICATIONTYPE", "SERVICEDESC", "SERVICENAME")


def clean_env() -> dict[str, str]:
    """The test process's environment without anything notify_on_change would read."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN) and k not in _ICINGA}


class Notifier:
    """Runs `python -m check_imap.notify` against one state file and one record file."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.state = tmp / "state" / "state.db"
        self.records_file = tmp / "records.jsonl"
        self.script = tmp / "recorder.py"
        self.script.write_text(RECORDER)
        self.now = 1_700_000_000.0

    def command(self, *args: str) -> list[str]:
        return ["--", sys.executable, str(self.script), *args]

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = clean_env()
        env["NOTIFY_ON_CHANGE_STATE"] = str(self.state)
        env["NOTIFY_ON_CHANGE_NOW"] = repr(self.now)
        env["REC_FILE"] = str(self.records_file)
        env.update(extra or {})
        return env

    def argv(self, *options: str) -> list[str]:
        return [sys.executable, "-m", "check_imap.notify", *options]

    def run(
        self, *options: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, *self.argv(*options)],
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def popen(self, *options: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*options),
            env=self.env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def parallel(self, calls: list[tuple[list[str], dict[str, str]]]) -> list[int]:
        """Start every call at once, wait for all; return the exit codes in order."""
        procs = [self.popen(*opts, env=env) for opts, env in calls]
        codes = []
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert "Traceback" not in err, err
            codes.append(proc.returncode)
        return codes

    def records(self) -> list[dict[str, Any]]:
        if not self.records_file.exists():
            return []
        lines = self.records_file.read_text(encoding="utf-8", errors="surrogateescape")
        return [json.loads(line) for line in lines.splitlines()]

    def types(self) -> list[str]:
        return [r["env"]["NOTIFY_TYPE"] for r in self.records()]

    def stored(self) -> dict[str, Any]:
        """The state database as {"keys": {key: {column: value}}, "outbox": {key: {...}}},
        read through SQLite (read-only) as any other reader would."""
        db = sqlite3.connect(f"file:{self.state}?mode=ro", uri=True)
        try:
            db.row_factory = sqlite3.Row
            out: dict[str, Any] = {}
            for table in ("keys", "outbox"):
                rows = db.execute(f"SELECT * FROM {table}").fetchall()  # noqa: S608
                out[table] = {
                    bytes(r["key"]).decode("utf-8", "surrogateescape"): dict(r) for r in rows
                }
            return out
        finally:
            db.close()
