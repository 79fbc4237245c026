"""Benchmark check_imap against the C plugins and the stdlib Python floor, on a real Dovecot.

usage: python benchmarks/bench.py [--rounds N] [--warmup N] [--out FILE] [--json FILE]

Run it with the interpreter of the environment where check_imap is installed (the
venv's python, never a pyenv shim): the console scripts next to ``sys.executable`` are
measured, and the floor scripts run on that same interpreter.

Dovecot is started through tests/dovecot.py, the fixture the integration tests use, and
stopped in a ``finally``. Every command runs once, checked, to warm caches; then all
commands run interleaved (one of each per round, the order rotating) for ``--rounds``
rounds after ``--warmup`` untimed rounds. Wall time is ``time.perf_counter`` around
spawn and ``wait4``; CPU (user + system) and peak RSS come from the child's own
``wait4`` resource usage. The children are spawned by a small launcher process
(``python -I -S``): Linux folds the RSS of the process that forks into the child's
peak, so a big harness would inflate every figure; the launcher's own floor is
measured with ``/bin/true`` and reported.
"""

from __future__ import annotations

import argparse
import json
import marshal
import os
import platform
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from support import dovecot as dc  # noqa: E402  (the tests' own Dovecot fixture)
from support.processes import command as console_script  # noqa: E402  (as the tests find it)

C_PLUGINS = Path("/usr/lib/nagios/plugins")
HOST = "127.0.0.1"
NOTIFY_KEYS = (1, 10_000, 100_000)
UNKNOWN = 3  # --help and --version are UNKNOWN, as the plugin guidelines want

# The launcher: spawns each child with stdio on /dev/null and reports wait4's figures.
# It imports nothing beyond os/sys/time/marshal, so its RSS (which Linux copies into the
# peak of each child it forks) stays small.
LAUNCHER = r"""
import marshal, os, sys, time
plan = marshal.loads(sys.stdin.buffer.read())
null = os.open(os.devnull, os.O_RDWR)
actions = [(os.POSIX_SPAWN_DUP2, null, fd) for fd in (0, 1, 2)]
out = []
cases = plan["cases"]
for rnd in range(plan["rounds"]):
    shift = rnd % len(cases)
    for name, argv, env in cases[shift:] + cases[:shift]:
        start = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
        _, status, ru = os.wait4(pid, 0)
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        out.append((rnd, name, wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, code))
sys.stdout.buffer.write(marshal.dumps(out))
"""


@dataclass
class Case:
    name: str  # as shown in the table
    group: str  # table section; ratios are to the floor of the same group
    argv: list[str]
    expect: int = 0  # exit code
    env: dict[str, str] = field(default_factory=dict)
    role: str = ""  # "floor", "c" or "" (check_imap or notify_on_change)


@dataclass
class Stats:
    wall: float
    cpu: float
    rss_mib: float
    runs: int
    instructions: int | None = None  # callgrind, one run, where valgrind is installed


def child_env(cache_home: str) -> dict[str, str]:
    """The environment of every measured command: ours, minus what would distort it.

    PYTHONDONTWRITEBYTECODE is dropped (production runs use cached bytecode), and
    XDG_CACHE_HOME points at a private directory, so check_imap's certificate cache
    is warm after the first run and nobody else's cache is touched.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["XDG_CACHE_HOME"] = cache_home
    env["LC_ALL"] = "C.UTF-8"
    return env


def make_state_file(path: Path, keys: int) -> str:
    """A state database holding ``keys`` confirmed-OK keys, written by notify_on_change's
    own store code (so its format is the real one). Returns the key to invoke with."""
    from notify_keys import make_state

    return make_state(path, keys)


def system_store(work: Path, ca: Path) -> dict[str, str] | None:
    """A copy of the system trust store with the test CA added, as SSL_CERT_* variables.

    The hashed directory holds links to every entry of the system's (``/etc/ssl/certs``
    on Debian) plus the CA under its subject hash; the bundle is the system bundle with
    the CA appended. Both a naive ``ssl.create_default_context()`` and check_imap
    without --ca-file then verify the Dovecot as they would a server with a public CA.
    None when the platform has no hashed directory, bundle or ``openssl`` to hash with.
    """
    paths = ssl.get_default_verify_paths()
    openssl = shutil.which("openssl")
    if not (paths.capath and paths.cafile and openssl and os.path.isdir(paths.capath)):
        return None
    subject_hash = subprocess.run(
        [openssl, "x509", "-hash", "-noout", "-in", str(ca)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    store = work / "system-store"
    certs = store / "certs"
    certs.mkdir(parents=True)
    for entry in os.scandir(paths.capath):
        (certs / entry.name).symlink_to(os.path.join(paths.capath, entry.name))
    index = 0
    while (certs / f"{subject_hash}.{index}").exists():
        index += 1
    (certs / f"{subject_hash}.{index}").symlink_to(ca)
    bundle = store / "ca-certificates.crt"
    bundle.write_bytes(Path(paths.cafile).read_bytes() + b"\n" + ca.read_bytes())
    return {"SSL_CERT_DIR": str(certs), "SSL_CERT_FILE": str(bundle)}


def build_cases(bed: dc.Dovecot, work: Path, with_c: bool) -> list[Case]:
    py = sys.executable
    floor = str(HERE / "floor.py")
    check = console_script("check_imap")
    notify = console_script("notify_on_change")
    plain, tls, ca = str(bed.main.plain_port), str(bed.main.tls_port), str(bed.ca_file)
    c_imap, c_simap = C_PLUGINS / "check_imap", C_PLUGINS / "check_simap"
    cases = [
        Case("python -c pass", "start-up", [py, "-c", "pass"], role="floor"),
        Case("check_imap --version", "start-up", [check, "--version"], UNKNOWN),
        Case("check_imap --help", "start-up", [check, "--help"], UNKNOWN),
        Case("floor plain", "plain", [py, floor, "plain", HOST, plain], role="floor"),
        Case("check_imap", "plain", [check, "-H", HOST, "-p", plain]),
    ]
    if with_c and c_imap.exists():
        argv = [str(c_imap), "-H", HOST, "-p", plain]
        cases.append(Case("C check_imap", "plain", argv, role="c"))
    cases += [
        Case("floor TLS", "TLS", [py, floor, "tls", HOST, tls, ca], role="floor"),
        Case("check_imap --tls", "TLS", [check, "-H", HOST, "-p", tls, "--tls", "--ca-file", ca]),
        Case(
            "check_imap --tls --cert-cache off",
            "TLS",
            [check, "-H", HOST, "-p", tls, "--tls", "--ca-file", ca, "--cert-cache", "off"],
        ),
    ]
    if with_c and c_simap.exists():
        argv = [str(c_simap), "-H", HOST, "-p", tls, "-D", "21,7"]
        cases.append(Case("C check_simap -D 21,7", "TLS", argv, role="c"))
    store = system_store(work, bed.ca_file)
    if store is not None:  # the CA is in the (copied) system store: no --ca-file
        group = "system store"
        argv = [py, floor, "tls", HOST, tls]
        cases.append(Case("naive create_default_context()", group, argv, env=store, role="floor"))
        argv = [check, "-H", HOST, "-p", tls, "--tls"]
        cases.append(Case("check_imap --tls (system store)", group, argv, env=store))
    cases += [
        Case("floor STARTTLS", "STARTTLS", [py, floor, "starttls", HOST, plain, ca], role="floor"),
        Case(
            "check_imap --starttls",
            "STARTTLS",
            [check, "-H", HOST, "-p", plain, "--starttls", "--ca-file", ca],
        ),
    ]
    for keys in NOTIFY_KEYS:
        state = work / f"state-{keys}" / "state.db"
        key = make_state_file(state, keys)
        label = f"{keys:,} key" + ("s" if keys != 1 else "")
        group = f"notify, {label}"
        cases.append(
            Case(
                f"floor notify ({label})",
                group,
                [py, floor, "notify", str(state), key],
                role="floor",
            )
        )
        argv = [notify, "--state", "OK", "--key", key, "--state-file", str(state)]
        argv += ["--", "/bin/true"]
        cases.append(Case(f"notify_on_change, no change ({label})", group, argv))
    return cases


def validate(cases: list[Case], env: dict[str, str]) -> None:
    """Run each command once (this also fills caches) and stop on a wrong exit code."""
    for case in cases:
        proc = subprocess.run(
            case.argv,
            env={**env, **case.env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != case.expect:
            first = (proc.stdout or proc.stderr).strip().splitlines()[:1]
            raise SystemExit(
                f"bench: {case.name}: exit {proc.returncode}, expected {case.expect}: {first}"
            )


def measure(
    cases: list[Case], env: dict[str, str], rounds: int, warmup: int
) -> tuple[dict[str, Stats], float]:
    """Interleaved runs through the launcher; returns medians and the launcher's RSS floor."""
    calibrate = Case("/bin/true", "floor", ["/bin/true"])
    every = [*cases, calibrate]
    plan = {
        "rounds": warmup + rounds,
        "cases": [(c.name, c.argv, {**env, **c.env}) for c in every],
    }
    launcher = [sys.executable, "-I", "-S", "-c", LAUNCHER]
    proc = subprocess.run(
        launcher, input=marshal.dumps(plan), capture_output=True, timeout=3600, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"bench: launcher failed: {proc.stderr.decode(errors='replace')}")
    rows = marshal.loads(proc.stdout)  # noqa: S302  (our own launcher's output)
    expect = {c.name: c.expect for c in every}
    by_name: dict[str, list[tuple[float, float, int]]] = {c.name: [] for c in every}
    for rnd, name, wall, cpu, maxrss, code in rows:
        if code != expect[name]:
            raise SystemExit(f"bench: {name}: exit {code} in round {rnd}, expected {expect[name]}")
        if rnd >= warmup:
            by_name[name].append((wall, cpu, maxrss))
    stats = {
        name: Stats(
            wall=statistics.median(r[0] for r in runs),
            cpu=statistics.median(r[1] for r in runs),
            rss_mib=max(r[2] for r in runs) / 1024,  # ru_maxrss is in KiB on Linux
            runs=len(runs),
        )
        for name, runs in by_name.items()
    }
    return stats, stats.pop(calibrate.name).rss_mib


def count_instructions(cases: list[Case], env: dict[str, str], stats: dict[str, Stats]) -> bool:
    """One run of each command under callgrind: instruction counts do not depend on load.

    A command whose exit code differs under valgrind (a timing threshold, say) gets no
    count rather than a wrong one. False when valgrind is not installed.
    """
    valgrind = shutil.which("valgrind")
    if not valgrind:
        return False
    for case in cases:
        for _attempt in range(2):  # a slow run under valgrind may miss a deadline once
            proc = subprocess.run(
                [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *case.argv],
                env={**env, **case.env},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            found = re.search(r"Collected : (\d+)", proc.stderr)
            if proc.returncode == case.expect and found:
                stats[case.name].instructions = int(found.group(1))
                break
        else:
            first = proc.stdout.strip().splitlines()[:1]
            print(
                f"bench: {case.name}: no count under callgrind: exit {proc.returncode} {first}",
                file=sys.stderr,
            )
    return True


def machine() -> list[str]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        debian = "Debian " + Path("/etc/debian_version").read_text().strip()
    except OSError:
        debian = platform.platform()
    c_pkg = ""
    with_dpkg = shutil.which("dpkg-query")
    if with_dpkg:
        q = subprocess.run(
            [
                with_dpkg,
                "-W",
                "-f=${Package} ${Version}; ",
                "monitoring-plugins-basic",
                "dovecot-imapd",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        c_pkg = q.stdout.strip().rstrip(";")
    return [
        f"{os.cpu_count()} CPU(s), {cpu}; {debian}; Linux {platform.release()}",
        f"Python {platform.python_version()} ({sys.executable}), {ssl.OPENSSL_VERSION}",
        f"packages: {c_pkg or 'monitoring-plugins-basic, dovecot-imapd: not known'}",
    ]


def ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}×" if base else "–"


def table(cases: list[Case], stats: dict[str, Stats], rss_floor: float, counted: bool) -> str:
    floors = {c.group: stats[c.name] for c in cases if c.role == "floor"}
    c_rows = {c.group: stats[c.name] for c in cases if c.role == "c"}
    head = "| group | command | wall ms | CPU ms | peak RSS MiB | wall ÷ floor | wall ÷ C |"
    rule = "|---|---|---:|---:|---:|---:|---:|"
    if counted:
        head += " M instructions | instr. ÷ floor |"
        rule += "---:|---:|"
    lines = [head, rule]
    for case in cases:
        s = stats[case.name]
        floor = floors.get(case.group)
        c = c_rows.get(case.group)
        rss = f"{s.rss_mib:.1f}"
        if s.rss_mib <= rss_floor + 0.2:
            rss = f"≤{rss_floor:.1f}"
        lines.append(
            f"| {case.group} | `{case.name}` | {s.wall * 1000:.1f} | {s.cpu * 1000:.1f} | {rss} "
            f"| {ratio(s.wall, floor.wall if floor else None)} "
            f"| {ratio(s.wall, c.wall if c else None)} |"
        )
        if counted:
            count = s.instructions
            base = floor.instructions if floor else None
            shown = f"{count / 1e6:.1f}" if count else "–"
            lines[-1] += f" {shown} | {ratio(count, base) if count else '–'} |"
    return "\n".join(lines)


def derived(cases: list[Case], stats: dict[str, Stats]) -> list[str]:
    """The figures the targets are stated in that are not a row's own ratio."""
    out = []
    names = [f"notify_on_change, no change ({k:,} key{'s' if k != 1 else ''})" for k in NOTIFY_KEYS]
    small = names[0]
    for k, big in zip(NOTIFY_KEYS[1:], names[1:]):
        if small in stats and big in stats:
            out.append(
                f"notify_on_change {k:,} keys ÷ {NOTIFY_KEYS[0]} key: "
                f"{stats[big].wall / stats[small].wall:.2f}× wall, "
                f"{stats[big].cpu / stats[small].cpu:.2f}× CPU"
            )
    if small in stats:
        base = stats["python -c pass"].wall
        out.append(
            f"notify_on_change ({NOTIFY_KEYS[0]} key) ÷ `python -c pass`: "
            f"{stats[small].wall / base:.2f}× wall"
        )
    out += targets(stats)
    warm, cold = stats.get("check_imap --tls"), stats.get("check_imap --tls --cert-cache off")
    if warm and cold:
        out.append(
            f"cold certificate cache (imports cryptography) costs "
            f"{(cold.wall - warm.wall) * 1000:+.1f} ms wall over a warm one"
        )
    return out


# The targets of issue #13: (label, command, the row it is a ratio to or None, limit).
TARGETS = (
    ("`--tls` ÷ stdlib floor", "check_imap --tls", "floor TLS", 1.5),
    ("`--tls` ÷ C `check_simap`", "check_imap --tls", "C check_simap -D 21,7", 4.0),
    ("plain ÷ its floor", "check_imap", "floor plain", 1.5),
    (
        "system store ÷ naive `create_default_context()`",
        "check_imap --tls (system store)",
        "naive create_default_context()",
        1.0,
    ),
    ("`--help` ÷ `python -c pass`", "check_imap --help", "python -c pass", 2.0),
    ("`--version` ÷ `python -c pass`", "check_imap --version", "python -c pass", 2.0),
)
RSS_TARGET_MB = 30  # peak RSS with a cold certificate cache, cryptography loaded


def targets(stats: dict[str, Stats]) -> list[str]:
    """Each target of #13 against this run: wall ratio, and the instruction ratio too."""
    out = []
    for label, name, base, limit in TARGETS:
        row, ref = stats.get(name), stats.get(base)
        if row is None or ref is None:
            continue
        got = row.wall / ref.wall
        text = f"target {label} ≤ {limit:g}×: {got:.2f}× wall"
        if row.instructions and ref.instructions:
            text += f", {row.instructions / ref.instructions:.2f}× instructions"
        out.append(text + (" (met)" if got <= limit else " (**not met**)"))
    cold = stats.get("check_imap --tls --cert-cache off")
    if cold:
        mb = cold.rss_mib * 1.048576
        verdict = "(met)" if mb <= RSS_TARGET_MB else "(**not met**)"
        out.append(
            f"target peak RSS, cold certificate cache ≤ {RSS_TARGET_MB} MB: "
            f"{cold.rss_mib:.1f} MiB = {mb:.1f} MB {verdict}"
        )
    return out


BEGIN, END = "<!-- report -->\n", "<!-- /report -->\n"


def write_report(path: Path, text: str) -> None:
    """Replace the report between the markers of ``path``, or write the whole file."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        text = head + BEGIN + text + END + rest.split(END, 1)[1]
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds (default 30)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds (default 2)")
    parser.add_argument("--no-c", action="store_true", help="leave out the C plugins")
    parser.add_argument(
        "--no-callgrind", action="store_true", help="no instruction counts, even with valgrind"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "docs" / "performance.md",
        help="also write the Markdown report here, between its report markers "
        "(default docs/performance.md)",
    )
    parser.add_argument("--json", type=Path, help="write the medians as JSON here")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 1000 or not 0 <= args.warmup <= 100:
        parser.error("--rounds must be 1-1000 and --warmup 0-100")
    reason = dc.unavailable()
    if reason:
        print(f"bench: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="check-imap-bench-") as tmp:
        work = Path(tmp)
        env = child_env(str(work / "cache"))
        bed = dc.start(specs=(dc.SPECS[0],))  # main: plain+STARTTLS and implicit TLS
        try:
            cases = build_cases(bed, work, with_c=not args.no_c)
            validate(cases, env)
            stats, rss_floor = measure(cases, env, args.rounds, args.warmup)
            counted = not args.no_callgrind and count_instructions(cases, env, stats)
        finally:
            bed.cleanup()
    report = [
        f"Medians of {args.rounds} interleaved rounds after {args.warmup} warm-up rounds "
        "(plus one checked run of each); peak RSS is the maximum over the rounds.",
        "",
        *(f"- {line}" for line in machine()),
        f"- peak RSS reads at least {rss_floor:.1f} MiB here (the launcher's floor, "
        "measured with /bin/true): `≤` marks a figure at that floor",
        "- children run without PYTHONDONTWRITEBYTECODE (bytecode cached, as in production), "
        "with a private, warm XDG_CACHE_HOME",
        "",
        table(cases, stats, rss_floor, counted),
        "",
        *(f"- {line}" for line in derived(cases, stats)),
    ]
    text = "\n".join(report) + "\n"
    sys.stdout.write(text)
    if args.out:
        write_report(args.out, text)
    if args.json:
        data = {name: vars(s) for name, s in stats.items()}
        args.json.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
