"""The notification policy of notify_on_change, free of I/O: the caller passes the clock.

One `KeyState` per key remembers what was observed, what is confirmed and what the
receiver was last told. A notification is due when the two differ (or a reminder is
due), so budget-delayed recoveries and cancelled problems follow from one comparison
instead of a list of special cases. Delivery, claims and retries are the store's and
the engine's business; this module only says what is due.
"""

OK, WARNING, CRITICAL, UNKNOWN = "OK", "WARNING", "CRITICAL", "UNKNOWN"
STATES = (OK, WARNING, CRITICAL, UNKNOWN)
PROBLEM, RECOVERY, REMINDER = "PROBLEM", "RECOVERY", "REMINDER"
FLAPPINGSTART, FLAPPINGSTOP = "FLAPPINGSTART", "FLAPPINGSTOP"
TYPES = (PROBLEM, RECOVERY, REMINDER, FLAPPINGSTART, FLAPPINGSTOP)

_STATE_NAMES = {
    "OK": OK,
    "UP": OK,
    "WARNING": WARNING,
    "CRITICAL": CRITICAL,
    "DOWN": CRITICAL,
    "UNKNOWN": UNKNOWN,
    "UNREACHABLE": UNKNOWN,
    "0": OK,
    "1": WARNING,
    "2": CRITICAL,
    "3": UNKNOWN,
}
_EXIT_STATES = (OK, WARNING, CRITICAL)

# Nagios flap detection: 21 results (20 transitions) weighted 0.75 (oldest) .. 1.25.
FLAP_HISTORY = 21
FLAP_LOW = 20.0
FLAP_HIGH = 30.0
_WEIGHT_LOW, _WEIGHT_HIGH = 0.75, 1.25

# Retry of a failed send: 30 s, 60 s, 120 s ... at most one hour apart.
RETRY_BASE = 30.0
RETRY_MAX = 3600.0
# The largest timestamp accepted anywhere (9999-12-31T23:59:59Z).
MAX_TIME = 253402300799.0


def parse_state(text: str) -> "str | None":
    """OK, WARNING, CRITICAL, UNKNOWN from a name or 0-3 (UP/DOWN for hosts); else None."""
    return _STATE_NAMES.get(text.strip().upper())


def state_from_exit(code: int) -> str:
    """Nagios plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, anything else UNKNOWN."""
    return _EXIT_STATES[code] if 0 <= code < len(_EXIT_STATES) else UNKNOWN


def moment(value: object) -> float:
    """A stored or received timestamp; anything not finite and in range reads as 0 (unknown)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    number = float(value)
    return number if 0.0 <= number <= MAX_TIME else 0.0  # NaN fails both comparisons


def percent_state_change(history: str) -> float:
    """Nagios' curved percent state change of the last 21 results (0 to 100).

    ``history`` holds one letter per result. A shorter history keeps its newest
    transition on the heaviest weight and is still divided by 20, so a young key does
    not look like it is flapping.
    """
    recent = history[-FLAP_HISTORY:]
    transitions = FLAP_HISTORY - 1
    offset = FLAP_HISTORY - len(recent)
    step = (_WEIGHT_HIGH - _WEIGHT_LOW) / (transitions - 1)
    changes = 0.0
    for i in range(1, len(recent)):
        if recent[i] != recent[i - 1]:
            changes += _WEIGHT_LOW + (i + offset - 1) * step
    return changes * 100.0 / transitions


def backoff(attempts: int) -> float:
    """Seconds until the next try after ``attempts`` failed ones (30 s doubling, capped)."""
    return min(RETRY_BASE * float(2 ** min(max(attempts, 1) - 1, 16)), RETRY_MAX)


# Plain classes rather than dataclasses: importing and building dataclasses costs
# several milliseconds, and this runs on every monit cycle.


class Options:
    __slots__ = ("budget_max", "budget_per", "confirm", "flap", "remind")

    def __init__(
        self,
        confirm: int = 1,
        remind: float = 0.0,
        budget_max: int = 0,  # 0: no budget
        budget_per: float = 0.0,
        flap: bool = False,
    ) -> None:
        self.confirm, self.remind, self.flap = confirm, remind, flap
        self.budget_max, self.budget_per = budget_max, budget_per


class KeyState:
    """Everything remembered about one key. `fields()` is the stored form, in order."""

    __slots__ = (
        "confirmed",
        "core_change",
        "flap_notified",
        "flap_since",
        "flapping",
        "history",
        "last_notified",
        "notified",
        "observed",
        "previous",
        "since",
        "streak",
        "suppressed_at",
        "suppressed_sig",
    )

    def __init__(self, observed: str) -> None:
        self.observed = observed  # the latest raw result
        self.streak = 0  # consecutive identical raw results, capped at --confirm
        self.confirmed: str | None = None
        self.previous = ""  # the confirmed state before `confirmed`
        self.since = 0.0  # when `confirmed` began
        self.notified: str | None = None  # the state the receiver last heard of
        self.last_notified = 0.0
        self.history = ""  # one letter per result, only with --flap
        self.flapping = False
        self.flap_since = 0.0
        self.flap_notified = False  # FLAPPINGSTART delivered, FLAPPINGSTOP not yet
        self.suppressed_sig = ""  # the due notification already counted as suppressed
        self.suppressed_at = 0.0
        self.core_change = 0.0  # the monitoring core's last state change, when it says

    def fields(self) -> "tuple[object, ...]":
        return tuple(getattr(self, name) for name in self.__slots__)


class Notification:
    __slots__ = ("key", "previous", "since", "state", "suppressed", "type")

    def __init__(
        self, key: str, kind: str, state: str, previous: str, since: float, suppressed: str
    ) -> None:
        self.key, self.type, self.state, self.previous = key, kind, state, previous
        self.since = since
        self.suppressed = suppressed  # the budget summary, "" when nothing was suppressed

    @property
    def sig(self) -> str:
        return f"{self.type}:{self.state}"


class Decision:
    """What `decide` found: the due (kind, state) or none, whether it may be sent now,
    and whether the caller must count one more notification as suppressed."""

    __slots__ = ("kind", "reason", "send", "state", "suppress")

    def __init__(
        self, kind: str, state: str, reason: str, send: bool = False, suppress: bool = False
    ) -> None:
        self.kind, self.state, self.reason = kind, state, reason
        self.send, self.suppress = send, suppress

    @property
    def sig(self) -> str:
        return f"{self.kind}:{self.state}" if self.kind else ""


def observe(
    ks: "KeyState",
    state: str,
    now: float,
    opts: "Options",
    core_change: float = 0.0,
    core_problem: bool = False,
) -> None:
    """Record one result: streak, confirmation, flap detection, the core's new problems.

    ``core_change`` is the monitoring core's own time of the last state change and
    ``core_problem`` says the core called this a PROBLEM notification. A PROBLEM whose
    state change is newer than the one recorded starts a new problem, even when the
    core never told us about the recovery in between (flapping, downtime, periods).
    """
    if state == ks.observed:
        ks.streak = min(ks.streak + 1, opts.confirm)
    else:
        ks.observed, ks.streak = state, 1
    if core_change > 0:
        newer = ks.core_change > 0 and core_change > ks.core_change
        if newer and core_problem and state != OK and ks.notified not in (None, OK):
            ks.notified = None  # the receiver's CRITICAL belongs to the old problem
            ks.previous, ks.since = OK, now
            ks.streak = opts.confirm
            ks.confirmed = state
        ks.core_change = max(ks.core_change, core_change)
    if ks.streak >= opts.confirm and ks.confirmed != state:
        ks.previous = ks.confirmed or ""
        ks.confirmed, ks.since = state, now
    if opts.flap:
        ks.history = (ks.history + state[0])[-FLAP_HISTORY:]
        pct = percent_state_change(ks.history)
        if not ks.flapping and pct >= FLAP_HIGH:
            ks.flapping, ks.flap_since = True, now
        elif ks.flapping and pct < FLAP_LOW:
            ks.flapping, ks.flap_since = False, now
    else:
        ks.history, ks.flapping = "", False


def due(ks: "KeyState", now: float, remind: float) -> "tuple[str, str] | None":
    """The (type, state) the receiver should hear now, or None."""
    current = ks.confirmed or ks.observed
    if ks.flapping:
        return None if ks.flap_notified else (FLAPPINGSTART, current)
    if ks.flap_notified:
        return FLAPPINGSTOP, current
    if ks.confirmed is None:
        return None
    if ks.confirmed != OK:
        if ks.notified != ks.confirmed:
            return PROBLEM, ks.confirmed
        if remind > 0 and now - ks.last_notified >= remind:
            return REMINDER, ks.confirmed
        return None
    # A recovery only answers a problem the receiver actually heard of.
    if ks.notified not in (None, OK):
        return RECOVERY, OK
    return None


def decide(ks: "KeyState", now: float, opts: "Options", budget_used: int) -> "Decision":
    """What is due for this key, and whether the budget (``budget_used`` sends in the
    window, over all keys) lets it go. Counts a notification over the budget once."""
    found = due(ks, now, opts.remind)
    if found is None:
        ks.suppressed_sig = ""
        return Decision("", "", "nothing to do")
    kind, state = found
    if opts.budget_max > 0 and budget_used >= opts.budget_max:
        sig = f"{kind}:{state}"
        again = kind == REMINDER and now - ks.suppressed_at >= opts.remind
        count = sig != ks.suppressed_sig or again
        if count:
            ks.suppressed_sig, ks.suppressed_at = sig, now
        reason = f"{kind} suppressed: budget of {opts.budget_max} used up"
        return Decision(kind, state, reason, suppress=count)
    return Decision(kind, state, f"{kind} due", send=True)


def notification(ks: "KeyState", key: str, decision: "Decision", summary: str) -> "Notification":
    flap = decision.kind in (FLAPPINGSTART, FLAPPINGSTOP)
    since = ks.flap_since if flap else ks.since
    return Notification(key, decision.kind, decision.state, ks.previous, since, summary)


def record_success(ks: "KeyState", kind: str, state: str, now: float) -> None:
    ks.last_notified = now
    if kind == FLAPPINGSTART:
        ks.flap_notified = True
    elif kind == FLAPPINGSTOP:
        # The stop message carries the current state: no extra PROBLEM/RECOVERY follows.
        ks.flap_notified = False
        ks.notified = ks.confirmed if ks.confirmed is not None else ks.notified
    else:
        ks.notified = state
    ks.suppressed_sig = ""


def summary(keys: list[str], count: int, shown: int = 20) -> str:
    """'3 suppressed: key1, key2': the count of notifications, each key once."""
    if not count:
        return ""
    names = list(dict.fromkeys(keys))
    text = ", ".join(names[:shown])
    if len(names) > shown:
        text += f" and {len(names) - shown} more"
    return f"{count} suppressed: {text}"
