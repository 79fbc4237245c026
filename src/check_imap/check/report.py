"""The report: the one status line and the -v detail lines.

Every text that comes from the server or the command line passes through
``text.sanitize``, the one output boundary that also removes the password.
"""

from __future__ import annotations

import nagiosplugin

from .. import certpolicy, mailpolicy
from ..certs import TLSInfo
from ..options import Options
from ..protocol import MailboxStatus
from ..steps import bucket
from ..text import sanitize
from ..transport import CertificateError, Session
from .contexts import logout_text, plural_messages
from .resource import Imap

# Worst first when results are combined. nagiosplugin ranks by exit code, so UNKNOWN (3)
# would hide a CRITICAL (2): "cannot judge the quota" must not mask "mailbox gone".
RANK = {0: 0, 1: 1, 3: 2, 2: 3}  # OK < WARNING < UNKNOWN < CRITICAL


def rank(state: nagiosplugin.ServiceState) -> int:
    return RANK[int(state)]


def render(check: nagiosplugin.Check, verbose: int) -> str:
    """``IMAP STATE - summary | perfdata``, then the -v lines.

    The perfdata stays on the first line at every -v (the plugin guidelines allow long
    text after it), so a consumer that keeps only the first line or cuts the output
    (NRPE: 1 KiB) still gets it. Each text line passes ``sanitize`` once more,
    unbounded, so no server text, ``|`` or password reaches stdout whatever a caller
    forgot; the perfdata is built from our own labels (``mailpolicy``) and numbers.
    """
    line = f"{check.name} {str(check.state).upper()} - {clean(check.summary_str)}"
    if check.perfdata:
        line += " | " + " ".join(check.perfdata)
    lines = [line]
    if verbose:
        detail = check.verbose_str
        lines.extend(clean(text) for text in ([detail] if isinstance(detail, str) else detail))
    return "\n".join(lines) + "\n"


def clean(text: str) -> str:
    return sanitize(text, max(len(text), 1))


class ImapCheck(nagiosplugin.Check):
    """A Check whose overall state puts CRITICAL above UNKNOWN (see RANK)."""

    @property
    def state(self) -> nagiosplugin.ServiceState:
        states = [result.state for result in self.results]
        return max(states, key=rank) if states else nagiosplugin.Unknown

    @property
    def exitcode(self) -> int:
        return int(self.state)


def host_of(address: str | None) -> str:
    """``[::1]:993`` -> ``::1``; ``127.0.0.1:993`` -> ``127.0.0.1``."""
    if not address:
        return "?"
    host = address.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") else host


class ImapSummary(nagiosplugin.Summary):
    """``host:port answered in 0.012s, TLSv1.3, logout: ...`` or the problems, worst first."""

    def __init__(self, options: Options, resource: Imap) -> None:
        self.options = options
        self.resource = resource

    def ok(self, results: nagiosplugin.Results) -> str:
        o = self.options
        session = self.resource.session
        parts = [f"{o.target.label} answered in {session.total:.3f}s"]
        if o.target.all_addresses:
            hosts = ", ".join(host_of(s.address) for s in self.resource.sessions)
            parts = [f"{o.target.label} OK on {hosts}"]
        if session.tls is not None:
            parts.append(session.tls.version)
        expiry = self.resource.expiries.get(f"_{session.label}" if session.label else "")
        if expiry is not None:
            leaf = expiry[0]
            parts.append(
                f"certificate '{sanitize(leaf.cert.label, 60)}' expires "
                f"{certpolicy.date(leaf.cert.not_after)}"
            )
        outcome = session.outcome
        if outcome.preauth:
            parts.append("greeting PREAUTH")
            if o.user is not None:  # --accept-preauth: say what was accepted
                parts.append(f"user {sanitize(o.user, 40)} not checked")
        elif outcome.login_mechanism:
            parts.append(f"logged in as {sanitize(o.user or '', 40)}")
        parts.extend(mailbox_texts(session))
        parts.append(logout_text(session))
        return ", ".join(p for p in parts if p) + self._insecure_note()

    def problem(self, results: nagiosplugin.Results) -> str:
        if self.options.target.all_addresses:
            return self._per_address(results)
        problems = [r for r in results if r.state != nagiosplugin.Ok]
        problems.sort(key=lambda r: rank(r.state), reverse=True)
        text = "; ".join(sanitize(str(r), 200) for r in problems)
        return f"{self.options.target.label}: {text}{self._insecure_note()}"

    def _per_address(self, results: nagiosplugin.Results) -> str:
        """``OK on 192.0.2.1, CRITICAL on 2001:db8::1: connection refused``.

        Each address gets the worst state of everything judged on it (the session,
        its certificates, capabilities, mailboxes, quota), with the reasons.
        """
        owner = self.resource.owner
        parts = []
        for session in self.resource.sessions:
            mine = [
                r for r in results if r.metric is not None and owner.get(r.metric.name) is session
            ]
            mine.sort(key=lambda r: rank(r.state), reverse=True)
            host = host_of(session.address)
            hints = []
            for result in mine:
                if result.state == nagiosplugin.Ok:
                    continue
                hint = str(result)
                hints.append(hint.removesuffix(f" ({host})"))
            if session.address is None:  # the name did not resolve: no address to name
                parts.append("; ".join(hints))
            elif hints:
                parts.append(f"{str(mine[0].state).upper()} on {host}: {'; '.join(hints)}")
            else:
                parts.append(f"OK on {host}")
        text = ", ".join(sanitize(p, 300) for p in parts)
        return f"{self.options.target.label}: {text}{self._insecure_note()}"

    def verbose(self, results: nagiosplugin.Results) -> list[str]:
        lines = [sanitize(note, 300) for note in self.options.notes]
        if self.resource.cache.note:
            lines.append(sanitize(self.resource.cache.note, 300))
        for session in self.resource.sessions:
            if session.label:
                lines.append(f"address {session.label}: {session.address or 'not connected'}")
            lines.extend(detail_lines(self.options, session, self.resource.now))
        return lines

    def _insecure_note(self) -> str:
        return " (certificate NOT verified: --insecure)" if self.options.target.insecure else ""


def mailbox_texts(session: Session) -> list[str]:
    texts = []
    reported = mailpolicy.first_of_each_root(session.outcome.mailboxes)
    for box in session.outcome.mailboxes:
        if box.messages is not None:
            text = f"'{sanitize(box.name, 40)}' {plural_messages(box.messages)}"
            text += f" ({box.unseen} unseen)"
            worst = mailpolicy.quota_percent(box)
            if worst is not None and box.name in reported:  # one quota root: said once
                text += f", quota {worst[1]:.1f}% used"
            texts.append(text)
    return texts


def detail_lines(options: Options, session: Session, now: float) -> list[str]:
    """The -v long output: where, TLS, greeting, capabilities, logout, timings, transcript."""
    outcome = session.outcome
    target = options.target
    lines = [f"server: {target.label} ({session.address or 'not connected'}), {target.mode}"]
    if session.tls is not None:
        tls = session.tls
        checked = (
            f"certificate verified for {sanitize(target.server_name, 80)}"
            if tls.verified
            else "certificate NOT verified (--insecure)"
        )
        lines.append(f"tls: {tls.version} {tls.cipher} ({tls.bits} bits), {checked}")
        lines.extend(chain_lines(tls, now))
    if session.unverified is not None:
        lines.append("presented certificates (NOT trusted, shown to explain the failure):")
        lines.extend(chain_lines(session.unverified, now))
    if outcome.greeting is not None:
        greeting = outcome.greeting
        lines.append(f"greeting: {greeting.kind.value} {sanitize(greeting.text, 120)}".rstrip())
    stages = (
        ("capabilities before STARTTLS", outcome.caps_in_clear),
        ("capabilities", outcome.caps_before_login),
    )
    for title, caps in stages:
        if caps is not None:
            lines.append(f"{title}: {sanitize(' '.join(caps), 400)}")
    if outcome.preauth:
        lines.append("login: none, the server pre-authenticated the connection (PREAUTH)")
    elif outcome.login_mechanism:
        user = sanitize(options.user or "", 40)
        lines.append(f"login: {user} via {outcome.login_mechanism}")
    if outcome.caps_after_login is not None:
        after = " ".join(outcome.caps_after_login)
        lines.append(f"capabilities after login: {sanitize(after, 400)}")
    lines.extend(mailbox_line(box) for box in outcome.mailboxes)
    if outcome.noise:
        lines.append(f"unsolicited responses ignored: {outcome.noise}")
    if outcome.logout is not None:
        lines.append(logout_text(session))
    if session.timings:
        spent: dict[str, float] = {}
        for step, seconds in session.timings.items():
            spent[bucket(step)] = spent.get(bucket(step), 0.0) + seconds
        timing = ", ".join(f"{k} {v:.6f}s" for k, v in spent.items())
        lines.append(f"timings: {timing}, total {session.total:.6f}s")
    if isinstance(session.error, CertificateError):
        lines.append(f"certificate error code: {session.error.verify_code}")
    if session.transcript:
        width = 1000 if options.verbose >= 3 else 200
        lines.append("transcript:")
        lines.extend(f"{d}: {sanitize(data, width)}" for d, data in session.transcript)
    return lines


def mailbox_line(box: MailboxStatus) -> str:
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
        text += f"; quota root '{root}': {sanitize(quota, 200) or 'no limits'}"
    elif box.quota_error:
        text += f"; quota: {sanitize(box.quota_error, 80)}"
    return text


def chain_lines(tls: TLSInfo, now: float) -> list[str]:
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
    if tls.leaf_only:
        lines.append("chain: Python 3.9 shows only the leaf certificate; chain checks skipped")
    return lines
