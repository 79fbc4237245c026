"""Contexts: each kind of metric becomes a state and a one-line reason.

Thresholds are nagiosplugin ScalarContexts: the total and per-bucket times, and the
message count and quota use of each mailbox (one context per mailbox, as check_patroni
does). The other contexts judge findings that are not numbers.
"""

from __future__ import annotations

import nagiosplugin

from .. import certpolicy, mailpolicy
from ..options import Options, Range
from ..protocol import GreetingKind, LogoutEnding, MailboxStatus, Severity
from ..steps import BUCKETS, Step
from ..text import sanitize
from ..transport import CertificateError, NetworkTimeout, Session
from .resource import Imap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

STATES = {
    "ok": nagiosplugin.Ok,
    "warning": nagiosplugin.Warn,
    "critical": nagiosplugin.Critical,
    "unknown": nagiosplugin.Unknown,
}
SEVERITY = {
    Severity.CRITICAL: nagiosplugin.Critical,
    Severity.WARNING: nagiosplugin.Warn,
    Severity.UNKNOWN: nagiosplugin.Unknown,
}


def ranges(pair: Range) -> tuple[str | None, str | None]:
    return pair[0], pair[1]


class SessionContext(nagiosplugin.Context):
    """Turns the handshake's outcome into a state and a one-line reason."""

    def __init__(self, options: Options) -> None:
        super().__init__("session")
        self.options = options

    def evaluate(self, metric: nagiosplugin.Metric, resource: Imap) -> nagiosplugin.Result:
        session: Session = metric.value
        state, hint = self.judge(session, resource.now)
        return nagiosplugin.Result(state, hint, metric)

    def judge(self, session: Session, now: float) -> tuple[nagiosplugin.ServiceState, str]:
        outcome = session.outcome
        error = session.error
        if error is not None:
            if isinstance(error, NetworkTimeout):
                return STATES[self.options.judgement.timeout_state], timeout_hint(session, self)
            if isinstance(error, CertificateError):
                name = self.options.target.server_name
                reason = certpolicy.explain_verify_failure(
                    error.verify_code, error.reason, session.unverified, name, now
                )
                return nagiosplugin.Critical, reason
            return nagiosplugin.Critical, error.reason
        if outcome.failure is not None:
            return SEVERITY[outcome.severity], failure_hint(session)
        logout = outcome.logout
        if logout is None:  # the handshake never ends without failure or LOGOUT
            return nagiosplugin.Unknown, "session ended without LOGOUT"
        ending = logout.ending
        if not ending.tolerated:  # the protocol's verdict: a reply that came, and was wrong
            return nagiosplugin.Warn, UNTOLERATED[ending].format(sanitize(logout.detail, 80))
        if self.options.judgement.strict_logout and not ending.saw_bye:
            return nagiosplugin.Warn, f"no BYE after LOGOUT ({logout_text(session)})"
        return nagiosplugin.Ok, logout_text(session)


UNTOLERATED = {
    LogoutEnding.REJECTED: "LOGOUT answered {}",
    LogoutEnding.FOREIGN_TAG: "LOGOUT answered with foreign tag '{}'",
    LogoutEnding.NO_REPLY: "no reply to LOGOUT ({})",
}


def logout_text(session: Session) -> str:
    logout = session.outcome.logout
    if logout is None:
        return ""
    text = f"logout: {logout.ending.value}"
    if logout.detail and logout.ending is not LogoutEnding.NO_REPLY:
        text += f" ({sanitize(logout.detail, 60)})"
    return text


def timeout_hint(session: Session, context: SessionContext) -> str:
    """A silent server on a plain connection is most often a TLS port waiting for us."""
    error = session.error
    reason = error.reason if error is not None else "timeout"
    target = context.options.target
    silent = error is not None and error.step is Step.GREETING and not session.received
    if silent and not target.encrypted:
        return f"{reason}: not a byte arrived (an implicit TLS port? try --tls)"
    return reason


def failure_hint(session: Session) -> str:
    outcome = session.outcome
    reason = outcome.failure or ""
    greeting = outcome.greeting
    if greeting is not None and outcome.failure_step is Step.GREETING:
        if greeting.kind is GreetingKind.BYE:
            return f'{reason}: "{sanitize(greeting.text, 100)}"'
        if greeting.kind is GreetingKind.NOT_IMAP:
            if greeting.raw[:1] in (b"\x15", b"\x16"):  # TLS alert or handshake record
                return f"{reason}: the server speaks TLS here (try --tls)"
            return f'{reason}: "{sanitize(greeting.raw, 60)}"'
    return reason


class ExpiryContext(nagiosplugin.ScalarContext):
    """Days left on the leaf (cert_days) or on the first-expiring chain certificate."""

    def __init__(self, name: str, options: Options) -> None:
        cert = options.cert
        super().__init__(name, f"{cert.warning_days}:", f"{cert.critical_days}:", fmt_metric=None)

    def evaluate(self, metric: nagiosplugin.Metric, resource: Imap) -> nagiosplugin.Result:
        session = resource.owner[metric.name]
        expiry = resource.expiries.get(f"_{session.label}" if session.label else "")
        if expiry is None:
            return nagiosplugin.Result(nagiosplugin.Ok, metric=metric)
        leaf, earliest = expiry
        judged = leaf if self.name == "cert_days" else earliest
        if self.name == "chain_days" and earliest.is_leaf:
            return nagiosplugin.Result(nagiosplugin.Ok, metric=metric)  # judged as cert_days
        now = resource.now
        text = judged.describe(now)
        if now < judged.cert.not_before or self.critical.match(judged.days) is False:
            return nagiosplugin.Result(nagiosplugin.Critical, text, metric)
        if self.warning.match(judged.days) is False:
            return nagiosplugin.Result(nagiosplugin.Warn, text, metric)
        return nagiosplugin.Result(nagiosplugin.Ok, text, metric)


class TlsContext(nagiosplugin.Context):
    """Pinning (CRITICAL; UNKNOWN where Python cannot show the chain) and weak crypto."""

    def __init__(self) -> None:
        super().__init__("tls")

    def evaluate(self, metric: nagiosplugin.Metric, resource: Imap) -> nagiosplugin.Result:
        pin, weak, tls = metric.value
        if pin:
            state = nagiosplugin.Unknown if tls.leaf_only else nagiosplugin.Critical
            return nagiosplugin.Result(state, pin, metric)
        if weak:
            return nagiosplugin.Result(nagiosplugin.Warn, "weak crypto: " + ", ".join(weak), metric)
        return nagiosplugin.Result(nagiosplugin.Ok, metric=metric)


class CapabilityContext(nagiosplugin.Context):
    def __init__(self, options: Options) -> None:
        super().__init__("caps")
        self.state = STATES[options.capabilities.state]

    def evaluate(self, metric: nagiosplugin.Metric, resource: Imap) -> nagiosplugin.Result:
        problems: list[str] = metric.value
        if problems:
            return nagiosplugin.Result(self.state, "; ".join(problems), metric)
        return nagiosplugin.Result(nagiosplugin.Ok, metric=metric)


class PreauthContext(nagiosplugin.Context):
    """PREAUTH with -u: the server chose the user; the one given was never checked."""

    def __init__(self, options: Options) -> None:
        super().__init__("preauth")
        self.accept = options.judgement.accept_preauth

    def evaluate(self, metric: nagiosplugin.Metric, resource: Imap) -> nagiosplugin.Result:
        text = f"pre-authenticated by the server, user {sanitize(metric.value, 40)} not checked"
        state = nagiosplugin.Ok if self.accept else nagiosplugin.Warn
        return nagiosplugin.Result(state, text, metric)


class MailboxContext(nagiosplugin.Context):
    """A mailbox that cannot be opened is CRITICAL: mail cannot be read there."""

    def __init__(self) -> None:
        super().__init__("mailbox")

    def evaluate(self, metric: nagiosplugin.Metric, resource: Imap) -> nagiosplugin.Result:
        box: MailboxStatus = metric.value
        if box.error is not None:
            error = sanitize(box.error, 100)
            name = sanitize(box.name, 60)
            return nagiosplugin.Result(nagiosplugin.Critical, f"mailbox '{name}': {error}", metric)
        return nagiosplugin.Result(nagiosplugin.Ok, metric=metric)


class QuotaContext(nagiosplugin.Context):
    """Quota thresholds given, but nothing to judge: UNKNOWN, with the server's text."""

    def __init__(self) -> None:
        super().__init__("quota_state")

    def evaluate(self, metric: nagiosplugin.Metric, resource: Imap) -> nagiosplugin.Result:
        if metric.value is True:  # QUOTA offered, no mailbox answered: said per mailbox
            return nagiosplugin.Result(nagiosplugin.Ok, metric=metric)
        if metric.value is False:
            reason = "cannot check quota: the server does not advertise QUOTA"
            return nagiosplugin.Result(nagiosplugin.Unknown, reason, metric)
        box: MailboxStatus = metric.value
        name = sanitize(box.name, 40)
        if box.quota_error:
            reason = f"cannot read quota of '{name}': {sanitize(box.quota_error, 80)}"
        else:
            reason = f"no quota limit on '{name}'"
        return nagiosplugin.Result(nagiosplugin.Unknown, reason, metric)


class QuotaPercent(nagiosplugin.ScalarContext):
    """Use of the fullest quota resource of one mailbox's root, in percent."""

    def __init__(self, label: str, thresholds: Range) -> None:
        warning, critical = ranges(thresholds)
        super().__init__(f"quota_percent{label}", warning, critical, fmt_metric=self._describe)

    def evaluate(self, metric: nagiosplugin.Metric, resource: Imap) -> nagiosplugin.Result:
        # The state from the ranges; the text says the use, not the range it left.
        state = super().evaluate(metric, resource).state
        return nagiosplugin.Result(state, metric=metric)

    def performance(
        self, metric: nagiosplugin.Metric, resource: Imap
    ) -> nagiosplugin.Performance | None:
        return None  # quota_storage/quota_messages carry the numbers; this is the verdict

    @staticmethod
    def _describe(metric: nagiosplugin.Metric, _context: object) -> str:
        resource = metric.resource
        box = resource.boxes[metric.name] if isinstance(resource, Imap) else None
        worst = mailpolicy.quota_percent(box) if box is not None else None
        which = f" ({worst[0].lower()})" if worst is not None else ""
        name = sanitize(box.name, 40) if box is not None else metric.name
        return f"quota of '{name}' {metric.value:.1f}% used{which}"


class Messages(nagiosplugin.ScalarContext):
    """The message count of one mailbox."""

    def __init__(self, label: str, thresholds: Range) -> None:
        warning, critical = ranges(thresholds)
        super().__init__(f"messages{label}", warning, critical, fmt_metric=self._describe)

    @staticmethod
    def _describe(metric: nagiosplugin.Metric, _context: object) -> str:
        resource = metric.resource
        box = resource.boxes.get(metric.name) if isinstance(resource, Imap) else None
        name = box.name if box is not None else metric.name
        return f"mailbox '{sanitize(name, 40)}' has {plural_messages(metric.value)}"


def plural_messages(count: int) -> str:
    return "1 message" if count == 1 else f"{count} messages"


def _time_text(name: str) -> Callable[[nagiosplugin.Metric, object], str]:
    return lambda metric, _context: f"{metric.value:.3f}s {name} time"


def build_contexts(options: Options, labels: dict[str, str]) -> list[nagiosplugin.Context]:
    thresholds = options.thresholds
    warning, critical = ranges(thresholds.time)
    contexts: list[nagiosplugin.Context] = [
        SessionContext(options),
        nagiosplugin.ScalarContext(
            "time", warning, critical, fmt_metric=lambda m, _c: f"{m.value:.3f}s response time"
        ),
    ]
    for name in BUCKETS:
        warning, critical = ranges(thresholds.steps.get(name, (None, None)))
        contexts.append(
            nagiosplugin.ScalarContext(
                f"time_{name}",
                warning,
                critical,
                fmt_metric=_time_text(name),
            )
        )
    contexts += [
        ExpiryContext("cert_days", options),
        ExpiryContext("chain_days", options),
        TlsContext(),
        CapabilityContext(options),
        PreauthContext(options),
        MailboxContext(),
        QuotaContext(),
        nagiosplugin.ScalarContext("counts"),
    ]
    for label in dict.fromkeys(labels.values()):
        contexts.append(Messages(label, thresholds.messages))
        contexts.append(QuotaPercent(label, thresholds.quota))
    return contexts
