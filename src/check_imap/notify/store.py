"""The state of notify_on_change: keys, the outbox, the budget, in one SQLite database.

Short ``BEGIN IMMEDIATE`` transactions; a run reads and writes only its key's row, the
budget and the due outbox entries, so its cost does not grow with the number of keys.
How the file is found, checked, created and imported is files.py's business.
"""

import sqlite3

from check_imap.notify import StateError, policy
from check_imap.notify.files import (
    KEEP_SENT,
    KEY_COLUMNS,
    OUTBOX_COLUMNS,
    SCHEMA_SQL,
    TEMPLATE_COLUMNS,
    StateFile,
    dec,
    default_path,
    enc,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms)
if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["SCHEMA_SQL", "Entry", "Store", "Template", "dec", "default_path", "enc"]

# Column lists are our own constants: the statements are built once, here.
_KEYS = ", ".join(KEY_COLUMNS)
_SQL_LOAD = f"SELECT {_KEYS} FROM keys WHERE key = ?"  # noqa: S608
_SQL_SAVE = (
    f"INSERT INTO keys(key, {_KEYS}) VALUES ({', '.join('?' * (len(KEY_COLUMNS) + 1))}) "  # noqa: S608
    f"ON CONFLICT(key) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in KEY_COLUMNS)}"
)
_SQL_ALL = f"SELECT key, {_KEYS} FROM keys ORDER BY key"  # noqa: S608
_SQL_TEMPLATE = f"SELECT {', '.join(TEMPLATE_COLUMNS)} FROM keys WHERE key = ?"  # noqa: S608
_SQL_SAVE_TEMPLATE = (
    f"UPDATE keys SET {', '.join(f'{c} = ?' for c in TEMPLATE_COLUMNS)} WHERE key = ?"  # noqa: S608
)
_SQL_ENTRY = f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM outbox WHERE key = ?"  # noqa: S608
_SQL_ENTRIES = f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM outbox ORDER BY due_at"  # noqa: S608
_SQL_PUT = f"INSERT OR REPLACE INTO outbox VALUES ({', '.join('?' * len(OUTBOX_COLUMNS))})"  # noqa: S608


class Template:
    """What a later run (or `flush`) builds this key's next notification from."""

    __slots__ = TEMPLATE_COLUMNS

    def __init__(
        self,
        command: list[str],
        env: bytes,
        message: str,
        timeout: float,
        remind: float,
        budget_max: int,
        budget_per: float,
    ) -> None:
        self.command, self.env, self.message, self.timeout = command, env, message, timeout
        self.remind, self.budget_max, self.budget_per = remind, budget_max, budget_per

    def options(self) -> "policy.Options":
        return policy.Options(
            remind=self.remind, budget_max=self.budget_max, budget_per=self.budget_per
        )

    def row(self) -> "tuple[object, ...]":
        command = b"\0".join(enc(a) for a in self.command)
        return (command, self.env, enc(self.message), self.timeout, self.remind,
                self.budget_max, self.budget_per)  # fmt: skip


class Entry:
    """One outbox row: a notification being sent (lease) or waiting for a retry, with
    the exact argv and environment (NUL-separated) it runs with."""

    __slots__ = OUTBOX_COLUMNS

    def __init__(
        self,
        key: str,
        sig: str,
        argv: bytes,
        env: bytes,
        timeout: float,
        created: float,
        attempts: int = 0,
        due_at: float = 0.0,
        lease_until: float = 0.0,
        owner: str = "",
        error: str = "",
        summary_upto: int = 0,
    ) -> None:
        self.key, self.sig, self.argv, self.env = key, sig, argv, env
        self.timeout, self.created, self.attempts = timeout, created, attempts
        self.due_at, self.lease_until, self.owner = due_at, lease_until, owner
        self.error, self.summary_upto = error, summary_upto

    @classmethod
    def from_row(cls, row: "tuple[object, ...]") -> "Entry | None":
        key, sig, argv, env, timeout, created, attempts, due_at, lease, owner, error, upto = row
        if not isinstance(argv, bytes) or not argv or not isinstance(env, bytes):
            return None
        if not isinstance(sig, str) or sig.partition(":")[0] not in policy.TYPES:
            return None
        return cls(
            dec(key),
            sig,
            argv,
            env,
            policy.moment(timeout) or 30.0,
            policy.moment(created),
            attempts if isinstance(attempts, int) and attempts >= 0 else 0,
            policy.moment(due_at),
            policy.moment(lease),
            owner if isinstance(owner, str) else "",
            error if isinstance(error, str) else "",
            upto if isinstance(upto, int) else 0,
        )

    def values(self) -> "tuple[object, ...]":
        return (enc(self.key), *(getattr(self, name) for name in OUTBOX_COLUMNS[1:]))


def _key_state(row: "tuple[object, ...]") -> "policy.KeyState | None":
    """A stored row back to a KeyState; None when anything in it is out of shape."""
    d = dict(zip(KEY_COLUMNS, row))
    observed = d["observed"]
    if observed not in policy.STATES:
        return None
    ks = policy.KeyState(str(observed))
    for name in ("confirmed", "notified"):
        value = d[name]
        if value is not None and value not in policy.STATES:
            return None
        setattr(ks, name, value)
    if d["previous"] not in ("", *policy.STATES):
        return None
    ks.previous = str(d["previous"])
    for name in ("since", "last_notified", "flap_since", "suppressed_at", "core_change"):
        setattr(ks, name, policy.moment(d[name]))
    streak = d["streak"]
    ks.streak = streak if isinstance(streak, int) and 0 <= streak <= 1 << 30 else 0
    history = d["history"]
    ks.history = history if isinstance(history, str) and set(history) <= set("OWCU") else ""
    ks.flapping, ks.flap_notified = bool(d["flapping"]), bool(d["flap_notified"])
    ks.suppressed_sig = d["suppressed_sig"] if isinstance(d["suppressed_sig"], str) else ""
    return ks


def _template(row: "tuple[object, ...]") -> "Template | None":
    command, env, message, timeout, remind, budget_max, budget_per = row
    if not isinstance(command, bytes) or not command or not isinstance(env, bytes):
        return None
    return Template(
        [dec(a) for a in command.split(b"\0")],
        env,
        dec(message),
        policy.moment(timeout) or 30.0,
        policy.moment(remind),
        budget_max if isinstance(budget_max, int) and budget_max > 0 else 0,
        policy.moment(budget_per),
    )


class Store(StateFile):
    # --- transactions -------------------------------------------------------------

    @property
    def db(self) -> "sqlite3.Connection":
        if self._db is None:
            raise StateError(f"state file {self.path} is not open")
        return self._db

    def begin(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.db.execute("COMMIT")

    def durable(self, full: bool) -> None:
        """Whether a commit waits for the disk (fsync), or only an OS crash may undo it."""
        self.db.execute(f"PRAGMA synchronous={'FULL' if full else 'NORMAL'}")

    def rollback(self) -> None:
        if self._db is not None and self._db.in_transaction:
            self._db.execute("ROLLBACK")

    # --- keys ---------------------------------------------------------------------

    def load(self, key: str) -> "tuple[policy.KeyState | None, tuple[object, ...] | None]":
        """The key's state and its stored form (to see later whether it changed)."""
        row = self.db.execute(_SQL_LOAD, (enc(key),)).fetchone()
        if row is None:
            return None, None
        return _key_state(row), tuple(row)

    def save(self, key: str, ks: "policy.KeyState", stored: "tuple[object, ...] | None") -> None:
        values = ks.fields()
        if stored is not None and values == stored:
            return
        self.db.execute(_SQL_SAVE, (enc(key), *values))

    def template(self, key: str) -> "Template | None":
        row = self.db.execute(_SQL_TEMPLATE, (enc(key),)).fetchone()
        return None if row is None else _template(row)

    def save_template(self, key: str, tpl: "Template") -> None:
        self.db.execute(_SQL_SAVE_TEMPLATE, (*tpl.row(), enc(key)))

    def forget(self, key: str) -> bool:
        found = self.db.execute("DELETE FROM keys WHERE key = ?", (enc(key),)).rowcount > 0
        queued = self.db.execute("DELETE FROM outbox WHERE key = ?", (enc(key),)).rowcount > 0
        found = found or queued
        self.db.execute("DELETE FROM suppressed WHERE key = ?", (enc(key),))
        return found

    def all_keys(self) -> "Iterator[tuple[str, policy.KeyState | None]]":
        for row in self.db.execute(_SQL_ALL):
            yield dec(row[0]), _key_state(row[1:])

    # --- the outbox ---------------------------------------------------------------

    def entry(self, key: str) -> "Entry | None":
        row = self.db.execute(_SQL_ENTRY, (enc(key),)).fetchone()
        return None if row is None else Entry.from_row(tuple(row))

    def put(self, e: "Entry") -> None:
        self.db.execute(_SQL_PUT, e.values())

    def drop(self, key: str) -> None:
        self.db.execute("DELETE FROM outbox WHERE key = ?", (enc(key),))

    def due_keys(self, now: float, limit: int, exclude: str = "") -> list[str]:
        rows = self.db.execute(
            "SELECT key FROM outbox WHERE due_at <= ? AND lease_until <= ? AND key != ? "
            "ORDER BY due_at LIMIT ?",
            (now, now, enc(exclude), limit),
        )
        return [dec(r[0]) for r in rows]

    def entries(self) -> "list[Entry]":
        rows = self.db.execute(_SQL_ENTRIES).fetchall()
        return [e for e in (Entry.from_row(tuple(r)) for r in rows) if e is not None]

    # --- budget and suppressed notifications --------------------------------------

    def budget_used(self, since: float) -> int:
        row = self.db.execute("SELECT count(*) FROM sent WHERE at > ?", (since,)).fetchone()
        return int(row[0])

    def reserve(self, now: float) -> int:
        """A budget slot for a send about to start; returns its id (to release it)."""
        slot = self.db.execute("INSERT INTO sent(at) VALUES (?)", (now,)).lastrowid or 0
        self.db.execute("DELETE FROM sent WHERE id <= ?", (slot - KEEP_SENT,))
        return slot

    def release(self, slot: int) -> None:
        self.db.execute("DELETE FROM sent WHERE id = ?", (slot,))

    def suppress(self, key: str, kind: str, state: str, now: float) -> None:
        self.db.execute(
            "INSERT INTO suppressed(key, type, state, at) VALUES (?, ?, ?, ?)",
            (enc(key), kind, state, now),
        )

    def suppressed_summary(self) -> tuple[str, int]:
        """The summary for the next notification and the last entry it covers."""
        count, upto = self.db.execute("SELECT count(*), max(id) FROM suppressed").fetchone()
        if not count:
            return "", 0
        rows = self.db.execute(
            "SELECT key FROM suppressed GROUP BY key ORDER BY min(id) LIMIT 21"
        ).fetchall()
        keys = [dec(r[0]) for r in rows]
        if len(keys) > 20:
            distinct = self.db.execute("SELECT count(DISTINCT key) FROM suppressed").fetchone()[0]
            keys += [""] * (int(distinct) - len(keys))
        return policy.summary(keys, int(count)), int(upto)

    def suppressed_counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT key, count(*) FROM suppressed GROUP BY key")
        return {dec(k): int(n) for k, n in rows}

    def drop_suppressed(self, upto: int) -> None:
        self.db.execute("DELETE FROM suppressed WHERE id <= ?", (upto,))
