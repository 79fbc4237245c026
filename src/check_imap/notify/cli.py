"""The notify_on_change command line: arguments, the three ways in, status/forget/flush."""

import os
import sys

from check_imap.notify import Interrupted, StateError, UsageError, engine, policy
from check_imap.notify.args import (
    Args,
    EnvInfo,
    check_key,
    finite_number,
    from_environment,
    parse_main,
)
from check_imap.notify.store import Store, Template, default_path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms)
if TYPE_CHECKING:
    from collections.abc import Callable

PROG = "notify_on_change"
EXIT_OK = 0  # nothing was due, or the notification was sent
EXIT_FAILED = 1  # the command failed or timed out; it is queued and retried later
EXIT_ERROR = 3  # usage, environment or state problem


def read_now() -> float:
    fake = os.environ.get("NOTIFY_ON_CHANGE_NOW", "")
    if fake:
        try:
            return finite_number(fake, "NOTIFY_ON_CHANGE_NOW", policy.MAX_TIME)
        except ValueError:
            raise UsageError(
                f"NOTIFY_ON_CHANGE_NOW is not a number of epoch seconds: {fake!r}"
            ) from None
    import time

    return time.time()


def clock() -> "Callable[[], float]":
    fixed = read_now()
    if os.environ.get("NOTIFY_ON_CHANGE_NOW"):
        return lambda: fixed
    import time

    return time.time


def warn(text: str) -> None:
    print(f"{PROG}: {printable(text)}", file=sys.stderr, flush=True)


def printable(text: str) -> str:
    """Escape control characters so keys cannot rewrite the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


# --- the store ----------------------------------------------------------------------


def _store_path(option: "str | None") -> "tuple[str, str | None]":
    """The state path, and the old default's state.json to import when it is a default."""
    if option:
        return option, None
    env, euid = os.environ, os.geteuid()
    if env.get("NOTIFY_ON_CHANGE_STATE"):
        return default_path(env, euid), None
    return default_path(env, euid), default_path(env, euid, "state.json")


def with_store(
    option: "str | None", busy: float, action: "Callable[[Store], int]", create: bool = True
) -> int:
    """Open the store and run ``action``; a corrupt database is moved aside, started
    afresh and ``action`` runs once more. Database trouble is a StateError."""
    import sqlite3

    path, legacy = _store_path(option)
    store = Store(path, busy)
    found = os.path.lexists(store.path) or bool(legacy and os.path.lexists(legacy))
    if not create and not found:
        store = _empty_store()  # `status` creates nothing
    now = read_now()
    try:
        for attempt in (1, 2):
            try:
                if not store.is_open:
                    store.open(now, warn, legacy)
                return action(store)
            except sqlite3.DatabaseError as exc:
                store.rollback()
                if type(exc) is not sqlite3.DatabaseError or attempt == 2:
                    raise StateError(f"state file {store.path}: {exc}") from None
                store.recover(exc, now, warn)
        raise AssertionError("unreachable")
    finally:
        store.close()


def _empty_store() -> "Store":
    """An in-memory store of our schema, for `status` when there is no state file yet."""
    import sqlite3

    from check_imap.notify import store as store_module

    empty = Store(":memory:")
    db = sqlite3.connect(":memory:", isolation_level=None)
    for sql in store_module.SCHEMA_SQL:
        db.execute(sql)
    empty.attach(db)
    return empty


# --- the main run -------------------------------------------------------------------


def _run(argv: list[str]) -> int:
    split = argv.index("--") if "--" in argv else len(argv)
    command = argv[split + 1 :]
    args = parse_main(argv[:split])
    if not command:
        raise UsageError("missing '-- COMMAND [ARG...]' (see --help)")
    if (args.max is None) != (args.per is None):
        raise UsageError("--max and --per go together")
    if args.check is not None and args.state is not None:
        raise UsageError("--check and --state exclude each other")
    read_now()  # a bad NOTIFY_ON_CHANGE_NOW is a usage error before anything runs
    env_info = from_environment(os.environ)
    if args.check is None:
        return _observe_given(args, command, env_info)
    import shlex

    try:
        check_argv = shlex.split(args.check)
    except ValueError as exc:
        raise UsageError(f"--check: {exc}") from None
    if not check_argv:
        raise UsageError("--check: empty command line")
    from check_imap.notify.children import arm_signals, run_check

    arm_signals()  # the check is killed with its group if we are asked to stop
    try:
        code, first_line = run_check(check_argv, args.check_timeout)
    except Interrupted as stop:
        print(f"UNKNOWN - interrupted by {stop.name} while the check ran", flush=True)
        return EXIT_ERROR
    # From here on the check's result must reach the caller whatever happens.
    try:
        # monit sets MONIT_SERVICE for every program it runs, `check program` included.
        key = args.key or os.environ.get("MONIT_SERVICE", "") or check_key(check_argv)
        message = first_line if args.message is None else args.message
        obs = engine.Observation(policy.state_from_exit(code), message)
        _deliver(args, command, key, obs)
    except (UsageError, StateError) as exc:
        warn(str(exc))
    except Interrupted as stop:
        if not stop.queued:
            warn(f"interrupted by {stop.name}")
    except Exception as exc:
        warn(f"internal error: {exc!r}")
    return code


def _observe_given(args: "Args", command: list[str], env_info: "EnvInfo | None") -> int:
    core_change, core_problem = 0.0, False
    if args.state is not None:
        state = args.state
    elif env_info is None:
        raise UsageError(
            "no state: use --check or --state, or run from monit (MONIT_EVENT), Nagios "
            "(NAGIOS_SERVICESTATE: set enable_environment_macros=1 in nagios.cfg) or "
            "Icinga 2 (SERVICESTATE/HOSTSTATE in env)"
        )
    elif env_info.skip:
        if args.verbose:
            warn(f"ignored: {env_info.skip} from {env_info.source} is not a state change")
        return EXIT_OK
    else:
        found = env_info.state
        if found is None:
            raise UsageError(f"unrecognised state {env_info.raw_state!r} from {env_info.source}")
        state = found
        core_change, core_problem = env_info.core_change, env_info.kind == "PROBLEM"
    key = args.key or (env_info.key if env_info else "")
    if not key:
        raise UsageError("no key: give --key (nothing in the environment names the service)")
    message = args.message
    if message is None:
        message = env_info.message if env_info else ""
    obs = engine.Observation(state, message, core_change, core_problem)
    return _deliver(args, command, key, obs)


def _options(args: "Args") -> "policy.Options":
    return policy.Options(
        confirm=args.confirm,
        remind=args.remind,
        budget_max=args.max or 0,
        budget_per=args.per or 0.0,
        flap=args.flap,
    )


def _deliver(args: "Args", command: list[str], key: str, obs: "engine.Observation") -> int:
    opts = _options(args)

    def tpl() -> "Template":  # built only when something is due
        return engine.template(command, obs.message, args.command_timeout, opts)

    def action(store: "Store") -> int:
        ctx = engine.Context(
            store, clock(), warn, opts, args.retries, args.verbose, args.check is not None
        )
        code = engine.settle(ctx, key, obs, tpl)
        engine.flush(ctx, engine.OUTBOX_BATCH, args.command_timeout, exclude=key)
        return code

    return with_store(args.state_file, args.lock_timeout, action)


def main(argv: "list[str] | None" = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] in ("status", "forget", "flush"):
            from check_imap.notify.admin import admin

            return admin(argv)
        return _run(argv)
    except (UsageError, StateError) as exc:
        warn(str(exc))
    except Interrupted as stop:
        if stop.queued:
            return EXIT_FAILED
        warn(f"interrupted by {stop.name}")
    except KeyboardInterrupt:
        warn("interrupted")
    except Exception as exc:
        warn(f"internal error: {exc!r}")
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
