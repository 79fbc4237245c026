"""Making the state database: new, imported from a version-1 JSON file, or afresh after
a corrupt one is moved aside. Loaded only then: an ordinary run just opens it (files.py).
"""

from __future__ import annotations

import os
import sqlite3

from check_imap.notify import StateError, policy
from check_imap.notify.files import (
    APP_ID,
    HEADER,
    KEEP_SENT,
    MAX_V1_BYTES,
    PRIVATE,
    SCHEMA,
    SCHEMA_SQL,
    SQL_INSERT_KEY,
    StateFile,
    enc,
    reason,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms)
if TYPE_CHECKING:
    from collections.abc import Callable


def _stamp(now: float) -> str:
    import time

    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(policy.moment(now)))


def create_db(sf: StateFile, fill: Callable[[sqlite3.Connection], None] | None) -> str:
    """A complete database under a temporary name, so that the path only ever shows
    a whole one (with our application_id in its header). Returns the temp name."""
    _remove_stale_temps(sf)
    temp = f"{sf.path}.new-{sf.token}-{os.urandom(2).hex()}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE)
    os.fchmod(fd, PRIVATE)  # O_CREAT's mode is subject to the umask
    os.close(fd)
    try:
        db = sqlite3.connect(temp, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("BEGIN")
            for sql in SCHEMA_SQL:
                db.execute(sql)
            db.execute(f"PRAGMA application_id={APP_ID}")
            db.execute(f"PRAGMA user_version={SCHEMA}")
            if fill is not None:
                fill(db)
            db.execute("COMMIT")
        finally:
            db.close()  # the last connection checkpoints the WAL into the file
        if fill is None:
            # FileExistsError: another run was quicker; its database is as good as ours
            try:  # noqa: SIM105  (contextlib costs start-up time)
                os.link(temp, sf.path)
            except FileExistsError:
                pass
            return ""
        return temp
    finally:
        if fill is None:
            _unlink_all(temp)


def _remove_stale_temps(sf: StateFile) -> None:
    """Temporary databases of runs killed while creating one (over a minute old)."""
    import time

    prefix = os.path.basename(sf.path) + ".new-"
    try:
        entries = [e for e in os.scandir(sf.directory) if e.name.startswith(prefix)]
    except OSError:
        return
    for entry in entries:
        try:
            if entry.stat(follow_symlinks=False).st_mtime < time.time() - 60:
                os.unlink(entry.path)
        except OSError:
            pass


def move_aside(sf: StateFile, now: float) -> str:
    """Rename a corrupt file (and its -wal/-shm) to `<path>.corrupt-<UTC time>`."""
    target = f"{sf.path}.corrupt-{_stamp(now)}"
    if os.path.lexists(target):
        target = f"{target}-{os.getpid()}"
    try:
        os.rename(sf.path, target)
    except OSError as exc:
        raise StateError(f"cannot move corrupt {sf.path} aside: {reason(exc)}") from None
    for suffix in ("-wal", "-shm"):
        if os.path.lexists(sf.path + suffix):
            os.rename(sf.path + suffix, target + suffix)
    return target


def migrate(
    sf: StateFile, fd: int, st: os.stat_result | None, now: float, warn: Callable[[str], None]
) -> None:
    """Import the version-1 JSON file open on ``fd`` (or move it aside if corrupt)."""
    import fcntl

    from check_imap.notify import legacy

    fcntl.flock(fd, fcntl.LOCK_EX)  # importers queue up on the JSON file itself
    current = os.lstat(sf.path) if os.path.lexists(sf.path) else None
    if st is None or current is None or current.st_ino != st.st_ino:
        return  # another run imported it meanwhile
    if st.st_size > MAX_V1_BYTES:
        raise StateError(f"refusing {sf.path}: {st.st_size} bytes is too large to import")
    raw = _read_all(fd, MAX_V1_BYTES)
    try:
        data = legacy.parse(raw)
    except legacy.Corrupt as exc:
        aside = move_aside(sf, now)
        warn(f"state file {sf.path} was corrupt ({exc}); moved to {aside}; keys start afresh")
        return
    temp = create_db(sf, lambda db: _fill(db, data))
    try:
        imported = f"{sf.path}.v1-imported"
        if os.path.lexists(imported):
            imported += f"-{_stamp(now)}-{os.getpid()}"
        os.link(sf.path, imported)
        os.rename(temp, sf.path)  # the path shows the JSON, then the database
    finally:
        _unlink_all(temp)
    warn(f"imported {len(data.keys)} keys from {sf.path}; the JSON file is now {imported}")


def import_legacy(sf: StateFile, legacy_path: str, now: float, warn: Callable[[str], None]) -> bool:
    """At the default path: import the old default's state.json once."""
    try:
        fd, st, head = sf._inspect(legacy_path)
    except StateError:
        return False
    if fd < 0:
        return False
    try:
        if head.startswith(HEADER):
            return False
        old = sf.path
        sf.path = legacy_path
        try:
            migrate(sf, fd, st, now, warn)
        finally:
            sf.path = old
        # _migrate left a database at the legacy path: move it to the new one.
        if os.path.isfile(legacy_path) and not os.path.lexists(sf.path):
            os.rename(legacy_path, sf.path)
        return True
    finally:
        os.close(fd)


def recover(
    sf: StateFile, exc: sqlite3.DatabaseError, now: float, warn: Callable[[str], None]
) -> None:
    """After a database error: a corrupt database is moved aside and started afresh."""
    sf.close()
    verdict = str(exc)
    try:
        db = sqlite3.connect(sf.path, timeout=sf.busy_timeout, isolation_level=None)
        try:
            rows = db.execute("PRAGMA quick_check").fetchall()
            version = db.execute("PRAGMA user_version").fetchone()[0]
        finally:
            db.close()
        if rows == [("ok",)] and version == SCHEMA:
            raise StateError(f"state file {sf.path}: {exc}")
        if rows != [("ok",)]:
            verdict = "; ".join(str(r[0]) for r in rows[:3])
    except sqlite3.DatabaseError as again:
        verdict = str(again)
    aside = move_aside(sf, now)
    warn(f"state file {sf.path} was corrupt ({verdict}); moved to {aside}; keys start afresh")
    sf.open(now, warn)


def _read_all(fd: int, limit: int) -> bytes:
    chunks = []
    total = 0
    while total <= limit:
        chunk = os.pread(fd, 1 << 20, total)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)[: limit + 1]


def _unlink_all(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:  # noqa: SIM105  (contextlib costs start-up time)
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass


def _fill(db: sqlite3.Connection, data: object) -> None:
    from check_imap.notify.legacy import Imported

    if not isinstance(data, Imported):
        raise TypeError(data)
    db.executemany(
        SQL_INSERT_KEY,
        ((enc(key), *ks.fields()) for key, ks in data.keys.items()),
    )
    db.executemany("INSERT INTO sent(at) VALUES (?)", ((t,) for t in data.sent[-KEEP_SENT:]))
    db.executemany(
        "INSERT INTO suppressed(key, type, state, at) VALUES (?, ?, ?, ?)",
        ((enc(k), kind, state, at) for k, kind, state, at in data.suppressed),
    )
