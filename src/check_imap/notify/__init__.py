"""notify_on_change: run a notification command only when something changed.

cli (the main run, output), args (the arguments and what monit, Nagios and Icinga 2
pass in through the environment; usage has the argparse side, loaded only for --help
and unusual arguments), policy (pure decisions), store and files (SQLite state),
engine (claims, sends, the outbox), children (the processes it runs) and admin
(status, forget, flush). Stdlib only, and few imports at start-up: monit or
cron may call this every cycle, and the usual "nothing changed" run must cost little
more than starting Python. The modules of that run (this one, cli, args, policy,
store, files, engine) do without ``from __future__ import annotations`` (importing
``__future__`` costs as much as a small module): the few annotations Python 3.9
cannot evaluate are written as strings. tests/test_notify_store.py checks which
modules the no-change run loads.
"""


class UsageError(Exception):
    """Bad input: one line on stderr, exit 3."""


class StateError(Exception):
    """The state cannot be used safely: one line on stderr, exit 3, nothing touched."""


class Interrupted(BaseException):
    """SIGTERM, SIGINT or SIGHUP asked us to stop; raised from the signal handler."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.queued = False  # a send was interrupted and queued for retry

    @property
    def name(self) -> str:
        import signal

        return signal.Signals(self.signum).name


def main(argv: "list[str] | None" = None) -> int:
    from check_imap.notify.cli import main as cli_main

    return cli_main(argv)
