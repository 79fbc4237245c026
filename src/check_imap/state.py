"""The state file of notify_on_change: a lock, versioned JSON, atomic replacement.

The lock lives on a separate, never-replaced `<state>.lock`: a lock on the state file
itself would be lost when os.replace swaps the inode under a waiting process.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms)
if TYPE_CHECKING:
    from typing import Any

VERSION = 1
_PRIVATE = 0o600


class StateError(Exception):
    """The state file cannot be used safely; the caller reports it and exits 3."""


class CorruptState(Exception):
    """Unreadable or unparsable content; the caller moves the file aside."""


def default_path(environ: dict[str, str], euid: int) -> str:
    """$NOTIFY_ON_CHANGE_STATE, /var/lib/... for root, else the XDG state directory."""
    explicit = environ.get("NOTIFY_ON_CHANGE_STATE", "")
    if explicit:
        return explicit
    if euid == 0:
        return "/var/lib/notify_on_change/state.json"
    base = environ.get("XDG_STATE_HOME", "") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "notify_on_change", "state.json")


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


class StateFile:
    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.directory = os.path.dirname(self.path)
        self.lock_path = self.path + ".lock"
        self._lock_fd: int | None = None

    # --- locking ------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the directory (0700) and fail early if it cannot be written."""
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise StateError(
                f"cannot create state directory {self.directory}: {_reason(exc)}"
            ) from None
        # Checked before the command runs: a send that cannot be recorded would repeat.
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise StateError(f"state directory {self.directory} is not writable")

    def lock(self, timeout: float) -> None:
        """Take the exclusive lock, polling until `timeout` seconds have passed."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, _PRIVATE)
        except OSError as exc:
            raise StateError(f"cannot open lock file {self.lock_path}: {_reason(exc)}") from None
        try:
            self._check_owner(os.fstat(fd), self.lock_path)
        except StateError:
            os.close(fd)
            raise
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    os.close(fd)
                    raise StateError(
                        f"state file {self.path} is locked by another notify_on_change; "
                        f"gave up after {timeout:g} s (--lock-timeout)"
                    ) from None
                time.sleep(min(delay, left))
                delay = min(delay * 2, 0.05)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    # --- reading ------------------------------------------------------------------

    @staticmethod
    def _check_owner(st: os.stat_result, path: str) -> None:
        if st.st_uid != os.geteuid():
            raise StateError(f"refusing {path}: owned by uid {st.st_uid}, not by this user")
        if st.st_mode & 0o002:
            raise StateError(f"refusing {path}: it is world-writable")

    def load(self) -> dict[str, Any]:
        """The stored data ({} if there is no file yet).

        StateError: unsafe or newer file (keep it). CorruptState: move it aside.
        """
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StateError(f"cannot stat state file {self.path}: {_reason(exc)}") from None
        if not stat.S_ISREG(st.st_mode):
            raise StateError(f"refusing {self.path}: not a regular file")
        self._check_owner(st, self.path)
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                raw = b"".join(iter(lambda: os.read(fd, 1 << 16), b""))
            finally:
                os.close(fd)
        except OSError as exc:
            raise CorruptState(f"unreadable: {_reason(exc)}") from None
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise CorruptState(f"not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("version"), int):
            raise CorruptState("no version field")
        version = doc["version"]
        if version > VERSION:
            raise StateError(
                f"state file {self.path} has format version {version}, newer than {VERSION}: "
                "written by a newer notify_on_change"
            )
        if version != VERSION or not isinstance(doc.get("data"), dict):
            raise CorruptState(f"unsupported format version {version}")
        data: dict[str, Any] = doc["data"]
        return data

    def move_aside(self, now: float) -> str:
        """Rename a corrupt file to `<state>.corrupt-<UTC time>` and return the new name."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        target = f"{self.path}.corrupt-{stamp}"
        if os.path.lexists(target):
            target = f"{target}-{os.getpid()}"
        try:
            os.rename(self.path, target)
        except OSError as exc:
            raise StateError(f"cannot move corrupt {self.path} aside: {_reason(exc)}") from None
        return target

    # --- writing ------------------------------------------------------------------

    def _remove_stale_temps(self, prefix: str) -> None:
        # Only a writer holding the lock creates temp files, so any found now is left
        # over from a killed run.
        try:
            names = [e.name for e in os.scandir(self.directory) if e.name.startswith(prefix)]
        except OSError:
            return
        for name in names:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.directory, name))

    def save(self, data: dict[str, Any]) -> None:
        """Write atomically: temp file (0600) in the same directory, fsync, replace, fsync dir."""
        prefix = f".{os.path.basename(self.path)}.tmp."
        self._remove_stale_temps(prefix)
        body = json.dumps({"version": VERSION, "data": data}, sort_keys=True, indent=1)
        temp = os.path.join(self.directory, f"{prefix}{os.getpid()}.{os.urandom(4).hex()}")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, _PRIVATE)
            try:
                os.fchmod(fd, _PRIVATE)  # O_CREAT's mode is subject to the umask
                view = memoryview((body + "\n").encode("ascii"))
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise StateError(f"cannot write state file {self.path}: {_reason(exc)}") from None
        try:
            dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)  # makes the rename itself durable
            finally:
                os.close(dir_fd)
        except OSError:
            pass  # the data is in place; some filesystems refuse fsync on directories
