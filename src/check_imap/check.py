"""nagiosplugin glue: Resource -> Metrics -> Contexts -> Summary. The only nagiosplugin user.

The Resource runs one session (transport + protocol) and yields timing metrics plus
one ``session`` metric whose Context turns the handshake's classification into a
state. The Summary writes the single status line and the -v detail.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import nagiosplugin

from . import certpolicy
from .certs import CryptoCache
from .options import PHASES, Options, UsageError
from .protocol import GreetingKind, LogoutEnding, Phase
from .text import sanitize
from .transport import CertificateError, NetworkTimeout, Session, Target
from .transport import run as run_session

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


class Imap(nagiosplugin.Resource):  # type: ignore[misc]
    """One IMAP session; ``session`` keeps it for the contexts and the summary."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.session: Session | None = None
        self.now = time.time()
        self.expiry: tuple[certpolicy.Expiry, certpolicy.Expiry] | None = None

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
        session = run_session(target, o.timeout, want_capabilities=o.verbose > 0)
        self.session = session
        metrics = [nagiosplugin.Metric("session", session, context="session")]
        if session.error is not None or session.outcome.failure is not None:
            # Like check_tcp: a failed session has no timings worth graphing (or judging).
            return metrics
        metrics.append(
            nagiosplugin.Metric("time", Seconds(session.total), "s", min=0, max=Seconds(o.timeout))
        )
        for phase in PHASES:
            if phase in session.timings:
                value = Seconds(session.timings[phase])
                metrics.append(nagiosplugin.Metric(f"time_{phase}", value, "s", min=0))
        if session.tls is not None:
            metrics.extend(self._certificate_metrics(session))
        return metrics

    def _certificate_metrics(self, session: Session) -> list[nagiosplugin.Metric]:
        tls = session.tls
        if tls is None:
            return []
        self.now = time.time()
        metrics = []
        self.expiry = certpolicy.leaf_and_earliest(tls, self.now)
        if self.expiry is not None:
            leaf, earliest = self.expiry
            metrics.append(nagiosplugin.Metric("cert_days", leaf.days, context="cert_days"))
            metrics.append(nagiosplugin.Metric("chain_days", earliest.days, context="chain_days"))
        cache = CryptoCache(self.options.cert_cache)
        problems = [certpolicy.pin_problem(tls, self.options.fingerprints)]
        weak = certpolicy.weaknesses(tls, self.options, cache)
        cache.save()
        metrics.append(nagiosplugin.Metric("tls", (problems[0], weak), context="tls"))
        return metrics


class SessionContext(nagiosplugin.Context):  # type: ignore[misc]
    """Turns the handshake's outcome into a state and a one-line reason."""

    def __init__(self, options: Options) -> None:
        super().__init__("session")
        self.options = options

    def evaluate(self, metric: nagiosplugin.Metric, resource: Imap) -> nagiosplugin.Result:
        session: Session = metric.value
        outcome = session.outcome
        if session.error is not None:
            error = session.error
            if isinstance(error, NetworkTimeout):
                state = STATES[self.options.timeout_state]
                return nagiosplugin.Result(state, _timeout_hint(error.reason, self.options))
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
        detail = sanitize(logout.detail, 80)
        if ending is LogoutEnding.REJECTED:
            return nagiosplugin.Result(nagiosplugin.Warn, f"LOGOUT answered {detail}")
        if ending is LogoutEnding.FOREIGN_TAG:
            return nagiosplugin.Result(
                nagiosplugin.Warn, f"LOGOUT answered with foreign tag {detail!r}"
            )
        if ending is LogoutEnding.NO_REPLY:
            return nagiosplugin.Result(nagiosplugin.Warn, f"no reply to LOGOUT ({detail})")
        if self.options.strict_logout and not ending.saw_bye:
            return nagiosplugin.Result(
                nagiosplugin.Warn, f"no BYE after LOGOUT ({_logout_text(session)})"
            )
        return nagiosplugin.Result(nagiosplugin.Ok, _logout_text(session))


def _logout_text(session: Session) -> str:
    logout = session.outcome.logout
    if logout is None:
        return ""
    text = f"logout: {logout.ending.value}"
    if logout.detail and logout.ending is not LogoutEnding.NO_REPLY:
        text += f" ({sanitize(logout.detail, 60)})"
    return text


def _timeout_hint(reason: str, options: Options) -> str:
    if options.mode == "plain" and options.port == 993 and "greeting" in reason:
        return f"{reason} (port 993 is usually implicit TLS: try --tls)"
    return reason


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
        super().__init__(name, f"{options.cert_warning}:", f"{options.cert_critical}:")
        self.resource = resource

    def evaluate(self, metric: nagiosplugin.Metric, resource: Imap) -> nagiosplugin.Result:
        expiry = self.resource.expiry
        if expiry is None:
            return nagiosplugin.Result(nagiosplugin.Ok, metric=metric)
        leaf, earliest = expiry
        judged = leaf if self.name == "cert_days" else earliest
        if self.name == "chain_days" and earliest.is_leaf:
            return nagiosplugin.Result(nagiosplugin.Ok)  # the leaf is judged as cert_days
        now = self.resource.now
        text = judged.describe(now)
        if now < judged.cert.not_before or self.critical.match(judged.days) is False:
            return nagiosplugin.Result(nagiosplugin.Critical, text)
        if self.warning.match(judged.days) is False:
            return nagiosplugin.Result(nagiosplugin.Warn, text)
        return nagiosplugin.Result(nagiosplugin.Ok, text)


class TlsContext(nagiosplugin.Context):  # type: ignore[misc]
    """Pinning (CRITICAL) and weak crypto (WARNING)."""

    def __init__(self) -> None:
        super().__init__("tls")

    def evaluate(self, metric: nagiosplugin.Metric, resource: Imap) -> nagiosplugin.Result:
        pin, weak = metric.value
        if pin:
            return nagiosplugin.Result(nagiosplugin.Critical, pin)
        if weak:
            return nagiosplugin.Result(nagiosplugin.Warn, "weak crypto: " + ", ".join(weak))
        return nagiosplugin.Result(nagiosplugin.Ok)


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
        parts.append(_logout_text(session))
        return ", ".join(p for p in parts if p) + self._insecure_note()

    def problem(self, results: nagiosplugin.Results) -> str:
        problems = [r for r in results if r.state != nagiosplugin.Ok]
        problems.sort(key=lambda r: int(r.state), reverse=True)
        text = "; ".join(sanitize(str(r), 200) for r in problems)
        return f"{target_name(self.options)}: {text}{self._insecure_note()}"

    def verbose(self, results: nagiosplugin.Results) -> list[str]:
        session = self.resource.session
        if session is None:
            return []
        return detail_lines(self.options, session)

    def _insecure_note(self) -> str:
        return " (certificate NOT verified: --insecure)" if self.options.insecure else ""


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
        lines.extend(_chain_lines(session))
    if outcome.greeting is not None:
        greeting = outcome.greeting
        lines.append(f"greeting: {greeting.kind.value} {sanitize(greeting.text, 120)}".rstrip())
    if outcome.capabilities_before_tls is not None:
        caps = " ".join(outcome.capabilities_before_tls)
        lines.append(f"capabilities before STARTTLS: {sanitize(caps, 400)}")
    if outcome.capabilities is not None:
        lines.append(f"capabilities: {sanitize(' '.join(outcome.capabilities), 400)}")
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


def _chain_lines(session: Session) -> list[str]:
    tls = session.tls
    if tls is None:
        return []
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
    ]
    return nagiosplugin.Check(resource, *contexts, ImapSummary(options, resource), name="IMAP")


@nagiosplugin.guarded(verbose=0)  # type: ignore[untyped-decorator]
def _main(check: Any, options: Options) -> None:
    # nagiosplugin's SIGALRM is a whole-second backstop only; our own deadline fires first.
    check.main(verbose=options.verbose, timeout=math.ceil(options.timeout) + 2)


def run(options: Options) -> None:
    """Run the check; exits the process with the plugin's exit code."""
    _main(build(options), options)
