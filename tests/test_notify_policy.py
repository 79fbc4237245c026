"""The notify_on_change policy as pure functions, driven by a fake clock."""

from __future__ import annotations

import pytest

from check_imap.notify import policy
from check_imap.notify.policy import (
    CRITICAL,
    OK,
    PROBLEM,
    REMINDER,
    UNKNOWN,
    WARNING,
    Options,
)

T0 = 1_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class Harness:
    """Observe, decide and (pretend to) deliver, like one CLI invocation each, with the
    store's part (send times, suppressed list) kept in memory as the store keeps it."""

    def __init__(self, opts: Options | None = None, delivers: bool = True) -> None:
        self.keys: dict[str, policy.KeyState] = {}
        self.sent_at: list[float] = []
        self.suppressed: list[tuple[str, str, str]] = []
        self.opts = opts or Options()
        self.clock = Clock()
        self.delivers = delivers
        self.sent: list[policy.Notification] = []

    def feed(self, state: str, key: str = "k", core_change: float = 0.0, kind: str = "") -> str:
        """One invocation; returns 'TYPE STATE' if a notification ran, else ''."""
        now = self.clock.now
        ks = self.keys.setdefault(key, policy.KeyState(state))
        policy.observe(ks, state, now, self.opts, core_change, kind == PROBLEM)
        used = sum(1 for t in self.sent_at if t > now - self.opts.budget_per)
        decision = policy.decide(ks, now, self.opts, used)
        if decision.suppress:
            self.suppressed.append((key, decision.kind, decision.state))
        if not decision.send:
            return ""
        keys = [k for k, _, _ in self.suppressed]
        note = policy.notification(ks, key, decision, policy.summary(keys, len(keys)))
        if self.delivers:
            policy.record_success(ks, note.type, note.state, now)
            self.sent_at.append(now)
            self.sent.append(note)
            if note.suppressed:
                self.suppressed = []
        return f"{note.type} {note.state}"

    def ks(self, key: str = "k") -> policy.KeyState:
        return self.keys[key]


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("ok", OK),
        ("Up", OK),
        ("0", OK),
        ("warning", WARNING),
        ("1", WARNING),
        ("CRITICAL", CRITICAL),
        ("down", CRITICAL),
        ("2", CRITICAL),
        ("unknown", UNKNOWN),
        ("3", UNKNOWN),
        (" unreachable ", UNKNOWN),
        ("4", None),
        ("failed", None),
        ("", None),
    ],
)
def test_parse_state(text: str, state: str | None) -> None:
    assert policy.parse_state(text) == state


@pytest.mark.parametrize(
    ("code", "state"),
    [(0, OK), (1, WARNING), (2, CRITICAL), (3, UNKNOWN), (4, UNKNOWN), (-9, UNKNOWN)],
)
def test_state_from_exit(code: int, state: str) -> None:
    assert policy.state_from_exit(code) == state


def test_ok_baseline_is_silent() -> None:
    h = Harness()
    assert h.feed(OK) == ""
    assert h.ks().confirmed == OK


def test_problem_baseline_notifies_without_previous_state() -> None:
    h = Harness()
    assert h.feed(CRITICAL) == "PROBLEM CRITICAL"
    assert h.sent[0].previous == ""
    assert h.sent[0].since == T0


def test_every_cycle_problem_notifies_once_then_one_recovery() -> None:
    h = Harness()
    h.feed(OK)
    results = []
    for _ in range(100):
        h.clock.advance(30)
        results.append(h.feed(CRITICAL))
    assert results == ["PROBLEM CRITICAL"] + [""] * 99
    h.clock.advance(30)
    assert h.feed(OK) == "RECOVERY OK"
    assert h.sent[-1].previous == CRITICAL
    assert h.feed(OK) == ""


def test_change_between_problem_states_notifies() -> None:
    h = Harness()
    h.feed(OK)
    assert h.feed(CRITICAL) == "PROBLEM CRITICAL"
    assert h.feed(WARNING) == "PROBLEM WARNING"
    assert h.sent[-1].previous == CRITICAL
    assert h.feed(OK) == "RECOVERY OK"
    assert h.sent[-1].previous == WARNING


def test_confirm_needs_consecutive_identical_results() -> None:
    h = Harness(Options(confirm=3))
    assert [h.feed(s) for s in (OK, OK, OK)] == ["", "", ""]
    assert [h.feed(s) for s in (CRITICAL, CRITICAL, OK)] == ["", "", ""]
    assert h.ks().confirmed == OK
    assert [h.feed(CRITICAL) for _ in range(3)] == ["", "", "PROBLEM CRITICAL"]
    assert h.sent[-1].previous == OK


def test_unconfirmed_blip_sends_no_phantom_recovery() -> None:
    h = Harness(Options(confirm=2))
    h.feed(OK)
    h.feed(OK)
    assert h.feed(CRITICAL) == ""
    assert h.feed(OK) == ""
    assert h.sent == []


def test_recovery_only_after_a_notified_problem() -> None:
    # A key first seen as OK after a suppressed problem never got one: no recovery.
    h = Harness(Options(budget_max=1, budget_per=3600))
    assert h.feed(CRITICAL, key="other") == "PROBLEM CRITICAL"
    assert h.feed(CRITICAL) == ""  # over budget
    assert h.feed(OK) == ""
    h.clock.advance(3601)
    assert h.feed(OK) == ""


def test_reminder_after_interval_while_not_ok() -> None:
    h = Harness(Options(remind=3600))
    assert h.feed(CRITICAL) == "PROBLEM CRITICAL"
    h.clock.advance(3599)
    assert h.feed(CRITICAL) == ""
    h.clock.advance(1)
    assert h.feed(CRITICAL) == "REMINDER CRITICAL"
    h.clock.advance(1800)
    assert h.feed(CRITICAL) == ""
    h.clock.advance(1800)
    assert h.feed(CRITICAL) == "REMINDER CRITICAL"
    assert h.feed(OK) == "RECOVERY OK"
    h.clock.advance(7200)
    assert h.feed(OK) == ""


def test_no_reminder_by_default() -> None:
    h = Harness()
    h.feed(CRITICAL)
    h.clock.advance(10 * 86400)
    assert h.feed(CRITICAL) == ""


def test_budget_suppresses_counts_once_and_reports_in_next_sent() -> None:
    h = Harness(Options(budget_max=2, budget_per=3600))
    assert h.feed(CRITICAL, "a") == "PROBLEM CRITICAL"
    assert h.feed(CRITICAL, "b") == "PROBLEM CRITICAL"
    assert h.feed(CRITICAL, "c") == ""
    assert h.feed(CRITICAL, "c") == ""  # still the same suppressed problem
    assert h.feed(WARNING, "d") == ""
    assert h.suppressed == [
        ("c", PROBLEM, CRITICAL),
        ("d", PROBLEM, WARNING),
    ]
    h.clock.advance(3601)
    assert h.feed(CRITICAL, "e") == "PROBLEM CRITICAL"
    assert h.sent[-1].suppressed == "2 suppressed: c, d"
    assert h.suppressed == []
    # The still-failing suppressed key is delivered once the budget allows.
    assert h.feed(CRITICAL, "c") == "PROBLEM CRITICAL"
    assert h.sent[-1].suppressed == ""


def test_budget_window_slides() -> None:
    h = Harness(Options(budget_max=1, budget_per=600))
    assert h.feed(CRITICAL, "a") == "PROBLEM CRITICAL"
    h.clock.advance(599)
    assert h.feed(CRITICAL, "b") == ""
    h.clock.advance(1)
    assert h.feed(CRITICAL, "b") == "PROBLEM CRITICAL"
    assert h.sent[-1].suppressed == "1 suppressed: b"


def test_suppressed_recovery_is_delivered_when_budget_returns_if_still_ok() -> None:
    h = Harness(Options(budget_max=1, budget_per=3600))
    assert h.feed(CRITICAL, "a") == "PROBLEM CRITICAL"
    h.clock.advance(60)
    assert h.feed(OK, "a") == ""
    h.clock.advance(3600)
    assert h.feed(OK, "a") == "RECOVERY OK"
    assert h.sent[-1].suppressed == "1 suppressed: a"


def test_suppressed_recovery_dropped_if_problem_returned() -> None:
    h = Harness(Options(budget_max=1, budget_per=3600))
    h.feed(CRITICAL, "a")
    h.clock.advance(60)
    assert h.feed(OK, "a") == ""  # recovery suppressed
    assert h.feed(CRITICAL, "a") == ""  # the receiver still believes CRITICAL
    h.clock.advance(3600)
    assert h.feed(CRITICAL, "a") == ""


def test_problem_and_recovery_inside_suppression_cancel() -> None:
    h = Harness(Options(budget_max=1, budget_per=3600))
    h.feed(CRITICAL, "a")
    h.feed(OK, "b")
    assert h.feed(CRITICAL, "b") == ""
    assert h.feed(OK, "b") == ""
    h.clock.advance(3601)
    assert h.feed(OK, "b") == ""
    assert [kind for _, kind, _ in h.suppressed] == [PROBLEM]


def test_suppressed_reminders_count_once_per_interval() -> None:
    h = Harness(Options(remind=600, budget_max=1, budget_per=86400))
    h.feed(CRITICAL)
    for _ in range(10):
        h.clock.advance(300)
        h.feed(CRITICAL)
    # reminders due at 600, 1200 (suppressed at 600; recounted at 1200, 1800, ...)
    assert [kind for _, kind, _ in h.suppressed] == [REMINDER] * 5


def test_backoff_doubles_and_is_capped() -> None:
    delays = [policy.backoff(n) for n in range(1, 13)]
    assert delays[:4] == [30.0, 60.0, 120.0, 240.0]
    assert delays[-1] == policy.RETRY_MAX


def test_undelivered_problem_stays_due_then_recovery_cancels_it() -> None:
    h = Harness(delivers=False)
    h.feed(OK)
    assert h.feed(CRITICAL) == "PROBLEM CRITICAL"
    assert h.feed(CRITICAL) == "PROBLEM CRITICAL"  # still due: the outbox retries it
    assert h.feed(WARNING) == "PROBLEM WARNING"  # a newer problem replaces it
    assert h.feed(OK) == ""  # the problem never arrived, so no recovery is owed


def test_core_new_problem_after_a_recovery_we_never_heard_of() -> None:
    h = Harness()
    assert h.feed(CRITICAL, core_change=100.0, kind=PROBLEM) == "PROBLEM CRITICAL"
    h.clock.advance(60)
    assert h.feed(CRITICAL, core_change=100.0, kind=PROBLEM) == ""  # re-notification
    h.clock.advance(60)
    assert h.feed(CRITICAL, core_change=150.0, kind=PROBLEM) == "PROBLEM CRITICAL"
    assert h.sent[-1].previous == OK
    assert h.sent[-1].since == h.clock.now
    assert h.feed(CRITICAL, core_change=150.0, kind=PROBLEM) == ""


def test_core_change_needs_a_problem_type_and_a_newer_time() -> None:
    h = Harness()
    h.feed(CRITICAL, core_change=100.0, kind=PROBLEM)
    assert h.feed(CRITICAL, core_change=200.0) == ""  # no PROBLEM type: an observation
    assert h.feed(CRITICAL, core_change=50.0, kind=PROBLEM) == ""  # older
    assert h.ks().core_change == 200.0
    assert h.feed(OK, core_change=300.0, kind="RECOVERY") == "RECOVERY OK"


def test_first_core_change_is_only_recorded() -> None:
    """State imported from a version without core times: no duplicate after upgrade."""
    h = Harness()
    h.feed(CRITICAL)
    assert h.feed(CRITICAL, core_change=500.0, kind=PROBLEM) == ""
    assert h.ks().core_change == 500.0


def test_core_new_problem_still_obeys_the_budget() -> None:
    h = Harness(Options(budget_max=1, budget_per=3600))
    assert h.feed(CRITICAL, core_change=100.0, kind=PROBLEM) == "PROBLEM CRITICAL"
    assert h.feed(CRITICAL, core_change=200.0, kind=PROBLEM) == ""
    assert h.suppressed == [("k", PROBLEM, CRITICAL)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5.5, 5.5), (float("nan"), 0.0), (float("inf"), 0.0), (-1.0, 0.0), (1e300, 0.0),
     (True, 0.0), ("5", 0.0), (None, 0.0), (7, 7.0)],
)  # fmt: skip
def test_moment_accepts_only_finite_times_in_range(value: object, expected: float) -> None:
    assert policy.moment(value) == expected


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([OK] * 21, 0.0),
        ([OK, CRITICAL] * 10 + [OK], 100.0),
        ([OK] * 20 + [CRITICAL], 6.25),  # newest transition weighs 1.25
        ([OK] + [CRITICAL] * 20, 3.75),  # oldest weighs 0.75
        ([OK, CRITICAL], 6.25),  # a short history keeps the newest weight
        ([OK] * 30 + [CRITICAL], 6.25),  # only the last 21 count
    ],
)
def test_percent_state_change(history: list[str], expected: float) -> None:
    letters = "".join(state[0] for state in history)
    assert policy.percent_state_change(letters) == pytest.approx(expected)


def test_flapping_sends_start_once_and_stop_once() -> None:
    h = Harness(Options(flap=True))
    alternating = [CRITICAL, OK] * 10 + [CRITICAL]
    results = [h.feed(s) for s in alternating]
    # Five transitions weigh 29.9 %: still below 30 %; the sixth starts flapping.
    assert results[:6] == ["PROBLEM CRITICAL", "RECOVERY OK"] * 3
    assert results[6] == "FLAPPINGSTART CRITICAL"
    assert results[7:] == [""] * 14
    assert h.ks().flapping
    tail = [h.feed(OK) for _ in range(21)]
    assert tail.count("FLAPPINGSTOP OK") == 1
    assert [r for r in tail if r] == ["FLAPPINGSTOP OK"]
    # Stop once the weighted change drops below 20 % (sum of weights < 4).
    stop_at = tail.index("FLAPPINGSTOP OK")
    history = "".join(s[0] for s in [*alternating, *[OK] * (stop_at + 1)])
    assert policy.percent_state_change(history) < policy.FLAP_LOW
    assert policy.percent_state_change(history[:-1]) >= policy.FLAP_LOW
    assert h.feed(OK) == ""


def test_flapping_stop_in_problem_state_needs_no_extra_problem() -> None:
    h = Harness(Options(flap=True))
    for s in [OK, CRITICAL] * 5:
        h.feed(s)
    assert h.ks().flapping
    types = [h.feed(CRITICAL) for _ in range(21)]
    assert [t for t in types if t] == ["FLAPPINGSTOP CRITICAL"]
    assert h.ks().notified == CRITICAL
    assert h.feed(OK) == "RECOVERY OK"


def test_flap_start_and_stop_while_undelivered_cancel() -> None:
    h = Harness(Options(flap=True), delivers=False)
    for s in [OK, CRITICAL] * 5:
        h.feed(s)
    assert h.ks().flapping
    for _ in range(21):
        h.feed(OK)
    assert not h.ks().flapping
    h.delivers = True
    h.clock.advance(3600)
    assert h.feed(OK) == ""


def test_summary_format() -> None:
    assert policy.summary(["x", "y", "x"], 3) == "3 suppressed: x, y"
    assert policy.summary([], 0) == ""
    many = [f"k{i}" for i in range(25)]
    assert policy.summary(many, 30) == ("30 suppressed: " + ", ".join(many[:20]) + " and 5 more")
