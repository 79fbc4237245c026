"""notify_on_change's no-change run at 1, 10,000 and 100,000 keys, against the stdlib floor.

usage: python benchmarks/notify_keys.py [--rounds N] [--keys 1,10000,100000] [--wall]

Run it with the interpreter of the environment where check_imap is installed (the
venv's python): the console script next to ``sys.executable`` is measured. For each
key count a state database is written by notify_on_change's own store code, holding
that many confirmed-OK keys; the measured command is

    notify_on_change --state OK --key K --state-file F -- /bin/true

for a key K in the middle, so nothing changes and nothing is sent. The floor
(``floor.py notify``) is what any Python program must do for the same answer: open
the database, take the write lock, read the key's row, commit.

With valgrind installed the figures are instruction counts (callgrind, one run each:
they do not vary with the machine's load); otherwise, or with ``--wall``, the median
wall time of ``--rounds`` interleaved runs. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def console_script(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"notify_keys: {name} is not installed (pip install .)")
    return found


def make_state(path: Path, keys: int) -> str:
    """A state database with ``keys`` confirmed-OK keys; returns the key to ask for."""
    from check_imap.notify import policy
    from check_imap.notify.files import SQL_INSERT_KEY
    from check_imap.notify.store import Store, enc

    now = time.time() - 3600
    store = Store(str(path))
    store.open(now, print)
    ks = policy.KeyState(policy.OK)
    ks.streak, ks.confirmed, ks.since = 1, policy.OK, now
    fields = ks.fields()
    store.begin()
    store.db.executemany(
        SQL_INSERT_KEY, ((enc(f"service-{i:06d}.example!IMAP"), *fields) for i in range(keys))
    )
    store.commit()
    store.close()
    return f"service-{keys // 2:06d}.example!IMAP"


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "NOTIFY_"))}
    env["LC_ALL"] = "C.UTF-8"
    return env


def instructions(argv: list[str], env: dict[str, str]) -> int:
    valgrind = shutil.which("valgrind") or "valgrind"
    proc = subprocess.run(
        [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        # A fixed hash seed: string hashing decides dict and set layouts, which moved
        # the count by about 0.1 M from run to run.
        env={**env, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"notify_keys: {argv} exited {proc.returncode}: {proc.stderr[-500:]}")
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if not found:
        raise SystemExit(f"notify_keys: no instruction count from callgrind: {proc.stderr[-500:]}")
    return int(found.group(1))


def wall(cases: dict[str, list[str]], env: dict[str, str], rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in cases}
    for rnd in range(rounds + 2):  # two warm-up rounds
        names = list(cases)
        shift = rnd % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            code = subprocess.run(cases[name], env=env, capture_output=True, check=False)
            elapsed = time.perf_counter() - start
            if code.returncode != 0:
                raise SystemExit(f"notify_keys: {name} exited {code.returncode}: {code.stderr!r}")
            if rnd >= 2:
                times[name].append(elapsed)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=30, help="wall-time rounds (default 30)")
    parser.add_argument("--keys", default="1,10000,100000", help="key counts (comma-separated)")
    parser.add_argument("--wall", action="store_true", help="wall time even with valgrind")
    args = parser.parse_args(argv)
    counts = [int(k) for k in args.keys.split(",")]
    notify = console_script("notify_on_change")
    use_callgrind = shutil.which("valgrind") is not None and not args.wall
    env = child_env()
    with tempfile.TemporaryDirectory(prefix="notify-keys-") as tmp:
        cases: dict[str, list[str]] = {}
        for keys in counts:
            state = Path(tmp) / f"k{keys}" / "state.db"
            key = make_state(state, keys)
            floor = [sys.executable, str(HERE / "floor.py"), "notify", str(state), key]
            run = [notify, "--state", "OK", "--key", key, "--state-file", str(state)]
            cases[f"floor ({keys:,})"] = floor
            cases[f"notify_on_change ({keys:,})"] = [*run, "--", "/bin/true"]
        for case in cases.values():  # checked once, and bytecode caches filled
            subprocess.run(case, env=env, check=True, capture_output=True, timeout=60)
        if use_callgrind:
            figures = {name: float(instructions(a, env)) for name, a in cases.items()}
            unit, shown = "instructions (callgrind)", "{:,.0f}"
        else:
            figures = wall(cases, env, args.rounds)
            unit, shown = f"median wall time of {args.rounds} rounds, ms", "{:.1f}"
            figures = {k: v * 1000 for k, v in figures.items()}
    base = figures[f"notify_on_change ({counts[0]:,})"]
    print(f"notify_on_change, no-change run; {unit}; Python {sys.version.split()[0]}\n")
    print("| keys | floor | notify_on_change | ÷ floor | ÷ 1 key |")
    print("|---:|---:|---:|---:|---:|")
    for keys in counts:
        floor_v = figures[f"floor ({keys:,})"]
        ours = figures[f"notify_on_change ({keys:,})"]
        print(
            f"| {keys:,} | {shown.format(floor_v)} | {shown.format(ours)} "
            f"| {ours / floor_v:.2f}× | {ours / base:.2f}× |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
