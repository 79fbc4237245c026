"""Claims, sends and the outbox: no lock is held while a notification command runs.

A run decides in one short transaction. When a notification is due it records a claim
(an outbox entry with a lease until now + the command timeout + a margin) and a budget
slot, and commits. It runs the command with nothing locked and records the result in a
second short transaction: success marks the key notified and removes the entry; failure
keeps the entry, with its exact argv and environment, due again after a back-off.
Runs for the same key see a live claim and do not send; runs for other keys go on in
parallel. A run that dies mid-send leaves a claim whose lease runs out, and whoever
comes next (any key, or `flush`) sends it again: at least once, never lost.
"""

import os
import time

from check_imap.notify import Interrupted, policy
from check_imap.notify.store import Entry, Store, Template, enc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

LEASE_MARGIN = 10.0  # seconds a claim outlives the command's own timeout
OUTBOX_BATCH = 10  # due entries of other keys an ordinary run delivers at most
SENT, FAILED = 0, 1  # exit codes: nothing due or sent / failed and queued


def _argv_safe(text: str) -> str:
    """text.argv_safe, imported only when there is a NUL to replace: most runs have none."""
    if "\0" not in text:
        return text
    from check_imap.text import argv_safe

    return argv_safe(text)


class Observation:
    __slots__ = ("core_change", "core_problem", "message", "state")

    def __init__(
        self, state: str, message: str, core_change: float = 0.0, core_problem: bool = False
    ) -> None:
        self.state, self.message = state, _argv_safe(message)
        self.core_change, self.core_problem = core_change, core_problem


class Context:
    """One invocation: the store, the clock and what the options say about sending."""

    def __init__(
        self,
        store: "Store",
        clock: "Callable[[], float]",
        warn: "Callable[[str], None]",
        opts: "policy.Options",
        retries: int = 2,
        verbose: bool = False,
        quiet: bool = False,
    ) -> None:
        self.store, self.clock, self.warn, self.opts = store, clock, warn, opts
        self.retries, self.verbose, self.quiet = retries, verbose, quiet
        self.armed = False  # signals armed and children imported: ready to claim a send


class Claim:
    __slots__ = ("entry", "kind", "slot", "state", "upto")

    def __init__(self, entry: "Entry", kind: str, state: str, slot: int, upto: int) -> None:
        self.entry, self.kind, self.state, self.slot, self.upto = entry, kind, state, slot, upto


def template(
    command: list[str], message: str, timeout: float, opts: "policy.Options"
) -> "Template":
    """What this run would send with; stored so that later runs can send for the key."""
    env = b"\0".join(k + b"=" + v for k, v in os.environb.items() if not k.startswith(b"NOTIFY_"))
    return Template(
        command, env, _argv_safe(message), timeout, opts.remind, opts.budget_max, opts.budget_per
    )


def iso(moment: float) -> str:
    value = policy.moment(moment)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value)) if value else ""


def _entry(note: "policy.Notification", tpl: "Template", now: float, upto: int) -> "Entry":
    from check_imap.notify.children import expand

    values = {
        "key": _argv_safe(note.key),
        "state": note.state,
        "previous": note.previous,
        "type": note.type,
        "message": tpl.message,
        "since": iso(note.since),
        "suppressed": _argv_safe(note.suppressed),
    }
    argv = b"\0".join(enc(_argv_safe(expand(arg, values))) for arg in tpl.command)
    extra = {f"NOTIFY_{name.upper()}": value for name, value in values.items()}
    extra["NOTIFY_PREVIOUS_STATE"] = extra.pop("NOTIFY_PREVIOUS")
    env = b"\0".join([tpl.env, *(enc(f"{k}={v}") for k, v in extra.items())]).lstrip(b"\0")
    return Entry(note.key, note.sig, argv, env, tpl.timeout, now, due_at=now, summary_upto=upto)


def _arm(ctx: "Context") -> None:
    """What a send needs, done outside any transaction and once per run: importing
    ``signal`` (and, without the console script's ``re``, ``enum``) inside BEGIN
    IMMEDIATE held the write lock for tens of ms, and 50 concurrent runs queued up
    behind it in SQLite's busy back-off (up to 2.4 s each)."""
    from check_imap.notify.children import arm_signals

    arm_signals()  # from the claim on, a signal must record the send as failed
    ctx.armed = True


_NOT_ARMED = "not armed"


def _claim(
    ctx: "Context", key: str, obs: "Observation | None", make_tpl: "Callable[[], Template] | None"
) -> "tuple[Claim | None, str]":
    """One short transaction: observe, decide, and claim the send if one is due."""
    look = _SEND if obs is None else _look(ctx, key, obs)
    if look is _QUIET:
        return None, "nothing to do"
    if look is _SEND and not ctx.armed:
        _arm(ctx)
    for _ in range(2):
        claim, reason = _try_claim(ctx, key, obs, make_tpl)
        if reason is not _NOT_ARMED:
            return claim, reason
        _arm(ctx)  # the transaction was rolled back; it runs again, armed
    raise AssertionError("unreachable: armed after the first round")


_QUIET, _WRITE, _SEND = "quiet", "write", "send"


def _look(ctx: "Context", key: str, obs: "Observation") -> str:
    """What this observation does, judged from a read transaction, without the write
    lock (WAL readers never wait): _QUIET when it changes nothing and nothing is due
    (the usual monit cycle: no write transaction at all), _SEND when a notification
    would be due (arm first), else _WRITE. Read from one snapshot, so _QUIET is exact:
    the run is ordered before any later writer. Anything else is only a hint; the
    write transaction decides, and arms and runs again if it finds a send after all."""
    store = ctx.store
    now = ctx.clock()
    store.db.execute("BEGIN")  # deferred: a read snapshot, no lock taken
    try:
        ks, stored = store.load(key)
        if ks is None:
            ks = policy.KeyState(obs.state)
        policy.observe(ks, obs.state, now, ctx.opts, obs.core_change, obs.core_problem)
        if policy.decide(ks, now, ctx.opts, 0).kind:
            return _SEND
        if stored is None or ks.fields() != stored or store.entry(key) is not None:
            return _WRITE
        return _QUIET
    finally:
        store.commit()


def _try_claim(
    ctx: "Context", key: str, obs: "Observation | None", make_tpl: "Callable[[], Template] | None"
) -> "tuple[Claim | None, str]":
    store = ctx.store
    now = ctx.clock()
    store.begin()
    try:
        ks, stored = store.load(key)
        if obs is not None:
            if ks is None:
                ks, stored = policy.KeyState(obs.state), None
            policy.observe(ks, obs.state, now, ctx.opts, obs.core_change, obs.core_problem)
        elif ks is None:
            store.drop(key)  # forgotten, or its row was damaged: nothing to send for
            store.commit()
            return None, "no such key"
        tpl: Template | None = None
        if obs is None:
            tpl = store.template(key)  # what the last run that had something due left
        elif make_tpl is not None and policy.due(ks, now, ctx.opts.remind) is not None:
            tpl = make_tpl()  # only then: it copies the whole environment
        new_template = obs is not None and tpl is not None
        opts = ctx.opts if obs is not None or tpl is None else tpl.options()
        used = store.budget_used(now - opts.budget_per) if opts.budget_max else 0
        decision = policy.decide(ks, now, opts, used)
        entry = store.entry(key)
        live = entry is not None and entry.lease_until > now
        claim, reason = None, decision.reason
        if decision.suppress:
            store.suppress(key, decision.kind, decision.state, now)
        if not decision.kind:
            if entry is not None and not live:
                store.drop(key)  # a problem and its recovery cancel out
                reason = f"nothing due; dropped the queued {entry.sig.split(':')[0]}"
        elif live and entry is not None:
            reason = (
                f"{decision.kind} is being sent by another run"
                if entry.sig == decision.sig
                else f"another run is sending {entry.sig}; it sends {decision.sig} after"
            )
        elif not decision.send:
            pass  # over the budget
        elif entry is not None and entry.sig == decision.sig and entry.due_at > now:
            wait = entry.due_at - now
            reason = f"{decision.kind} failed {entry.attempts}x; next retry in {wait:.0f} s"
        elif tpl is None:
            reason = f"{decision.kind} due, but no command is stored for this key yet"
        elif not ctx.armed:
            store.rollback()  # nothing is written; arm outside the lock and decide again
            return None, _NOT_ARMED
        else:
            if entry is None or entry.sig != decision.sig:
                summary, upto = store.suppressed_summary()
                note = policy.notification(ks, key, decision, summary)
                entry = _entry(note, tpl, now, upto)
            entry.lease_until = now + entry.timeout + LEASE_MARGIN
            entry.owner = store.token
            store.put(entry)
            slot = store.reserve(now)
            claim = Claim(entry, decision.kind, decision.state, slot, entry.summary_upto)
        store.save(key, ks, stored)
        if new_template and decision.kind and tpl is not None:
            store.save_template(key, tpl)
        store.commit()
    except BaseException:
        store.rollback()
        raise
    return claim, reason


def _send(ctx: "Context", claim: "Claim") -> str:
    """Run the claimed command, with --retries quick retries inside its timeout."""
    from check_imap.notify.children import run_command

    entry = claim.entry
    argv = entry.argv.split(b"\0")
    env = dict(item.split(b"=", 1) for item in entry.env.split(b"\0") if b"=" in item)
    timeout = entry.timeout
    deadline = time.monotonic() + timeout
    error = "not run"
    for attempt in range(ctx.retries + 1):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        error = run_command(argv, env, timeout, ctx.quiet, left)
        if not error:
            return ""
        pause = min(0.5 * 2**attempt, 4.0)
        if attempt == ctx.retries or deadline - time.monotonic() <= pause:
            break
        if ctx.verbose:
            ctx.warn(f"{entry.key}: {error}; trying again in {pause:g} s")
        time.sleep(pause)
    return error


def _record(ctx: "Context", claim: "Claim", error: str) -> float:
    """The second short transaction; returns the back-off when the send failed."""
    store = ctx.store
    key = claim.entry.key
    now = ctx.clock()
    delay = 0.0
    store.begin()
    try:
        ks, stored = store.load(key)
        entry = store.entry(key)
        mine = entry is not None and entry.owner == store.token
        if not error:
            if ks is not None:
                policy.record_success(ks, claim.kind, claim.state, now)
                store.save(key, ks, stored)
            if mine:
                store.drop(key)
            if claim.upto:
                store.drop_suppressed(claim.upto)
        else:
            store.release(claim.slot)
            if mine and entry is not None:
                entry.attempts = entry.attempts + 1
                delay = policy.backoff(entry.attempts)
                entry.due_at, entry.lease_until, entry.owner = now + delay, 0.0, ""
                entry.error = error
                store.put(entry)
        store.commit()
    except BaseException:
        store.rollback()
        raise
    return delay


def settle(
    ctx: "Context",
    key: str,
    obs: "Observation | None" = None,
    tpl: "Callable[[], Template] | None" = None,
) -> int:
    """Observe (when given), then send what is due for the key until nothing is."""
    code = SENT
    for round_ in range(4):  # a concurrent run may have handed us the next notification
        claim, reason = _claim(ctx, key, obs, tpl)
        obs = tpl = None
        if claim is None:
            if ctx.verbose and round_ == 0:
                ctx.warn(f"{key}: {reason}")
            return code
        # The claim was committed durably (fsync): it is what makes the send happen at
        # least once. Its outcome need not be: lost in a power failure, the claim
        # stays and the send is repeated. Not waiting for the disk with the write
        # lock held is what lets 50 concurrent sends through quickly on a busy machine.
        ctx.store.durable(False)
        try:
            error = _send(ctx, claim)
        except Interrupted as stop:
            _record(ctx, claim, f"interrupted by {stop.name}")
            ctx.warn(f"{key}: {claim.kind} interrupted by {stop.name}; the command was "
                     "killed and the notification is queued for retry")  # fmt: skip
            stop.queued = True
            raise
        try:
            delay = _record(ctx, claim, error)
        except Exception as exc:
            if not error:
                raise type(exc)(f"{exc}; the notification was sent and may be repeated") from None
            raise
        ctx.store.durable(True)  # the next claim (another round, or flush) is durable again
        if error:
            ctx.warn(f"{key}: {claim.kind} not delivered: {error}; retry after {delay:.0f} s")
            return FAILED
        code = SENT
        if ctx.verbose:
            ctx.warn(f"{key}: {claim.kind} {claim.state} sent")
    return code


def flush(ctx: "Context", limit: int, seconds: float, exclude: str = "") -> int:
    """Deliver due outbox entries (other than ``exclude``'s) for at most ``seconds``.
    Returns how many are still failing."""
    start = time.monotonic()
    seen: set[str] = {exclude}
    failed = 0
    while time.monotonic() - start < seconds:
        keys = [k for k in ctx.store.due_keys(ctx.clock(), limit, exclude) if k not in seen]
        if not keys:
            break
        for key in keys:
            seen.add(key)
            failed += settle(ctx, key)
            if time.monotonic() - start >= seconds:
                break
        if len(seen) > limit:
            break
    return failed


def pending(store: "Store", now: float) -> list[dict[str, object]]:
    """The outbox for `status`."""
    out = []
    for e in store.entries():
        kind, _, state = e.sig.partition(":")
        out.append(
            {
                "key": str(e.key),
                "type": kind,
                "state": state,
                "attempts": e.attempts,
                "next_try": iso(e.due_at),
                "sending": e.lease_until > now,
                "last_error": e.error,
            }
        )
    return out
