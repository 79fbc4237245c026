"""The one vocabulary of a check run: its steps, and what each is charged to.

Every layer names a step with :class:`Step`; no layer passes a bare string to another.
``TABLE`` is exhaustive (a unit test proves it): each step has the perfdata bucket its
time is charged to and the text a timeout in it reads as. Each bucket is one
``time_<bucket>`` metric with ``--<bucket>-warning``/``--<bucket>-critical`` options.
"""

from __future__ import annotations

import enum


class Step(enum.Enum):
    RESOLVE = "resolve"
    CONNECT = "connect"
    TLS = "tls"  # a TLS handshake: implicit TLS, or after the STARTTLS reply
    GREETING = "greeting"
    CAPABILITY = "capability"
    STARTTLS = "starttls"  # the STARTTLS command and its reply (not the handshake)
    LOGIN = "login"
    MAILBOX = "mailbox"
    LOGOUT = "logout"


class StepInfo:
    __slots__ = ("bucket", "waiting")

    def __init__(self, bucket: str, waiting: str) -> None:
        self.bucket = bucket  # perfdata time_<bucket>, options --<bucket>-warning/-critical
        self.waiting = waiting  # "timeout after 10s <waiting>"


# Resolving is part of connecting for the user: one "connect" time, as check_tcp has.
# STARTTLS (command and handshake) is charged to "tls", like the implicit handshake,
# so --tls-critical means the same in both modes. CAPABILITY has its own bucket: it is
# a round trip of its own, and a slow one is worth seeing and alerting on.
TABLE = {
    Step.RESOLVE: StepInfo("connect", "resolving the host name"),
    Step.CONNECT: StepInfo("connect", "connecting"),
    Step.TLS: StepInfo("tls", "in the TLS handshake"),
    Step.GREETING: StepInfo("greeting", "waiting for the greeting"),
    Step.CAPABILITY: StepInfo("capability", "waiting for the CAPABILITY reply"),
    Step.STARTTLS: StepInfo("tls", "waiting for the STARTTLS reply"),
    Step.LOGIN: StepInfo("login", "logging in"),
    Step.MAILBOX: StepInfo("mailbox", "in the mailbox checks"),
    Step.LOGOUT: StepInfo("logout", "waiting for the LOGOUT reply"),
}

BUCKETS = tuple(dict.fromkeys(info.bucket for info in TABLE.values()))
"""Timing buckets in the order of a session: connect, tls, greeting, capability, ..."""


def bucket(step: Step) -> str:
    return TABLE[step].bucket


def waiting(step: Step) -> str:
    return TABLE[step].waiting
