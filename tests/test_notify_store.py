"""notify_on_change's state file: SQLite of its own, import of version-1 JSON, refusals.

Every hostile or foreign path is refused with one line and exit 3, and left exactly as
it was: no byte changed, no -wal/-shm beside it. Real processes, real files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from check_imap.notify.store import Store, default_path
from support.recorders import Notifier

CHECK_CRIT = "sh -c 'echo \"IMAP CRITICAL - refused | time=1s\"; exit 2'"
APP_ID = 0x4E6F4348


@pytest.fixture
def n(tmp_path: Path) -> Notifier:
    return Notifier(tmp_path)


def _only_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 3, result
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("notify_on_change: ")
    assert text in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def _snapshot(directory: Path) -> dict[str, tuple[int, str]]:
    """Names, modes and content digests: what "left untouched" means."""
    out = {}
    for path in sorted(directory.iterdir()):
        st = path.lstat()
        digest = ""
        if stat.S_ISREG(st.st_mode):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            digest = os.readlink(path)
        out[path.name] = (st.st_mode, digest)
    return out


def _v1_key(**changes: object) -> dict[str, object]:
    key: dict[str, object] = {
        "observed": "CRITICAL", "streak": 1, "confirmed": "CRITICAL", "previous": "OK",
        "since": 1_699_999_000.0, "notified": "CRITICAL", "last_notified": 1_699_999_000.0,
        "history": [], "flapping": False, "flap_since": 0.0, "flap_notified": False,
        "failures": 0, "failed_sig": "", "retry_at": 0.0, "suppressed_sig": "",
        "suppressed_at": 0.0,
    }  # fmt: skip
    key.update(changes)
    return key


def _write_v1(path: Path, keys: dict[str, object], text: str | None = None) -> bytes:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    doc = {"version": 1, "data": {"keys": keys, "sent": [1_699_999_000.0], "suppressed": []}}
    body = text if text is not None else json.dumps(doc, sort_keys=True, indent=1) + "\n"
    path.write_text(body)
    path.chmod(0o600)
    return path.read_bytes()


# --- our database -------------------------------------------------------------------


def test_database_is_private_wal_and_ours(n: Notifier) -> None:
    old = os.umask(0)
    try:
        assert n.run("--state", "critical", "--key", "k", *n.command()).returncode == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(n.state.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(n.state.stat().st_mode) == 0o600
    header = n.state.read_bytes()[:100]
    assert header.startswith(b"SQLite format 3\0")
    assert int.from_bytes(header[68:72], "big") == APP_ID
    db = sqlite3.connect(f"file:{n.state}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA user_version").fetchone() == (1,)
    finally:
        db.close()
    assert sorted(p.name for p in n.state.parent.iterdir() if ".new-" in p.name) == []


def test_newer_schema_is_refused_not_discarded(n: Notifier) -> None:
    n.run("--state", "ok", "--key", "k", *n.command())
    db = sqlite3.connect(n.state)
    db.execute("PRAGMA user_version=99")
    db.close()
    _only_error(n.run("--state", "critical", "--key", "k", *n.command()), "newer than 1")
    assert n.records() == []


def test_corrupt_database_is_moved_aside_and_started_afresh(n: Notifier) -> None:
    assert n.run("--state", "critical", "--key", "k", *n.command()).returncode == 0
    data = bytearray(n.state.read_bytes())
    page = 4096
    data[page:] = b"\xa5" * (len(data) - page)  # every page but the header page
    n.state.write_bytes(bytes(data))
    for side in ("-wal", "-shm"):
        Path(f"{n.state}{side}").unlink(missing_ok=True)
    result = n.run("--state", "ok", "--key", "k", *n.command("{type}"))
    assert result.returncode == 0, result
    aside = f"{n.state}.corrupt-20231114T221320Z"
    assert result.stderr.startswith(f"notify_on_change: state file {n.state} was corrupt (")
    assert result.stderr.endswith(f"); moved to {aside}; keys start afresh\n")
    assert Path(aside).read_bytes() == bytes(data)
    assert n.types() == ["PROBLEM"]  # no recovery for a problem we forgot
    assert n.run("--state", "critical", "--key", "k", *n.command()).returncode == 0
    assert n.types() == ["PROBLEM", "PROBLEM"]


# --- version-1 JSON -----------------------------------------------------------------


def test_v1_json_is_imported_once_and_kept(n: Notifier) -> None:
    raw = _write_v1(n.state, {"mail!IMAP": _v1_key(), "other": _v1_key(notified=None)})
    first = n.run("--state", "critical", "--key", "mail!IMAP", *n.command("{type}"))
    assert first.returncode == 0, first
    assert first.stderr == (
        f"notify_on_change: imported 2 keys from {n.state}; the JSON file is now "
        f"{n.state}.v1-imported\n"
    )
    assert Path(f"{n.state}.v1-imported").read_bytes() == raw
    assert n.state.read_bytes().startswith(b"SQLite format 3\0")
    assert n.records() == []  # the receiver already knew: no repeated PROBLEM
    recovered = n.run("--state", "ok", "--key", "mail!IMAP", *n.command("{type}"))
    assert (recovered.returncode, recovered.stderr) == (0, "")
    assert n.types() == ["RECOVERY"]
    keys = json.loads(n.run("status", "--json").stdout)["keys"]
    assert [k["key"] for k in keys] == ["mail!IMAP", "other"]


def test_v1_json_with_nan_and_huge_timestamps_imports_and_status_works(n: Notifier) -> None:
    text = json.dumps(
        {"version": 1, "data": {"keys": {"k": _v1_key(since=float("nan"), last_notified=1e300,
         streak=float("inf"))}, "sent": [float("nan")], "suppressed": []}}
    )  # fmt: skip
    _write_v1(n.state, {}, text)
    assert "NaN" in n.state.read_text()
    result = n.run("--state", "critical", "--key", "k", *n.command())
    assert result.returncode == 0, result
    status = n.run("status")
    assert (status.returncode, status.stderr) == (0, "")
    assert status.stdout.splitlines()[1].split()[:3] == ["k", "CRITICAL", "-"]


def test_truncated_v1_json_is_moved_aside_without_phantom_recovery(n: Notifier) -> None:
    text = '{"version": 1, "data": {"keys": {"k": "half-writ'
    raw = _write_v1(n.state, {}, text)
    result = n.run("--state", "ok", "--key", "k", *n.command())
    assert result.returncode == 0
    aside = f"{n.state}.corrupt-20231114T221320Z"
    assert result.stderr == (
        f"notify_on_change: state file {n.state} was corrupt (not valid JSON: "
        "Unterminated string starting at: line 1 column 39 (char 38)); "
        f"moved to {aside}; keys start afresh\n"
    )
    assert Path(aside).read_bytes() == raw
    assert n.records() == []
    assert n.run("--state", "critical", "--key", "k", *n.command()).returncode == 0
    assert len(n.records()) == 1


def test_v1_json_of_wrong_shape_is_moved_aside(n: Notifier) -> None:
    _write_v1(n.state, {}, '{"version": 1, "data": {"keys": {"k": {"observed": "OK"}}}}')
    result = n.run("--state", "critical", "--key", "k", *n.command())
    assert result.returncode == 0
    assert "was corrupt (unexpected content: KeyError('sent'))" in result.stderr or (
        "was corrupt (unexpected content" in result.stderr
    )


def test_default_paths() -> None:
    env = {"NOTIFY_ON_CHANGE_STATE": "/x/s.db", "XDG_STATE_HOME": "/xdg"}
    assert default_path(env, 0) == "/x/s.db"
    assert default_path({"XDG_STATE_HOME": "/xdg"}, 0) == "/var/lib/notify_on_change/state.db"
    assert default_path({"XDG_STATE_HOME": "/xdg"}, 1000) == "/xdg/notify_on_change/state.db"
    home = os.path.expanduser("~")
    assert default_path({}, 1000) == f"{home}/.local/state/notify_on_change/state.db"


def test_old_default_state_json_is_imported_into_the_new_default(tmp_path: Path) -> None:
    """In-process: the CLI passes the old default (state.json) as ``legacy`` only when
    the path is a default one, and as root that is /var/lib, which a test must not touch."""
    old = tmp_path / "notify_on_change" / "state.json"
    raw = _write_v1(old, {"k": _v1_key()})
    notes: list[str] = []
    store = Store(str(old.with_name("state.db")))
    store.open(1_700_000_000.0, notes.append, legacy=str(old))
    try:
        ks, _ = store.load("k")
        assert ks is not None and ks.notified == "CRITICAL"
    finally:
        store.close()
    assert notes == [f"imported 1 keys from {old}; the JSON file is now {old}.v1-imported"]
    assert Path(f"{old}.v1-imported").read_bytes() == raw
    assert not old.exists()
    assert old.with_name("state.db").read_bytes().startswith(b"SQLite format 3\0")


# --- what is not ours ---------------------------------------------------------------


def _refused(n: Notifier, path: Path, text: str) -> None:
    directory = path.parent
    before = _snapshot(directory)
    for args in (
        ("--state", "critical", "--key", "k", "--state-file", str(path), *n.command()),
        ("status", "--state-file", str(path)),
        ("forget", "k", "--state-file", str(path)),
        ("flush", "--state-file", str(path)),
    ):
        start = time.monotonic()
        _only_error(n.run(*args), text)
        assert time.monotonic() - start < 10
    check = n.run("--check", CHECK_CRIT, "--key", "k", "--state-file", str(path), *n.command())
    assert (check.returncode, check.stdout) == (2, "IMAP CRITICAL - refused | time=1s\n")
    assert text in check.stderr and check.stderr.count("\n") == 1
    assert _snapshot(directory) == before
    assert n.records() == []


def test_foreign_text_file_is_refused_and_left_untouched(n: Notifier) -> None:
    decoy = n.tmp / "etc" / "passwd"
    decoy.parent.mkdir(mode=0o700)
    decoy.write_text("root:x:0:0:root:/root:/bin/bash\n")
    decoy.chmod(0o644)
    _refused(n, decoy, "not a notify_on_change state file")


def test_foreign_json_is_refused(n: Notifier) -> None:
    decoy = n.tmp / "conf" / "settings.json"
    decoy.parent.mkdir(mode=0o700)
    decoy.write_text('{"name": "something else", "version": 1}\n')
    _refused(n, decoy, "not a notify_on_change state file")


def test_foreign_sqlite_database_is_refused(n: Notifier) -> None:
    decoy = n.tmp / "app" / "data.db"
    decoy.parent.mkdir(mode=0o700)
    db = sqlite3.connect(decoy)
    db.execute("CREATE TABLE keys(key TEXT)")
    db.commit()
    db.close()
    _refused(n, decoy, "an SQLite database, but not notify_on_change's")


def test_empty_file_is_refused(n: Notifier) -> None:
    decoy = n.tmp / "d" / "nologin"
    decoy.parent.mkdir(mode=0o700)
    decoy.touch()
    _refused(n, decoy, "not a notify_on_change state file")


def test_symlink_is_refused_and_its_target_untouched(n: Notifier) -> None:
    target = n.tmp / "target"
    target.write_text("precious\n")
    link_dir = n.tmp / "links"
    link_dir.mkdir(mode=0o700)
    (link_dir / "state.db").symlink_to(target)
    _refused(n, link_dir / "state.db", "it is a symbolic link")
    assert target.read_text() == "precious\n"


def test_fifo_is_refused_without_hanging(n: Notifier) -> None:
    fifo_dir = n.tmp / "fifo"
    fifo_dir.mkdir(mode=0o700)
    os.mkfifo(fifo_dir / "state.db", 0o600)
    _refused(n, fifo_dir / "state.db", "not a regular file; left untouched")


def test_dev_null_is_refused(n: Notifier) -> None:
    result = n.run("--state", "critical", "--key", "k", "--state-file", "/dev/null", *n.command())
    _only_error(result, "refusing /dev/null: not a regular file")
    assert Path("/dev/null").is_char_device()
    assert not Path("/dev/null-wal").exists()


def test_world_writable_state_is_refused(n: Notifier) -> None:
    n.run("--state", "ok", "--key", "k", *n.command())
    n.state.chmod(0o666)
    _only_error(n.run("--state", "critical", "--key", "k", *n.command()), "it is world-writable")
    assert n.records() == []


def test_world_writable_directory_is_refused(n: Notifier) -> None:
    shared = n.tmp / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    path = shared / "state.db"
    result = n.run("--state", "critical", "--key", "k", "--state-file", str(path), *n.command())
    _only_error(result, f"refusing state directory {shared}: it is world-writable")
    assert list(shared.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_state_of_another_user_is_refused(n: Notifier) -> None:
    n.run("--state", "ok", "--key", "k", *n.command())
    os.chown(n.state, 65534, 65534)
    _only_error(n.run("--state", "critical", "--key", "k", *n.command()), "owned by uid 65534")


def _drop_root_privileges() -> tuple[str, ...]:
    """As root, file modes are not enforced; setpriv removes that power."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root without setpriv cannot test a read-only directory")
    return (setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--")


def test_read_only_state_directory(n: Notifier) -> None:
    assert n.run("--state", "ok", "--key", "k", *n.command()).returncode == 0
    prefix = _drop_root_privileges()
    n.state.parent.chmod(0o500)
    try:
        plain = n.run("--state", "critical", "--key", "k", *n.command(), prefix=prefix)
        _only_error(plain, f"state directory {n.state.parent} is not writable")
        check = n.run("--check", CHECK_CRIT, "--key", "k", *n.command(), prefix=prefix)
        assert (check.returncode, check.stdout) == (2, "IMAP CRITICAL - refused | time=1s\n")
        assert (
            check.stderr == f"notify_on_change: state directory {n.state.parent} is not writable\n"
        )
    finally:
        n.state.parent.chmod(0o700)
    assert n.records() == []  # nothing sent that could not be recorded


def test_the_no_change_run_loads_only_what_it_needs(n: Notifier) -> None:
    """Start-up is most of a no-change run's cost: each module is a file to find and
    unmarshal. argparse, re, subprocess and friends stay out, and so do our own
    modules for --help, creating the database, sending and the admin commands."""
    args = ("--state", "ok", "--key", "k", *n.command())
    assert n.run(*args).returncode == 0  # creates the state file
    code = (
        "import sys; from check_imap.notify.cli import main; code = main(sys.argv[1:]); "
        "print(' '.join(sorted(sys.modules))); sys.exit(code)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=n.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    loaded = set(proc.stdout.split())
    ours = {m for m in loaded if m.startswith("check_imap")}
    assert ours == {
        "check_imap",
        "check_imap.notify",
        "check_imap.notify.args",
        "check_imap.notify.cli",
        "check_imap.notify.engine",
        "check_imap.notify.files",
        "check_imap.notify.policy",
        "check_imap.notify.store",
    }
    unwanted = {"__future__", "argparse", "contextlib", "dataclasses", "enum", "json", "re"}
    unwanted |= {"shlex", "shutil", "signal", "subprocess", "typing"}
    assert loaded & unwanted == set()
