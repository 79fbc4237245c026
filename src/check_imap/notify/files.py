"""The file behind notify_on_change's state: checked before SQLite may touch it.

One SQLite database (stdlib sqlite3, WAL journal, a busy timeout) per state path,
created complete under a temporary name and linked into place (create.py, loaded only
then), so the path only ever shows a whole database with our application_id in its
header. A path that is not
our database, nor a version-1 JSON state file (imported once, the JSON kept as
``<path>.v1-imported``), is refused and left exactly as it is: opened with O_NOFOLLOW
and O_NONBLOCK, fstat-ed regular, owned by us, not world-writable, read in bounds.
"""

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
PRIVATE = 0o600

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


def default_path(environ: "Mapping[str, str]", euid: int, name: str = "state.db") -> str:
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


def reason(exc: "OSError") -> str:
    return exc.strerror or str(exc)


class StateFile:
    """Finding and checking the database file; create.py makes, imports and moves aside."""

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
                f"cannot create state directory {self.directory}: {reason(exc)}"
            ) from None
        if st.st_mode & 0o002:
            # Anyone could plant PATH-wal or PATH-shm as a link to a file of ours.
            raise StateError(f"refusing state directory {self.directory}: it is world-writable")

    def open(self, now: float, warn: "Callable[[str], None]", legacy: "str | None" = None) -> None:
        """Open our database at the path, creating it, or importing a version-1 JSON file
        (at the path, or at ``legacy``, the old default); refuse anything else."""
        self.prepare()
        for _ in range(8):  # another run may be creating or importing at the same time
            fd, st, head = self._inspect(self.path)
            # After the path is judged ("refusing /dev/null: not a regular file" says more
            # than "/dev is not writable"), before the command runs: a send that cannot be
            # recorded would repeat.
            if not os.access(self.directory, os.W_OK | os.X_OK):
                if fd >= 0:
                    os.close(fd)
                raise StateError(f"state directory {self.directory} is not writable")
            if fd < 0:
                from check_imap.notify import create

                if not (legacy and create.import_legacy(self, legacy, now, warn)):
                    create.create_db(self, None)
                continue
            if head.startswith(HEADER):
                # Closed before SQLite opens the file: closing any descriptor of a file
                # drops all of this process's POSIX locks on it, SQLite's included, and
                # SQLite would then take others' WAL for its own to checkpoint and delete.
                os.close(fd)
                if self._connect(st):
                    return
                continue
            from check_imap.notify import create

            try:
                create.migrate(self, fd, st, now, warn)
            finally:
                os.close(fd)
        raise StateError(f"state file {self.path} keeps changing under us; giving up")

    def _inspect(self, path: str) -> "tuple[int, os.stat_result | None, bytes]":
        """(fd, stat, first bytes) of the file at ``path``; (-1, None, b"") if missing."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(path, flags)  # O_NONBLOCK: a FIFO must not hang us
        except FileNotFoundError:
            return -1, None, b""
        except OSError as exc:
            if os.path.islink(path):
                raise StateError(f"refusing {path}: it is a symbolic link") from None
            raise StateError(f"cannot open state file {path}: {reason(exc)}") from None
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
    def _check_owner(st: "os.stat_result", path: str) -> None:
        if st.st_uid != os.geteuid():
            raise StateError(f"refusing {path}: owned by uid {st.st_uid}, not by this user")
        if st.st_mode & 0o002:
            raise StateError(f"refusing {path}: it is world-writable")

    def _connect(self, st: "os.stat_result | None") -> bool:
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

    def recover(
        self, exc: "sqlite3.DatabaseError", now: float, warn: "Callable[[str], None]"
    ) -> None:
        """After a database error: a corrupt database is moved aside and started afresh."""
        from check_imap.notify import create

        create.recover(self, exc, now, warn)

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def attach(self, db: "sqlite3.Connection") -> None:
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
