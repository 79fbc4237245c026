"""nagiosplugin glue: Resource -> Metrics -> Contexts -> Summary. The only nagiosplugin user.

The Resource runs the session(s) (transport + protocol) and yields metrics: one
``session`` metric whose Context turns the handshake's classification into a state,
timings, certificate days, mailbox counts and quota. The Summary writes the single
status line and the -v detail.
"""

from __future__ import annotations

import math
import sys
import time

import nagiosplugin

from . import certpolicy, mailpolicy
from .certs import CryptoCache
from .options import PHASES, Options, UsageError
from .protocol import Credentials, GreetingKind, LogoutEnding, MailboxStatus, Phase
from .text import sanitize
from .transport import CertificateError, NetworkTimeout, Plan, Session, Target, TLSInfo, run_all
from .transport import run as run_session

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms)
if TYPE_CHECKING:
    from typing import Any

# Worst first when results are combined. nagiosplugin ranks by exit code, so UNKNOWN (3)
# would hide a CRITICAL (2): "cannot judge the quota" must not mask "mailbox gone".
RANK = {0: 0, 1: 1, 3: 2, 2: 3}  # OK < WARNING < UNKNOWN < CRITICAL

STATES = {
    "ok": nagiosplugin.Ok,
    "warning": nagiosplugin.Warn,
    "critical": nagiosplugin.Critical,
    "unknown": nagiosplugin.Unknown,
}


class Seconds(float):
    """A float that prints as plain decimal seconds (never ``1e-05``) in perfdata."""

    def __str__(self) -> str:
        return f"{float(self):.6f}"

    __repr__ = __str__


def target_name(options: Options) -> str:
    host = f"[{options.host}]" if ":" in options.host else options.host
    return f"{host}:{options.port}"


def completed(session: Session) -> bool:
    return session.error is None and session.outcome.failure is None


def _host_of(address: str | None) -> str:
    """``[::1]:993`` -> ``::1``; ``127.0.0.1:993`` -> ``127.0.0.1``."""
    if not address:
        return "?"
    host = address.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") else host


class Imap(nagiosplugin.Resource):  # type: ignore[misc]
    """The IMAP session(s); kept for the contexts and the summary."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.sessions: list[tuple[str, Session]] = []
        self.session: Session | None = None  # the one whose details are reported
        self.now = time.time()
        self.expiries: dict[str, tuple[certpolicy.Expiry, certpolicy.Expiry]] = {}
        self.expiry: tuple[certpolicy.Expiry, certpolicy.Expiry] | None = None  # as reported
        self._boxes: dict[str, MailboxStatus] = {}  # messages metric name -> its mailbox
        self._cache = CryptoCache(options.cert_cache)  # read once, saved once per run

    def box_for(self, metric_name: str) -> MailboxStatus | None:
        return self._boxes.get(metric_name)

    @property
    def name(self) -> str:
        return "IMAP"

    def probe(self) -> list[nagiosplugin.Metric]:
        o = self.options
        target = Target(
            host=o.host,
            port=o.port,
            family=o.family,
            tls=o.tls,
            starttls=o.starttls,
            sni=o.sni,
            ca_file=o.ca_file,
            insecure=o.insecure,
            min_tls=o.min_tls,
        )
        plan = Plan(
            want_capabilities=o.verbose > 0 or o.capability_policy,
            credentials=Credentials(o.user, o.password or "") if o.user else None,
            mailboxes=o.mailboxes,
            quota=o.user is not None,
        )
        metrics: list[nagiosplugin.Metric] = []
        if o.all_addresses:
            # Every address is judged in full; its metrics carry a _v4_1-style suffix.
            self.sessions = run_all(target, o.timeout, plan)
            for label, session in self.sessions:
                metrics.append(nagiosplugin.Metric(f"session_{label}", session, context="session"))
                if completed(session):
                    metrics.append(self._time(f"time_{label}", session.total))
                    metrics.extend(self._judged(session, f"_{label}"))
            done = [s for _, s in self.sessions if completed(s)]
            self.session = done[0] if done else self.sessions[0][1]
        else:
            self.session = run_session(target, o.timeout, plan)
            self.sessions = [("", self.session)]
            metrics.append(nagiosplugin.Metric("session", self.session, context="session"))
            # Like check_tcp: a failed session has no timings worth graphing (or judging).
            if completed(self.session):
                metrics.append(self._time("time", self.session.total))
                for phase in PHASES:
                    if phase in self.session.timings:
                        value = Seconds(self.session.timings[phase])
                        metrics.append(nagiosplugin.Metric(f"time_{phase}", value, "s", min=0))
                metrics.extend(self._judged(self.session, ""))
        self._cache.save()
        self.expiry = self.expiries.get(self._suffix_of(self.session))
        return metrics

    def _suffix_of(self, session: Session) -> str:
        return next(
            (f"_{label}" if label else "" for label, s in self.sessions if s is session), ""
        )

    def _judged(self, session: Session, suffix: str) -> list[nagiosplugin.Metric]:
        """Certificates, capabilities, mailboxes and quota of one completed session."""
        o = self.options
        metrics: list[nagiosplugin.Metric] = []
        if session.tls is not None:
            metrics.extend(self._certificate_metrics(session, suffix))
        if o.capability_policy:
            problems = mailpolicy.capability_problems(o, session.outcome)
            metrics.append(
                nagiosplugin.Metric(f"capabilities{suffix}", problems, context="capabilities")
            )
        for box in session.outcome.mailboxes:
            metrics.extend(self._mailbox_metrics(box, suffix))
        if o.quota_warning or o.quota_critical:
            caps = session.outcome.capabilities_after_login or session.outcome.capabilities or ()
            metrics.append(
                nagiosplugin.Metric(f"quota_offered{suffix}", "QUOTA" in caps, context="quota")
            )
        return metrics

    def _time(self, name: str, value: float) -> nagiosplugin.Metric:
        timeout = Seconds(self.options.timeout)
        return nagiosplugin.Metric(name, Seconds(value), "s", min=0, max=timeout, context="time")

    def _certificate_metrics(self, session: Session, suffix: str) -> list[nagiosplugin.Metric]:
        tls = session.tls
        if tls is None:
            return []
        self.now = time.time()
        metrics = []
        expiry = certpolicy.leaf_and_earliest(tls, self.now)
        if expiry is not None:
            self.expiries[suffix] = expiry
            leaf, earliest = expiry
            metrics.append(
                nagiosplugin.Metric(f"cert_days{suffix}", leaf.days, context="cert_days")
            )
            metrics.append(
                nagiosplugin.Metric(f"chain_days{suffix}", earliest.days, context="chain_days")
            )
        pin = certpolicy.pin_problem(tls, self.options.fingerprints)
        weak = certpolicy.weaknesses(tls, self.options, self._cache)
        metrics.append(nagiosplugin.Metric(f"tls{suffix}", (pin, weak), context="tls"))
        return metrics

    def _mailbox_metrics(self, box: MailboxStatus, address: str) -> list[nagiosplugin.Metric]:
        suffix = mailpolicy.perf_suffix(self.options, box) + address
        metrics = [nagiosplugin.Metric(f"mailbox{suffix}", box, context="mailbox")]
        if box.error is not None:
            return metrics
        self._boxes[f"messages{suffix}"] = box
        for item in ("messages", "recent", "unseen"):
            value = getattr(box, item)
            if value is not None:
                context = "messages" if item == "messages" else "counts"
                metrics.append(
                    nagiosplugin.Metric(f"{item}{suffix}", value, min=0, context=context)
                )
        storage = mailpolicy.quota_bytes(box)
        if storage is not None:
            used, limit = storage
            metrics.append(
                nagiosplugin.Metric(
                    f"quota_storage{suffix}", used, "B", min=0, max=limit, context="counts"
                )
            )
        messages = (box.quota or {}).get("MESSAGE")
        if messages is not None:
            metrics.append(
                nagiosplugin.Metric(
                    f"quota_messages{suffix}", messages[0], min=0, max=messages[1], context="counts"
                )
            )
        if box.quota is not None:
            metrics.append(nagiosplugin.Metric(f"quota{suffix}", box, context="quota"))
        return metrics


# ----------------------------------------------------------------------------- contexts


class SessionContext(nagiosplugin.Context):  # type: ignore[misc]
    """Turns the handshake's outcome into a state and a one-line reason."""

    def __init__(self, options: Options) -> None:
        super().__init__("session")
        self.options = options

    def evaluate(self, metric: nagiosplugin.Metric, resource: Imap) -> nagiosplugin.Result:
        # The metric stays attached: the --all-addresses summary finds each address by it.
        result = self._judge(metric)
        return nagiosplugin.Result(result.state, result.hint, metric)

    def _judge(self, metric: nagiosplugin.Metric) -> nagiosplugin.Result:
        session: Session = metric.value
        outcome = session.outcome
        if session.error is not None:
            error = session.error
            if isinstance(error, NetworkTimeout):
                state = STATES[self.options.timeout_state]
                return nagiosplugin.Result(state, _timeout_hint(error, session, self.options))
            if isinstance(error, CertificateError):
                name = self.options.sni or self.options.host
                reason = certpolicy.explain_verify_failure(
                    error.verify_code, error.reason, session.unverified, name, time.time()
                )
                return nagiosplugin.Result(nagiosplugin.Critical, reason)
            return nagiosplugin.Result(nagiosplugin.Critical, error.reason)
        if outcome.failure is not None:
            return nagiosplugin.Result(nagiosplugin.Critical, _failure_hint(session))
        logout = outcome.logout
        if logout is None:  # cannot happen once the handshake is done without failure
            return nagiosplugin.Result(nagiosplugin.Unknown, "session ended without LOGOUT")
        ending = logout.ending
        if not ending.tolerated:  # the protocol's verdict: a reply that came, and was wrong
            detail = sanitize(logout.detail, 80)
            return nagiosplugin.Result(nagiosplugin.Warn, _UNTOLERATED[ending].format(detail))
        if self.options.strict_logout and not ending.saw_bye:
            return nagiosplugin.Result(
                nagiosplugin.Warn, f"no BYE after LOGOUT ({_logout_text(session)})"
            )
        return nagiosplugin.Result(nagiosplugin.Ok, _logout_text(session))


_UNTOLERATED = {
    LogoutEnding.REJECTED: "LOGOUT answered {}",
    LogoutEnding.FOREIGN_TAG: "LOGOUT answered with foreign tag '{}'",
    LogoutEnding.NO_REPLY: "no reply to LOGOUT ({})",
}


def _logout_text(session: Session) -> str:
    logout = session.outcome.logout
    if logout is None:
        return ""
    text = f"logout: {logout.ending.value}"
    if logout.detail and logout.ending is not LogoutEnding.NO_REPLY:
        text += f" ({sanitize(logout.detail, 60)})"
    return text


def _timeout_hint(error: NetworkTimeout, session: Session, options: Options) -> str:
    """A silent server on a plain connection is most often a TLS port waiting for us."""
    if options.mode == "plain" and error.phase == Phase.GREETING.value and not session.received:
        return f"{error.reason}: not a byte arrived (an implicit TLS port? try --tls)"
    return error.reason


def _failure_hint(session: Session) -> str:
    outcome = session.outcome
    reason = outcome.failure or ""
    greeting = outcome.greeting
    if greeting is not None and outcome.failure_phase is Phase.GREETING:
        if greeting.kind is GreetingKind.BYE:
            return f'{reason}: "{sanitize(greeting.text, 100)}"'
        if greeting.kind is GreetingKind.NOT_IMAP:
            shown = sanitize(greeting.raw, 60)
            if greeting.raw[:1] in (b"\x15", b"\x16"):  # TLS alert or handshake record
                return f"{reason}: the server speaks TLS here (try --tls)"
            return f'{reason}: "{shown}"'
    return reason


class ExpiryContext(nagiosplugin.ScalarContext):  # type: ignore[misc]
    """Days left on the leaf (cert_days) or on the first-expiring chain certificate."""

    def __init__(self, name: str, options: Options, resource: Imap) -> None:
        warning, critical = f"{options.cert_warning}:", f"{options.cert_critical}:"
        super().__init__(name, warning, critical, fmt_metric=None)
        self.resource = resource

    def evaluate(self, metric: nagiosplugin.Metric, resource: Imap) -> nagiosplugin.Result:
        expiry = self.resource.expiries.get(metric.name[len(self.name) :])
        if expiry is None:
            return nagiosplugin.Result(nagiosplugin.Ok, metric=metric)
        leaf, earliest = expiry
        judged = leaf if self.name == "cert_days" else earliest
        if self.name == "chain_days" and earliest.is_leaf:
            return nagiosplugin.Result(nagiosplugin.Ok, metric=metric)  # judged as cert_days
        now = self.resource.now
        text = judged.describe(now)
        if now < judged.cert.not_before or self.critical.match(judged.days) is False:
            return nagiosplugin.Result(nagiosplugin.Critical, text, metric)
        if self.warning.match(judged.days) is False:
            return nagiosplugin.Result(nagiosplugin.Warn, text, metric)
        return nagiosplugin.Result(nagiosplugin.Ok, text, metric)


class TlsContext(nagiosplugin.Context):  # type: ignore[misc]
    """Pinning (CRITICAL) and weak crypto (WARNING)."""

    def __init__(self) -> None:
        super().__init__("tls")

    def evaluate(self, metric: nagiosplugin.Metric, resource: Imap) -> nagiosplugin.Result:
        pin, weak = metric.value
        if pin:
            return nagiosplugin.Result(nagiosplugin.Critical, pin, metric)
        if weak:
            return nagiosplugin.Result(nagiosplugin.Warn, "weak crypto: " + ", ".join(weak), metric)
        return nagiosplugin.Result(nagiosplugin.Ok, metric=metric)


class CapabilityContext(nagiosplugin.Context):  # type: ignore[misc]
    def __init__(self, options: Options) -> None:
        super().__init__("capabilities")
        self.state = STATES[options.capability_state]

    def evaluate(self, metric: nagiosplugin.Metric, resource: Imap) -> nagiosplugin.Result:
        problems: list[str] = metric.value
        if problems:
            return nagiosplugin.Result(self.state, "; ".join(problems), metric)
        return nagiosplugin.Result(nagiosplugin.Ok, metric=metric)


class MailboxContext(nagiosplugin.Context):  # type: ignore[misc]
    """A mailbox that cannot be opened is CRITICAL: mail cannot be read there."""

    def __init__(self) -> None:
        super().__init__("mailbox")

    def evaluate(self, metric: nagiosplugin.Metric, resource: Imap) -> nagiosplugin.Result:
        box: MailboxStatus = metric.value
        if box.error is not None:
            error = sanitize(box.error, 100)
            return nagiosplugin.Result(
                nagiosplugin.Critical, f"mailbox '{box.name}': {error}", metric
            )
        return nagiosplugin.Result(nagiosplugin.Ok, metric=metric)


class QuotaContext(nagiosplugin.Context):  # type: ignore[misc]
    """Quota use in percent of the fullest resource; UNKNOWN when it cannot be judged."""

    def __init__(self, options: Options) -> None:
        super().__init__("quota")
        self.warning = _range(options.quota_warning, "--quota-warning")
        self.critical = _range(options.quota_critical, "--quota-critical")
        self.judging = self.warning is not None or self.critical is not None

    def evaluate(self, metric: nagiosplugin.Metric, resource: Imap) -> nagiosplugin.Result:
        if metric.value is False:  # quota thresholds given, QUOTA not advertised
            return nagiosplugin.Result(
                nagiosplugin.Unknown,
                "cannot check quota: the server does not advertise QUOTA",
                metric,
            )
        if metric.value is True or not self.judging:
            return nagiosplugin.Result(nagiosplugin.Ok, metric=metric)
        box: MailboxStatus = metric.value
        worst = mailpolicy.quota_percent(box)
        if worst is None:
            if box.quota_error:
                reason = f"cannot read quota of '{box.name}': {sanitize(box.quota_error, 80)}"
            else:
                reason = f"no quota limit on '{box.name}'"
            return nagiosplugin.Result(nagiosplugin.Unknown, reason, metric)
        resource_name, percent = worst
        text = f"quota of '{box.name}' {percent:.1f}% used ({resource_name.lower()})"
        if self.critical is not None and not self.critical.match(percent):
            return nagiosplugin.Result(nagiosplugin.Critical, text, metric)
        if self.warning is not None and not self.warning.match(percent):
            return nagiosplugin.Result(nagiosplugin.Warn, text, metric)
        return nagiosplugin.Result(nagiosplugin.Ok, text, metric)


class MessagesContext(nagiosplugin.ScalarContext):  # type: ignore[misc]
    def __init__(self, options: Options) -> None:
        super().__init__(
            "messages",
            _range(options.messages_warning, "--messages-warning"),
            _range(options.messages_critical, "--messages-critical"),
            fmt_metric=self._describe,
        )
        self.mailboxes = options.mailboxes

    def _describe(self, metric: nagiosplugin.Metric, _context: object) -> str:
        # The metric carries the mailbox's perfdata label; the text names the mailbox.
        box = metric.resource.box_for(metric.name) if metric.resource else None
        name = box.name if box is not None else metric.name
        return f"mailbox '{sanitize(name, 40)}' has {plural_messages(metric.value)}"


def rank(state: nagiosplugin.state.ServiceState) -> int:
    return RANK[int(state)]


class ImapCheck(nagiosplugin.Check):  # type: ignore[misc]
    """A Check whose overall state puts CRITICAL above UNKNOWN (see RANK)."""

    @property
    def state(self) -> nagiosplugin.state.ServiceState:
        states = [result.state for result in self.results]
        return max(states, key=rank) if states else nagiosplugin.Unknown

    @property
    def exitcode(self) -> int:
        return int(self.state)


# ----------------------------------------------------------------------------- summary


class ImapSummary(nagiosplugin.Summary):  # type: ignore[misc]
    """``host:port answered in 0.012s, TLSv1.3, logout: ...`` or the problems, worst first."""

    def __init__(self, options: Options, resource: Imap) -> None:
        self.options = options
        self.resource = resource

    def ok(self, results: nagiosplugin.Results) -> str:
        session = self.resource.session
        if session is None:  # probe() always sets it before any result exists
            return ""
        parts = [f"{target_name(self.options)} answered in {session.total:.3f}s"]
        if self.options.all_addresses:
            hosts = ", ".join(_host_of(s.address) for _, s in self.resource.sessions)
            parts = [f"{target_name(self.options)} OK on {hosts}"]
        if session.tls is not None:
            parts.append(session.tls.version)
        if self.resource.expiry is not None:
            leaf = self.resource.expiry[0]
            parts.append(
                f"certificate '{sanitize(leaf.cert.label, 60)}' expires "
                f"{certpolicy.date(leaf.cert.not_after)}"
            )
        greeting = session.outcome.greeting
        if greeting is not None and greeting.kind is GreetingKind.PREAUTH:
            parts.append("greeting PREAUTH")
        if session.outcome.login_mechanism:
            parts.append(f"logged in as {sanitize(self.options.user or '', 40)}")
        parts.extend(_mailbox_texts(session))
        parts.append(_logout_text(session))
        return ", ".join(p for p in parts if p) + self._insecure_note()

    def problem(self, results: nagiosplugin.Results) -> str:
        problems = [r for r in results if r.state != nagiosplugin.Ok]
        if self.options.all_addresses:
            return self._per_address(results, problems)
        problems.sort(key=lambda r: rank(r.state), reverse=True)
        text = "; ".join(sanitize(str(r), 200) for r in problems)
        return f"{target_name(self.options)}: {text}{self._insecure_note()}"

    def _per_address(self, results: nagiosplugin.Results, problems: list[Any]) -> str:
        """``OK on 192.0.2.1, CRITICAL on 2001:db8::1: connection refused``.

        Each address gets the worst state of everything judged on it (the session,
        its certificates, capabilities, mailboxes, quota), with the reasons.
        """
        parts = []
        for label, session in self.resource.sessions:
            mine = [r for r in results if r.metric and r.metric.name.endswith(f"_{label}")]
            worst = max(mine, key=lambda r: rank(r.state))
            host = _host_of(session.address)
            hints = []
            for result in sorted(mine, key=lambda r: rank(r.state), reverse=True):
                if result.state == nagiosplugin.Ok:
                    continue
                hint = str(result.hint or result)
                hints.append(hint[: -len(f" ({host})")] if hint.endswith(f" ({host})") else hint)
            if session.address is None:  # the name did not resolve: no address to name
                parts.append("; ".join(hints))
            elif hints:
                parts.append(f"{str(worst.state).upper()} on {host}: {'; '.join(hints)}")
            else:
                parts.append(f"OK on {host}")
        text = ", ".join(sanitize(p, 300) for p in parts)
        return f"{target_name(self.options)}: {text}{self._insecure_note()}"

    def verbose(self, results: nagiosplugin.Results) -> list[str]:
        lines: list[str] = []
        for label, session in self.resource.sessions:
            if label:
                lines.append(f"address {label}: {session.address or 'not connected'}")
            lines.extend(detail_lines(self.options, session))
        return lines

    def _insecure_note(self) -> str:
        return " (certificate NOT verified: --insecure)" if self.options.insecure else ""


def plural_messages(count: int) -> str:
    return "1 message" if count == 1 else f"{count} messages"


def _mailbox_texts(session: Session) -> list[str]:
    texts = []
    roots_shown: set[str | None] = set()
    for box in session.outcome.mailboxes:
        if box.messages is not None:
            text = f"'{sanitize(box.name, 40)}' {plural_messages(box.messages)}"
            text += f" ({box.unseen} unseen)"
            worst = mailpolicy.quota_percent(box)
            if worst is not None and box.quota_root not in roots_shown:
                # Mailboxes usually share one quota root: say its use once.
                roots_shown.add(box.quota_root)
                text += f", quota {worst[1]:.1f}% used"
            texts.append(text)
    return texts


def detail_lines(options: Options, session: Session) -> list[str]:
    """The -v long output: where, TLS, greeting, capabilities, logout, timings, transcript."""
    outcome = session.outcome
    mode = {"plain": "plain IMAP", "tls": "implicit TLS", "starttls": "STARTTLS"}[options.mode]
    lines = [f"server: {target_name(options)} ({session.address or 'not connected'}), {mode}"]
    if session.tls is not None:
        tls = session.tls
        checked = (
            f"certificate verified for {options.sni or options.host}"
            if tls.verified
            else "certificate NOT verified (--insecure)"
        )
        lines.append(f"tls: {tls.version} {tls.cipher} ({tls.bits} bits), {checked}")
        lines.extend(_chain_lines(tls))
    if session.unverified is not None:
        lines.append("presented certificates (NOT trusted, shown to explain the failure):")
        lines.extend(_chain_lines(session.unverified))
    if outcome.greeting is not None:
        greeting = outcome.greeting
        lines.append(f"greeting: {greeting.kind.value} {sanitize(greeting.text, 120)}".rstrip())
    if outcome.capabilities_before_tls is not None:
        caps = " ".join(outcome.capabilities_before_tls)
        lines.append(f"capabilities before STARTTLS: {sanitize(caps, 400)}")
    if outcome.capabilities is not None:
        lines.append(f"capabilities: {sanitize(' '.join(outcome.capabilities), 400)}")
    if outcome.login_mechanism:
        user = sanitize(options.user or "", 40)
        lines.append(f"login: {user} via {outcome.login_mechanism}")
    if outcome.capabilities_after_login is not None:
        caps = " ".join(outcome.capabilities_after_login)
        lines.append(f"capabilities after login: {sanitize(caps, 400)}")
    for box in outcome.mailboxes:
        lines.append(_mailbox_line(box))
    if outcome.logout is not None:
        lines.append(_logout_text(session))
    if session.timings:
        timing = ", ".join(f"{k} {v:.6f}s" for k, v in session.timings.items())
        lines.append(f"timings: {timing}, total {session.total:.6f}s")
    if isinstance(session.error, CertificateError):
        lines.append(f"certificate error code: {session.error.verify_code}")
    if session.transcript:
        width = 1000 if options.verbose >= 3 else 200
        lines.append("transcript:")
        lines.extend(f"{d}: {sanitize(data, width)}" for d, data in session.transcript)
    return lines


def _mailbox_line(box: MailboxStatus) -> str:
    name = sanitize(box.name, 60)
    if box.error:
        return f"mailbox '{name}': {sanitize(box.error, 120)}"
    text = (
        f"mailbox '{name}': {box.messages} messages, {box.recent} recent, "
        f"{box.unseen} unseen, EXAMINE saw {box.exists}"
    )
    if box.quota is not None:
        quota = ", ".join(f"{k} {u}/{lim}" for k, (u, lim) in box.quota.items())
        root = sanitize(box.quota_root or "", 40)
        text += f"; quota root '{root}': {quota or 'no limits'}"
    elif box.quota_error:
        text += f"; quota: {sanitize(box.quota_error, 80)}"
    return text


def _chain_lines(tls: TLSInfo) -> list[str]:
    now = time.time()
    chain = certpolicy.chain_facts(tls)
    lines = []
    for index, cert in enumerate(chain):
        names = ",".join(cert.names[: certpolicy.MAX_NAMES_SHOWN]) or "no SAN"
        lines.append(
            sanitize(
                f"certificate {index}: '{cert.label}' ({names}) issuer '{cert.issuer_cn}', "
                f"expires {certpolicy.date(cert.not_after)} "
                f"({certpolicy.plural(cert.days_left(now), 'day')}), sha256 {cert.sha256}",
                300,
            )
        )
    if sys.version_info < (3, 10):
        lines.append("chain: Python 3.9 shows only the leaf certificate")
    return lines


# ----------------------------------------------------------------------------- main


def _range(text: str | None, option: str) -> nagiosplugin.Range | None:
    if text is None:
        return None
    try:
        return nagiosplugin.Range(text)
    except ValueError as exc:
        raise UsageError(f"{option}: invalid range {text!r} ({exc})") from None


def build(options: Options) -> nagiosplugin.Check:
    resource = Imap(options)
    contexts = [
        SessionContext(options),
        nagiosplugin.ScalarContext(
            "time",
            _range(options.warning, "--warning"),
            _range(options.critical, "--critical"),
            fmt_metric=lambda m, _c: f"{m.value:.3f}s response time",
        ),
    ]
    for phase in PHASES:
        contexts.append(
            nagiosplugin.ScalarContext(
                f"time_{phase}",
                _range(options.phase_warning.get(phase), f"--{phase}-warning"),
                _range(options.phase_critical.get(phase), f"--{phase}-critical"),
                fmt_metric=lambda m, _c, p=phase: f"{m.value:.3f}s {p} time",
            )
        )
    contexts += [
        ExpiryContext("cert_days", options, resource),
        ExpiryContext("chain_days", options, resource),
        TlsContext(),
        CapabilityContext(options),
        MailboxContext(),
        MessagesContext(options),
        QuotaContext(options),
        nagiosplugin.ScalarContext("counts"),
    ]
    return ImapCheck(resource, *contexts, ImapSummary(options, resource), name="IMAP")


@nagiosplugin.guarded(verbose=0)  # type: ignore[untyped-decorator]
def _main(check: Any, options: Options) -> None:
    # nagiosplugin's SIGALRM is a whole-second backstop only; our own deadline fires first.
    check.main(verbose=options.verbose, timeout=math.ceil(options.timeout) + 2)


def run(options: Options) -> None:
    """Run the check; exits the process with the plugin's exit code."""
    _main(build(options), options)
