"""Run the installed commands as subprocesses, exactly as Nagios would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent


def command(name: str) -> str:
    """The installed console script next to this interpreter (the venv's), else PATH."""
    candidate = BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed (pip install .)")
    return found


@dataclass
class Run:
    rc: int
    out: str
    err: str
    elapsed: float

    @property
    def first_line(self) -> str:
        return self.out.split("\n", 1)[0]

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    def seconds(self, metric: str = "time") -> float:
        """A time the plugin reported in its perfdata (``time`` is the whole session).

        Measured inside the check, it leaves out the interpreter's start-up, which a
        busy machine can stretch by a second: the bound a test means is on this."""
        for item in self.perfdata[2:].split():
            label, _, value = item.partition("=")
            if label == metric:
                return float(value.split(";", 1)[0].rstrip("s"))
        raise AssertionError(f"no {metric} in the perfdata: {self.first_line}")

    @property
    def perfdata(self) -> str:
        """``| perfdata`` from the first line (where it is at every -v), or ""."""
        _status, bar, perf = self.first_line.partition(" | ")
        return f"| {perf}" if bar else ""


def run(
    name: str,
    *args: str,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    prefix: tuple[str, ...] = (),
) -> Run:
    """Run an installed command; ``prefix`` wraps it (e.g. in a private mount namespace)."""
    full_env = dict(os.environ, **(env or {}))
    start = time.monotonic()
    proc = subprocess.run(
        [*prefix, command(name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


def check_imap(*args: str, timeout: float = 60) -> Run:
    return run("check_imap", *args, timeout=timeout)
