"""The file behind notify_on_change's state: checked before SQLite may touch it.

One SQLite database (stdlib sqlite3, WAL journal, a busy timeout) per state path,
created complete under a temporary name and linked into place, so the path only ever
shows a whole database with our application_id in its header. A path that is not
our database, nor a version-1 JSON state file (imported once, the JSON kept as
``<path>.v1-imported``), is refused and left exactly as it is: opened with O_NOFOLLOW
and O_NONBLOCK, fstat-ed regular, owned by us, not world-writable, read in bounds.
"""

from __future__ import annotations

import os
import sqlite3
import stat

from check_imap.notify import StateError, policy

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

SCHEMA = 1  # PRAGMA user_version
APP_ID = 0x4E6F4348  # PRAGMA application_id: "NoCh", how we know a database is ours
HEADER = b"SQLite format 3\x00"
MAX_V1_BYTES = 256 << 20  # a version-1 JSON file larger than this is not read
_PRIVATE = 0o600

KEY_COLUMNS = policy.KeyState.__slots__
TEMPLATE_COLUMNS = ("command", "env", "message", "timeout", "remind", "budget_max", "budget_per")
OUTBOX_COLUMNS = (
    "key", "sig", "argv", "env", "timeout", "created", "attempts", "due_at",
    "lease_until", "owner", "error", "summary_upto",
)  # fmt: skip
SCHEMA_SQL = (
    f"CREATE TABLE keys(key BLOB PRIMARY KEY, {', '.join(KEY_COLUMNS + TEMPLATE_COLUMNS)})"
    " WITHOUT ROWID",
    f"CREATE TABLE outbox({', '.join(OUTBOX_COLUMNS)}, PRIMARY KEY(key)) WITHOUT ROWID",
    "CREATE INDEX outbox_due ON outbox(due_at)",
    "CREATE TABLE sent(id INTEGER PRIMARY KEY, at REAL NOT NULL)",
    "CREATE INDEX sent_at ON sent(at)",
    "CREATE TABLE suppressed(id INTEGER PRIMARY KEY, key BLOB, type TEXT, state TEXT, at REAL)",
)
_KEYS = ", ".join(KEY_COLUMNS)
_MARKS = ", ".join("?" * (len(KEY_COLUMNS) + 1))
SQL_INSERT_KEY = f"INSERT INTO keys(key, {_KEYS}) VALUES ({_MARKS})"  # noqa: S608
KEEP_SENT = 1000  # send times kept for the budget when no --per prunes them


def default_path(environ: Mapping[str, str], euid: int, name: str = "state.db") -> str:
    """$NOTIFY_ON_CHANGE_STATE, /var/lib/... for root, else the XDG state directory."""
    explicit = environ.get("NOTIFY_ON_CHANGE_STATE", "")
    if explicit:
        return explicit
    if euid == 0:
        return f"/var/lib/notify_on_change/{name}"
    base = environ.get("XDG_STATE_HOME", "") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "notify_on_change", name)


def enc(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def dec(data: object) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "surrogateescape")
    return data if isinstance(data, str) else ""


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _stamp(now: float) -> str:
    import time

    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(policy.moment(now)))


class StateFile:
    """Finding, checking, creating, importing and moving aside the database file."""

    def __init__(self, path: str, busy_timeout: float = 10.0) -> None:
        self.path = os.path.abspath(path)
        self.directory = os.path.dirname(self.path)
        self.busy_timeout = busy_timeout
        self._db: sqlite3.Connection | None = None
        self.token = f"{os.getpid()}.{os.urandom(4).hex()}"  # owner of our claims

    # --- opening ------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the directory (0700) and fail early if it cannot be used safely."""
        try:
            try:
                st = os.stat(self.directory)
            except FileNotFoundError:
                os.makedirs(self.directory, mode=0o700, exist_ok=True)
                st = os.stat(self.directory)
        except OSError as exc:
            raise StateError(
                f"cannot create state directory {self.directory}: {_reason(exc)}"
            ) from None
        if st.st_mode & 0o002:
            # Anyone could plant PATH-wal or PATH-shm as a link to a file of ours.
            raise StateError(f"refusing state directory {self.directory}: it is world-writable")
        # Checked before the command runs: a send that cannot be recorded would repeat.
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise StateError(f"state directory {self.directory} is not writable")

    def open(self, now: float, warn: Callable[[str], None], legacy: str | None = None) -> None:
        """Open our database at the path, creating it, or importing a version-1 JSON file
        (at the path, or at ``legacy``, the old default); refuse anything else."""
        self.prepare()
        for _ in range(8):  # another run may be creating or importing at the same time
            fd, st, head = self._inspect(self.path)
            if fd < 0:
                if not (legacy and self._import_legacy(legacy, now, warn)):
                    self._create(None)
                continue
            if head.startswith(HEADER):
                # Closed before SQLite opens the file: closing any descriptor of a file
                # drops all of this process's POSIX locks on it, SQLite's included, and
                # SQLite would then take others' WAL for its own to checkpoint and delete.
                os.close(fd)
                if self._connect(st):
                    return
                continue
            try:
                self._migrate(fd, st, now, warn)
            finally:
                os.close(fd)
        raise StateError(f"state file {self.path} keeps changing under us; giving up")

    def _inspect(self, path: str) -> tuple[int, os.stat_result | None, bytes]:
        """(fd, stat, first bytes) of the file at ``path``; (-1, None, b"") if missing."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(path, flags)  # O_NONBLOCK: a FIFO must not hang us
        except FileNotFoundError:
            return -1, None, b""
        except OSError as exc:
            if os.path.islink(path):
                raise StateError(f"refusing {path}: it is a symbolic link") from None
            raise StateError(f"cannot open state file {path}: {_reason(exc)}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise StateError(f"refusing {path}: not a regular file; left untouched")
            self._check_owner(st, path)
            head = os.pread(fd, 100, 0)
        except BaseException:
            os.close(fd)
            raise
        if head.startswith(HEADER):
            if len(head) < 100 or int.from_bytes(head[68:72], "big") != APP_ID:
                os.close(fd)
                raise StateError(
                    f"refusing {path}: an SQLite database, but not notify_on_change's; "
                    "left untouched"
                )
        elif not _looks_like_v1(head):
            os.close(fd)
            raise StateError(
                f"refusing {path}: not a notify_on_change state file (neither its SQLite "
                "database nor a version-1 JSON state file); left untouched"
            )
        return fd, st, head

    @staticmethod
    def _check_owner(st: os.stat_result, path: str) -> None:
        if st.st_uid != os.geteuid():
            raise StateError(f"refusing {path}: owned by uid {st.st_uid}, not by this user")
        if st.st_mode & 0o002:
            raise StateError(f"refusing {path}: it is world-writable")

    def _connect(self, st: os.stat_result | None) -> bool:
        for suffix in ("-wal", "-shm"):
            try:
                side = os.lstat(self.path + suffix)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(side.st_mode):
                raise StateError(f"refusing {self.path}{suffix}: not a regular file")
            self._check_owner(side, self.path + suffix)
        db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            now_st = os.lstat(self.path)
            if st is None or (now_st.st_dev, now_st.st_ino) != (st.st_dev, st.st_ino):
                db.close()
                return False  # replaced between our look and SQLite's open: look again
            version = db.execute("PRAGMA user_version").fetchone()[0]
        except BaseException:
            db.close()
            raise
        if version > SCHEMA:
            db.close()
            raise StateError(
                f"state file {self.path} has schema version {version}, newer than {SCHEMA}: "
                "written by a newer notify_on_change"
            )
        self._db = db
        if version < SCHEMA:
            raise sqlite3.DatabaseError(f"schema version {version}")  # recover() handles it
        return True

    def _create(self, fill: Callable[[sqlite3.Connection], None] | None) -> str:
        """A complete database under a temporary name, so that the path only ever shows
        a whole one (with our application_id in its header). Returns the temp name."""
        self._remove_stale_temps()
        temp = f"{self.path}.new-{self.token}-{os.urandom(2).hex()}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, _PRIVATE)
        os.fchmod(fd, _PRIVATE)  # O_CREAT's mode is subject to the umask
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
                    os.link(temp, self.path)
                except FileExistsError:
                    pass
                return ""
            return temp
        finally:
            if fill is None:
                _unlink_all(temp)

    def _remove_stale_temps(self) -> None:
        """Temporary databases of runs killed while creating one (over a minute old)."""
        import time

        prefix = os.path.basename(self.path) + ".new-"
        try:
            entries = [e for e in os.scandir(self.directory) if e.name.startswith(prefix)]
        except OSError:
            return
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_mtime < time.time() - 60:
                    os.unlink(entry.path)
            except OSError:
                pass

    def move_aside(self, now: float) -> str:
        """Rename a corrupt file (and its -wal/-shm) to `<path>.corrupt-<UTC time>`."""
        target = f"{self.path}.corrupt-{_stamp(now)}"
        if os.path.lexists(target):
            target = f"{target}-{os.getpid()}"
        try:
            os.rename(self.path, target)
        except OSError as exc:
            raise StateError(f"cannot move corrupt {self.path} aside: {_reason(exc)}") from None
        for suffix in ("-wal", "-shm"):
            if os.path.lexists(self.path + suffix):
                os.rename(self.path + suffix, target + suffix)
        return target

    def _migrate(
        self, fd: int, st: os.stat_result | None, now: float, warn: Callable[[str], None]
    ) -> None:
        """Import the version-1 JSON file open on ``fd`` (or move it aside if corrupt)."""
        import fcntl

        from check_imap.notify import legacy

        fcntl.flock(fd, fcntl.LOCK_EX)  # importers queue up on the JSON file itself
        current = os.lstat(self.path) if os.path.lexists(self.path) else None
        if st is None or current is None or current.st_ino != st.st_ino:
            return  # another run imported it meanwhile
        if st.st_size > MAX_V1_BYTES:
            raise StateError(f"refusing {self.path}: {st.st_size} bytes is too large to import")
        raw = _read_all(fd, MAX_V1_BYTES)
        try:
            data = legacy.parse(raw)
        except legacy.Corrupt as exc:
            aside = self.move_aside(now)
            warn(f"state file {self.path} was corrupt ({exc}); moved to {aside}; keys start afresh")
            return
        temp = self._create(lambda db: _fill(db, data))
        try:
            imported = f"{self.path}.v1-imported"
            if os.path.lexists(imported):
                imported += f"-{_stamp(now)}-{os.getpid()}"
            os.link(self.path, imported)
            os.rename(temp, self.path)  # the path shows the JSON, then the database
        finally:
            _unlink_all(temp)
        warn(f"imported {len(data.keys)} keys from {self.path}; the JSON file is now {imported}")

    def _import_legacy(self, legacy_path: str, now: float, warn: Callable[[str], None]) -> bool:
        """At the default path: import the old default's state.json once."""
        try:
            fd, st, head = self._inspect(legacy_path)
        except StateError:
            return False
        if fd < 0:
            return False
        try:
            if head.startswith(HEADER):
                return False
            old = self.path
            self.path = legacy_path
            try:
                self._migrate(fd, st, now, warn)
            finally:
                self.path = old
            # _migrate left a database at the legacy path: move it to the new one.
            if os.path.isfile(legacy_path) and not os.path.lexists(self.path):
                os.rename(legacy_path, self.path)
            return True
        finally:
            os.close(fd)

    def recover(self, exc: sqlite3.DatabaseError, now: float, warn: Callable[[str], None]) -> None:
        """After a database error: a corrupt database is moved aside and started afresh."""
        self.close()
        verdict = str(exc)
        try:
            db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            try:
                rows = db.execute("PRAGMA quick_check").fetchall()
                version = db.execute("PRAGMA user_version").fetchone()[0]
            finally:
                db.close()
            if rows == [("ok",)] and version == SCHEMA:
                raise StateError(f"state file {self.path}: {exc}")
            if rows != [("ok",)]:
                verdict = "; ".join(str(r[0]) for r in rows[:3])
        except sqlite3.DatabaseError as again:
            verdict = str(again)
        aside = self.move_aside(now)
        warn(f"state file {self.path} was corrupt ({verdict}); moved to {aside}; keys start afresh")
        self.open(now, warn)

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def attach(self, db: sqlite3.Connection) -> None:
        self._db = db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _looks_like_v1(head: bytes) -> bool:
    """A JSON object that opens with the keys of a version-1 state file."""
    text = head.lstrip(b" \t\r\n")
    if not text.startswith(b"{"):
        return False
    text = text[1:].lstrip(b" \t\r\n")
    return text.startswith((b'"version"', b'"data"'))


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
