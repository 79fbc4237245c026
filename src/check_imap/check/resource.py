"""The Resource: run the probe once, and yield the same metrics for every address.

One probe path: ``transport.run`` returns one Session, or one per address with
--all-addresses. Every metric of a session carries its label suffix (``""`` or
``_v4_1`` ...), and ``owner`` maps each metric name to its session, so the report
never has to guess an address from a name.
"""

from __future__ import annotations

import time

import nagiosplugin

from .. import certpolicy, mailpolicy, transport
from ..certs import CryptoCache
from ..options import Options
from ..protocol import MailboxStatus
from ..steps import BUCKETS, bucket
from ..transport import Session


class Seconds(float):
    """A float that prints as plain decimal seconds (never ``1e-05``) in perfdata."""

    def __str__(self) -> str:
        return f"{float(self):.6f}"

    __repr__ = __str__


class Imap(nagiosplugin.Resource):
    """The IMAP session(s), kept for the contexts and the report."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.sessions: list[Session] = []
        self.now = time.time()  # the one clock reading of the run: taken again in probe()
        self.owner: dict[str, Session] = {}  # metric name -> the session it belongs to
        self.expiries: dict[str, tuple[certpolicy.Expiry, certpolicy.Expiry]] = {}
        self.boxes: dict[str, MailboxStatus] = {}  # metric name -> its mailbox
        self.cache = CryptoCache(options.cert.cache_path)  # read once, saved once per run
        self.labels = mailpolicy.mailbox_labels(options.plan.mailboxes)

    @property
    def name(self) -> str:
        return "IMAP"

    @property
    def session(self) -> Session:
        """The session whose details the OK line reports: the first that completed."""
        done = [s for s in self.sessions if s.completed]
        return done[0] if done else self.sessions[0]

    def probe(self) -> list[nagiosplugin.Metric]:
        o = self.options
        self.sessions = transport.run(o.target, o.plan)
        self.now = time.time()
        metrics: list[nagiosplugin.Metric] = []
        for session in self.sessions:
            metrics.extend(self._session_metrics(session))
        self.cache.save()
        return metrics

    def _session_metrics(self, session: Session) -> list[nagiosplugin.Metric]:
        sfx = f"_{session.label}" if session.label else ""
        metrics = [nagiosplugin.Metric(f"session{sfx}", session, context="session")]
        # Like check_tcp: a failed session has no timings worth graphing (or judging).
        if session.completed:
            metrics.append(self._seconds(f"time{sfx}", session.total, "time"))
            spent: dict[str, float] = {}
            for step, seconds in session.timings.items():
                spent[bucket(step)] = spent.get(bucket(step), 0.0) + seconds
            for name in BUCKETS:
                if name in spent:
                    metrics.append(self._seconds(f"time_{name}{sfx}", spent[name], f"time_{name}"))
            metrics.extend(self._judged(session, sfx))
        for metric in metrics:
            self.owner[metric.name] = session
        return metrics

    def _seconds(self, name: str, value: float, context: str) -> nagiosplugin.Metric:
        top = Seconds(self.options.target.timeout) if context == "time" else None
        return nagiosplugin.Metric(name, Seconds(value), "s", min=0, max=top, context=context)

    def _judged(self, session: Session, sfx: str) -> list[nagiosplugin.Metric]:
        """Certificates, capabilities, mailboxes and quota of one completed session."""
        o = self.options
        metrics: list[nagiosplugin.Metric] = []
        if session.tls is not None:
            metrics.extend(self._certificate_metrics(session, sfx))
        if o.capabilities.active:
            problems = mailpolicy.capability_problems(o.capabilities, o.target, session.outcome)
            metrics.append(nagiosplugin.Metric(f"capabilities{sfx}", problems, context="caps"))
        if o.user is not None and session.outcome.preauth:
            metrics.append(nagiosplugin.Metric(f"preauth{sfx}", o.user, context="preauth"))
        reported = mailpolicy.first_of_each_root(session.outcome.mailboxes)
        for box in session.outcome.mailboxes:
            metrics.extend(self._mailbox_metrics(box, self.labels[box.name], sfx, reported))
        quota_wanted = o.thresholds.quota != (None, None)
        if quota_wanted and not any(box.quota is not None for box in session.outcome.mailboxes):
            offered = "QUOTA" in session.outcome.all_capabilities()
            metrics.append(
                nagiosplugin.Metric(f"quota_offered{sfx}", offered, context="quota_state")
            )
        return metrics

    def _certificate_metrics(self, session: Session, sfx: str) -> list[nagiosplugin.Metric]:
        tls = session.tls
        if tls is None:
            return []
        metrics = []
        expiry = certpolicy.leaf_and_earliest(tls, self.now)
        if expiry is not None:
            self.expiries[sfx] = expiry
            leaf, earliest = expiry
            metrics.append(nagiosplugin.Metric(f"cert_days{sfx}", leaf.days, context="cert_days"))
            if not tls.leaf_only:  # Python 3.9 shows only the leaf: no chain to judge
                metrics.append(
                    nagiosplugin.Metric(f"chain_days{sfx}", earliest.days, context="chain_days")
                )
        pin = certpolicy.pin_problem(tls, self.options.cert.fingerprints)
        weak = certpolicy.weaknesses(tls, self.options.cert, self.cache)
        metrics.append(nagiosplugin.Metric(f"tls{sfx}", (pin, weak, tls), context="tls"))
        return metrics

    def _mailbox_metrics(
        self, box: MailboxStatus, label: str, address: str, reported: set[str]
    ) -> list[nagiosplugin.Metric]:
        """Counts, and quota once per quota root; thresholds are per mailbox (``label``)."""
        sfx = label + address
        metrics = [nagiosplugin.Metric(f"mailbox{sfx}", box, context="mailbox")]
        if box.error is not None:
            return metrics
        for item in ("messages", "recent", "unseen"):
            value = getattr(box, item)
            if value is not None:
                context = f"messages{label}" if item == "messages" else "counts"
                metrics.append(nagiosplugin.Metric(f"{item}{sfx}", value, min=0, context=context))
        self.boxes[f"messages{sfx}"] = box
        if box.name not in reported:  # its quota root was reported with an earlier mailbox
            return metrics
        storage = mailpolicy.quota_bytes(box)
        if storage is not None:
            used, limit = storage
            metrics.append(
                nagiosplugin.Metric(
                    f"quota_storage{sfx}", used, "B", min=0, max=limit, context="counts"
                )
            )
        messages = (box.quota or {}).get("MESSAGE")
        if messages is not None:
            metrics.append(
                nagiosplugin.Metric(
                    f"quota_messages{sfx}", messages[0], min=0, max=messages[1], context="counts"
                )
            )
        if self.options.thresholds.quota != (None, None):
            percent = mailpolicy.quota_percent(box)
            self.boxes[f"quota{sfx}"] = box
            if percent is None:  # refused, unusable or unlimited: cannot be judged
                metrics.append(nagiosplugin.Metric(f"quota{sfx}", box, context="quota_state"))
            else:
                metrics.append(
                    nagiosplugin.Metric(
                        f"quota{sfx}", percent[1], "%", context=f"quota_percent{label}"
                    )
                )
        return metrics
