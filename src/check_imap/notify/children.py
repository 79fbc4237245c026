"""The processes notify_on_change runs: the checked plugin and the notification command.

Both run in their own process group, which is killed as a whole on timeout and when
notify_on_change gets SIGTERM, SIGINT or SIGHUP. The plugin's output is read up to
64 KiB per stream; the rest is drained and dropped, so memory stays bounded however
much it prints.
"""

from __future__ import annotations

import os
import sys

from check_imap.notify import Interrupted

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable, Mapping
    from types import FrameType

OUTPUT_LIMIT = 64 * 1024
UNKNOWN_EXIT = 3  # what a Nagios plugin exits with when it cannot tell
_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP")


def arm_signals() -> None:
    """From now on SIGTERM, SIGINT and SIGHUP raise Interrupted (once is enough)."""
    import signal

    def handler(signum: int, frame: FrameType | None) -> None:
        for name in _SIGNALS:  # a second signal must not interrupt the clean-up
            signal.signal(getattr(signal, name), signal.SIG_IGN)
        raise Interrupted(signum)

    for name in _SIGNALS:
        signal.signal(getattr(signal, name), handler)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's whole process group (it leads its own session) and reap it."""
    import signal

    try:  # noqa: SIM105  (contextlib costs start-up time)
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass  # already gone
    proc.wait()


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec hook: the command gets SIGKILL when notify_on_change itself is killed
    (even by SIGKILL), so it cannot finish a send nobody will record."""
    try:
        import ctypes
        import signal

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return None
    parent = os.getpid()
    sigkill = int(signal.SIGKILL)

    def hook() -> None:
        prctl(1, sigkill)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(127)

    return hook


def run_check(argv: list[str], timeout: float) -> tuple[int, str]:
    """Run the plugin, pass its (bounded) output through; return its exit code and
    the first line of its output without perfdata."""
    import selectors
    import subprocess
    import time

    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        line = f"UNKNOWN - cannot run check {argv[0]}: {reason}"
        print(line, flush=True)
        return UNKNOWN_EXIT, line
    kept = {"out": bytearray(), "err": bytearray()}
    cut = False
    deadline = time.monotonic() + timeout
    try:
        if proc.stdout is None or proc.stderr is None:
            raise OSError("no pipes")
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ, kept["out"])
            sel.register(proc.stderr, selectors.EVENT_READ, kept["err"])
            while sel.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired(argv, timeout)
                for key, _ in sel.select(left):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fileobj)
                        continue
                    buf: bytearray = key.data
                    room = OUTPUT_LIMIT - len(buf)
                    if room > 0:
                        buf += chunk[:room]
                    cut = cut or len(chunk) > room
        proc.wait(max(deadline - time.monotonic(), 0.001))
    except subprocess.TimeoutExpired:
        kill_group(proc)
        line = f"UNKNOWN - check timed out after {timeout:g} s: {os.path.basename(argv[0])}"
        print(line, flush=True)
        return UNKNOWN_EXIT, line
    except BaseException:
        kill_group(proc)
        raise
    finally:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    sys.stdout.flush()
    sys.stdout.buffer.write(kept["out"])
    sys.stdout.buffer.flush()
    sys.stderr.buffer.write(kept["err"])
    if cut:
        sys.stderr.buffer.write(b"notify_on_change: check output cut at 64 KiB per stream\n")
    sys.stderr.buffer.flush()
    text = bytes(kept["out"]).decode("utf-8", "surrogateescape")
    first = text.splitlines()[0] if text else ""
    # A negative code means a signal killed it: UNKNOWN, like Nagios.
    code = proc.returncode if proc.returncode >= 0 else UNKNOWN_EXIT
    return code, first.split("|", 1)[0].strip()


def run_command(
    argv: list[bytes], env: Mapping[bytes, bytes], timeout: float, quiet: bool, left: float = 0
) -> str:
    """Run the notification command; "" when it exited 0 in time, else why not.

    It gets ``left`` seconds (default: ``timeout``, the one the message names).
    Interrupted propagates after the command's group is killed.
    """
    import subprocess

    name = os.fsdecode(argv[0]) if argv else "?"
    try:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            # With --check our stdout belongs to the plugin's output (NRPE, monit).
            stdout=sys.stderr.fileno() if quiet else None,
            start_new_session=True,
            preexec_fn=_die_with_parent(),  # noqa: PLW1509  (no threads here)
        )
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return f"cannot run {name}: {reason}"
    try:
        code = proc.wait(timeout=left or timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        return f"{name} timed out after {timeout:g} s and was killed"
    except BaseException:
        kill_group(proc)
        raise
    return "" if code == 0 else f"{name} exited with {code}"


def expand(arg: str, values: dict[str, str]) -> str:
    """Replace {name} placeholders in one pass, so inserted text is never re-expanded."""
    out: list[str] = []
    pos = 0
    while True:
        start = arg.find("{", pos)
        end = arg.find("}", start + 1) if start >= 0 else -1
        if end < 0:
            out.append(arg[pos:])
            return "".join(out)
        name = arg[start + 1 : end]
        if name in values:
            out.append(arg[pos:start] + values[name])
            pos = end + 1
        else:
            out.append(arg[pos : start + 1])
            pos = start + 1
