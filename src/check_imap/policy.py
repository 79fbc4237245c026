"""The notification policy of notify_on_change, free of I/O: the caller passes the clock.

One `KeyState` per key remembers what was observed, what is confirmed and what the
receiver was last told. A notification is due when the two differ (or a reminder is
due), so retries, budget-delayed recoveries and cancelled problems all follow from
one comparison instead of a list of special cases.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms)
if TYPE_CHECKING:
    from typing import Any


OK, WARNING, CRITICAL, UNKNOWN = "OK", "WARNING", "CRITICAL", "UNKNOWN"
PROBLEM, RECOVERY, REMINDER = "PROBLEM", "RECOVERY", "REMINDER"
FLAPPINGSTART, FLAPPINGSTOP = "FLAPPINGSTART", "FLAPPINGSTOP"

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

# Retry of a failed command: 30 s, 60 s, 120 s ... at most one hour apart.
RETRY_BASE = 30.0
RETRY_MAX = 3600.0
# Bounds the list of send times when no budget prunes it.
_SENT_KEEP = 1000


def parse_state(text: str) -> str | None:
    """OK, WARNING, CRITICAL, UNKNOWN from a name or 0-3 (UP/DOWN for hosts); else None."""
    return _STATE_NAMES.get(text.strip().upper())


def state_from_exit(code: int) -> str:
    """Nagios plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, anything else UNKNOWN."""
    return _EXIT_STATES[code] if 0 <= code < len(_EXIT_STATES) else UNKNOWN


def percent_state_change(history: list[str]) -> float:
    """Nagios' curved percent state change of the last 21 results (0 to 100).

    A shorter history keeps its newest transition on the heaviest weight and is still
    divided by 20, so a young key does not look like it is flapping.
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
    __slots__ = (
        "confirmed",
        "failed_sig",
        "failures",
        "flap_notified",
        "flap_since",
        "flapping",
        "history",
        "last_notified",
        "notified",
        "observed",
        "previous",
        "retry_at",
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
        self.history: list[str] = []  # only with --flap
        self.flapping = False
        self.flap_since = 0.0
        self.flap_notified = False  # FLAPPINGSTART delivered, FLAPPINGSTOP not yet
        self.failures = 0  # consecutive failed runs of the command for `failed_sig`
        self.failed_sig = ""
        self.retry_at = 0.0
        self.suppressed_sig = ""  # the due notification already counted as suppressed
        self.suppressed_at = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__slots__}
        data["history"] = list(self.history)
        return data


class Suppressed:
    __slots__ = ("at", "key", "state", "type")

    def __init__(self, key: str, kind: str, state: str, at: float) -> None:
        self.key, self.type, self.state, self.at = key, kind, state, at

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "type": self.type, "state": self.state, "at": self.at}


class Store:
    __slots__ = ("keys", "sent", "suppressed")

    def __init__(
        self,
        keys: dict[str, KeyState] | None = None,
        sent: list[float] | None = None,
        suppressed: list[Suppressed] | None = None,
    ) -> None:
        self.keys = keys if keys is not None else {}
        self.sent = sent if sent is not None else []  # times of notifications that ran
        self.suppressed = suppressed if suppressed is not None else []  # not yet reported

    def to_dict(self) -> dict[str, Any]:
        return {
            "keys": {key: ks.to_dict() for key, ks in self.keys.items()},
            "sent": list(self.sent),
            "suppressed": [s.to_dict() for s in self.suppressed],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Store:
        """Rebuild from `to_dict` output; ValueError on anything unexpected."""
        if not data:
            return cls()
        try:
            keys = {_text(k): _key_state(v) for k, v in _dict(data["keys"]).items()}
            sent = [_number(t) for t in _list(data["sent"])]
            suppressed = [_suppressed(s) for s in _list(data["suppressed"])]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"bad state content: {exc!r}") from None
        return cls(keys, sent, suppressed)


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
    __slots__ = ("notification", "reason")

    def __init__(self, notification: Notification | None, reason: str) -> None:
        self.notification, self.reason = notification, reason


def observe(store: Store, key: str, state: str, now: float, opts: Options) -> KeyState:
    """Record one result for `key`: streak, confirmation and flap detection."""
    ks = store.keys.get(key)
    if ks is None:
        ks = store.keys[key] = KeyState(observed=state)
    if state == ks.observed:
        ks.streak = min(ks.streak + 1, opts.confirm)
    else:
        ks.observed, ks.streak = state, 1
    if ks.streak >= opts.confirm and ks.confirmed != state:
        ks.previous = ks.confirmed or ""
        ks.confirmed, ks.since = state, now
    if opts.flap:
        ks.history = [*ks.history, state][-FLAP_HISTORY:]
        pct = percent_state_change(ks.history)
        if not ks.flapping and pct >= FLAP_HIGH:
            ks.flapping, ks.flap_since = True, now
        elif ks.flapping and pct < FLAP_LOW:
            ks.flapping, ks.flap_since = False, now
    else:
        ks.history, ks.flapping = [], False
    return ks


def _due(ks: KeyState, now: float, opts: Options) -> tuple[str, str] | None:
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
        if opts.remind > 0 and now - ks.last_notified >= opts.remind:
            return REMINDER, ks.confirmed
        return None
    # A recovery only answers a problem the receiver actually heard of.
    if ks.notified not in (None, OK):
        return RECOVERY, OK
    return None


def summary(entries: list[Suppressed]) -> str:
    """'3 suppressed: key1, key2': the count of notifications, each key once."""
    if not entries:
        return ""
    keys = list(dict.fromkeys(e.key for e in entries))
    return f"{len(entries)} suppressed: {', '.join(keys)}"


def decide(store: Store, key: str, now: float, opts: Options) -> Decision:
    """What to run for `key` now. Counts a notification that is over the budget."""
    ks = store.keys[key]
    due = _due(ks, now, opts)
    if due is None:
        ks.failures, ks.failed_sig, ks.retry_at, ks.suppressed_sig = 0, "", 0.0, ""
        return Decision(None, "nothing to do")
    kind, state = due
    since = ks.flap_since if kind in (FLAPPINGSTART, FLAPPINGSTOP) else ks.since
    note = Notification(key, kind, state, ks.previous, since, summary(store.suppressed))
    if ks.failures and note.sig == ks.failed_sig and now < ks.retry_at:
        return Decision(
            None, f"{kind} failed {ks.failures}x; next retry in {ks.retry_at - now:.0f} s"
        )
    if opts.budget_max > 0:
        store.sent = [t for t in store.sent if t > now - opts.budget_per]
        if len(store.sent) >= opts.budget_max:
            again = kind == REMINDER and now - ks.suppressed_at >= opts.remind
            if note.sig != ks.suppressed_sig or again:
                store.suppressed.append(Suppressed(key, kind, state, now))
                ks.suppressed_sig, ks.suppressed_at = note.sig, now
            return Decision(None, f"{kind} suppressed: budget of {opts.budget_max} used up")
    return Decision(note, f"{kind} due")


def record_success(store: Store, note: Notification, now: float) -> None:
    ks = store.keys[note.key]
    ks.last_notified = now
    if note.type == FLAPPINGSTART:
        ks.flap_notified = True
    elif note.type == FLAPPINGSTOP:
        # The stop message carries the current state: no extra PROBLEM/RECOVERY follows.
        ks.flap_notified = False
        ks.notified = ks.confirmed if ks.confirmed is not None else ks.notified
    else:
        ks.notified = note.state
    ks.failures, ks.failed_sig, ks.retry_at, ks.suppressed_sig = 0, "", 0.0, ""
    store.sent = [*store.sent, now][-_SENT_KEEP:]
    if note.suppressed:
        store.suppressed = []  # the lock is held, so the summary covered all of them


def record_failure(store: Store, note: Notification, now: float) -> float:
    """Keep the notification due and back off; returns the delay until the next try."""
    ks = store.keys[note.key]
    if note.sig != ks.failed_sig:
        ks.failures, ks.failed_sig = 0, note.sig
    ks.failures += 1
    delay = min(RETRY_BASE * float(2 ** min(ks.failures - 1, 16)), RETRY_MAX)
    ks.retry_at = now + delay
    return delay


def forget(store: Store, key: str) -> bool:
    if key not in store.keys:
        return False
    del store.keys[key]
    store.suppressed = [s for s in store.suppressed if s.key != key]
    return True


# --- validation of loaded JSON: any surprise makes the file "corrupt" ---------------


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object, got {type(value).__name__}")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _state(value: Any) -> str:
    text = _text(value)
    if text not in (OK, WARNING, CRITICAL, UNKNOWN):
        raise ValueError(f"unknown state {text!r}")
    return text


def _key_state(value: Any) -> KeyState:
    d = _dict(value)
    ks = KeyState(observed=_state(d["observed"]))
    ks.streak = int(_number(d["streak"]))
    ks.confirmed = None if d["confirmed"] is None else _state(d["confirmed"])
    ks.previous = "" if d["previous"] == "" else _state(d["previous"])
    ks.since = _number(d["since"])
    ks.notified = None if d["notified"] is None else _state(d["notified"])
    ks.last_notified = _number(d["last_notified"])
    ks.history = [_state(s) for s in _list(d["history"])]
    ks.flapping = bool(d["flapping"])
    ks.flap_since = _number(d["flap_since"])
    ks.flap_notified = bool(d["flap_notified"])
    ks.failures = int(_number(d["failures"]))
    ks.failed_sig = _text(d["failed_sig"])
    ks.retry_at = _number(d["retry_at"])
    ks.suppressed_sig = _text(d["suppressed_sig"])
    ks.suppressed_at = _number(d["suppressed_at"])
    return ks


def _suppressed(value: Any) -> Suppressed:
    d = _dict(value)
    return Suppressed(_text(d["key"]), _text(d["type"]), _state(d["state"]), _number(d["at"]))
