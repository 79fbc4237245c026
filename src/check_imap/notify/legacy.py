"""The version-1 JSON state file of notify_on_change 0.1, read once to be imported.

Timestamps that are not finite or out of range read as 0 (unknown), so a damaged
number costs that number, never a crash; anything else out of shape makes the whole
file corrupt, and it is moved aside as before.
"""

from __future__ import annotations

from check_imap.notify import policy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Corrupt(Exception):
    """Unparsable or out of shape: the caller moves the file aside."""


class Imported:
    __slots__ = ("keys", "sent", "suppressed")

    def __init__(self) -> None:
        self.keys: dict[str, policy.KeyState] = {}
        self.sent: list[float] = []
        self.suppressed: list[tuple[str, str, str, float]] = []


def parse(raw: bytes) -> Imported:
    import json

    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Corrupt(f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != 1:
        raise Corrupt("not a version-1 state file")
    if not isinstance(doc.get("data"), dict):
        raise Corrupt("not a version-1 state file")
    data: dict[str, Any] = doc["data"]
    out = Imported()
    if not data:
        return out
    try:
        for key, value in _dict(data["keys"]).items():
            out.keys[_text(key)] = _key_state(_dict(value))
        out.sent = [policy.moment(t) for t in _list(data["sent"])]
        for item in _list(data["suppressed"]):
            d = _dict(item)
            kind = _text(d["type"])
            if kind not in policy.TYPES:
                raise ValueError(f"unknown type {kind!r}")
            entry = (_text(d["key"]), kind, _state(d["state"]), policy.moment(d["at"]))
            out.suppressed.append(entry)
    except (KeyError, TypeError, ValueError) as exc:
        raise Corrupt(f"unexpected content: {exc!r}") from None
    return out


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


def _state(value: Any) -> str:
    text = _text(value)
    if text not in policy.STATES:
        raise ValueError(f"unknown state {text!r}")
    return text


def _key_state(d: dict[str, Any]) -> policy.KeyState:
    ks = policy.KeyState(observed=_state(d["observed"]))
    streak = d["streak"]
    if isinstance(streak, bool) or not isinstance(streak, (int, float)) or not 0 <= streak < 1e9:
        streak = 0  # NaN and out-of-range counts start again
    ks.streak = int(streak)
    ks.confirmed = None if d["confirmed"] is None else _state(d["confirmed"])
    ks.previous = "" if d["previous"] == "" else _state(d["previous"])
    ks.since = policy.moment(d["since"])
    ks.notified = None if d["notified"] is None else _state(d["notified"])
    ks.last_notified = policy.moment(d["last_notified"])
    ks.history = "".join(_state(s)[0] for s in _list(d["history"]))[-policy.FLAP_HISTORY :]
    ks.flapping = bool(d["flapping"])
    ks.flap_since = policy.moment(d["flap_since"])
    ks.flap_notified = bool(d["flap_notified"])
    ks.suppressed_sig = _text(d["suppressed_sig"])
    ks.suppressed_at = policy.moment(d["suppressed_at"])
    # failures/retry_at of a failed send are not imported: the notification is still
    # due (confirmed != notified) and the next run for the key sends it.
    return ks
