"""The notify_on_change state file: lock, versioned JSON, atomic replace, refusals."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import time
from pathlib import Path

import pytest

from check_imap.state import VERSION, CorruptState, StateError, StateFile, default_path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def sf(tmp_path: Path) -> StateFile:
    return StateFile(str(tmp_path / "d" / "state.json"))


def test_default_path_prefers_explicit_variable() -> None:
    env = {"NOTIFY_ON_CHANGE_STATE": "/x/s.json", "XDG_STATE_HOME": "/xdg"}
    assert default_path(env, 0) == "/x/s.json"


def test_default_path_for_root_and_users() -> None:
    assert default_path({"XDG_STATE_HOME": "/xdg"}, 0) == "/var/lib/notify_on_change/state.json"
    assert default_path({"XDG_STATE_HOME": "/xdg"}, 1000) == "/xdg/notify_on_change/state.json"
    home = os.path.expanduser("~")
    expected = f"{home}/.local/state/notify_on_change/state.json"
    assert default_path({}, 1000) == expected


def test_prepare_creates_private_directory(sf: StateFile) -> None:
    sf.prepare()
    assert _mode(Path(sf.directory)) == 0o700


def test_missing_file_loads_empty(sf: StateFile) -> None:
    assert sf.load() == {}


def test_save_load_round_trip_is_private_and_leaves_no_temp(sf: StateFile) -> None:
    sf.prepare()
    old = os.umask(0)
    try:
        sf.save({"keys": {"ü\n": 1.5}})
    finally:
        os.umask(old)
    assert sf.load() == {"keys": {"ü\n": 1.5}}
    path = Path(sf.path)
    assert _mode(path) == 0o600
    assert json.loads(path.read_text())["version"] == VERSION
    assert sorted(os.listdir(sf.directory)) == ["state.json"]


def test_save_removes_stale_temp_files(sf: StateFile) -> None:
    sf.prepare()
    stale = Path(sf.directory) / ".state.json.tmp.999.abcd"
    stale.write_text("half a write")
    other = Path(sf.directory) / "unrelated.tmp"
    other.write_text("keep")
    sf.save({})
    assert not stale.exists()
    assert other.exists()


def test_save_replaces_atomically(sf: StateFile) -> None:
    sf.prepare()
    sf.save({"n": 1})
    before = os.stat(sf.path).st_ino
    sf.save({"n": 2})
    assert os.stat(sf.path).st_ino != before  # a new inode: replaced, not rewritten
    assert sf.load() == {"n": 2}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "no version field"),
        (b'{"data": {}}', "no version field"),
        (b'{"version": 0, "data": {}}', "unsupported format version 0"),
        (b'{"version": 1, "data": []}', "unsupported format version 1"),
        (b"", "not valid JSON"),
    ],
)
def test_corrupt_content(sf: StateFile, content: bytes, reason: str) -> None:
    sf.prepare()
    Path(sf.path).write_bytes(content)
    with pytest.raises(CorruptState, match=reason):
        sf.load()


def test_newer_version_is_refused_not_discarded(sf: StateFile) -> None:
    sf.prepare()
    Path(sf.path).write_text('{"version": 99, "data": {}}')
    with pytest.raises(StateError, match="format version 99, newer than 1"):
        sf.load()


def test_move_aside_reports_the_new_name(sf: StateFile) -> None:
    sf.prepare()
    Path(sf.path).write_text("garbage")
    moment = 1_700_000_000.0
    first = sf.move_aside(moment)
    assert first == f"{sf.path}.corrupt-20231114T221320Z"
    assert Path(first).read_text() == "garbage"
    assert not Path(sf.path).exists()
    Path(sf.path).write_text("again")
    second = sf.move_aside(moment)
    assert second == f"{first}-{os.getpid()}"


def test_world_writable_file_is_refused(sf: StateFile) -> None:
    sf.prepare()
    sf.save({})
    os.chmod(sf.path, 0o666)  # noqa: S103 - the point of the test
    with pytest.raises(StateError, match="world-writable"):
        sf.load()


def test_symlink_is_refused(sf: StateFile, tmp_path: Path) -> None:
    sf.prepare()
    target = tmp_path / "elsewhere.json"
    target.write_text('{"version": 1, "data": {}}')
    os.symlink(target, sf.path)
    with pytest.raises(StateError, match="not a regular file"):
        sf.load()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_file_of_another_user_is_refused(sf: StateFile) -> None:
    sf.prepare()
    sf.save({})
    os.chown(sf.path, 65534, 65534)
    with pytest.raises(StateError, match="owned by uid 65534"):
        sf.load()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_lock_file_of_another_user_is_refused(sf: StateFile) -> None:
    sf.prepare()
    Path(sf.lock_path).touch()
    os.chown(sf.lock_path, 65534, 65534)
    with pytest.raises(StateError, match="owned by uid 65534"):
        sf.lock(1)


def test_lock_is_private_and_reusable(sf: StateFile) -> None:
    sf.prepare()
    sf.lock(1)
    sf.unlock()
    sf.lock(1)
    sf.unlock()
    assert _mode(Path(sf.lock_path)) == 0o600


def test_lock_wait_is_bounded(sf: StateFile) -> None:
    sf.prepare()
    fd = os.open(sf.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        start = time.monotonic()
        with pytest.raises(StateError, match=r"locked by another notify_on_change; gave up after"):
            sf.lock(0.3)
        assert 0.3 <= time.monotonic() - start < 2
    finally:
        os.close(fd)
    sf.lock(1)  # free again once the holder closes
    sf.unlock()


def test_unwritable_directory_is_reported(tmp_path: Path) -> None:
    parent = tmp_path / "file-not-dir"
    parent.write_text("")
    with pytest.raises(StateError, match="cannot create state directory"):
        StateFile(str(parent / "state.json")).prepare()
