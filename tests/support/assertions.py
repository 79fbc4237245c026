"""Assertions shared by the tests that run the installed commands."""

from __future__ import annotations

import re

from support.processes import Run

CHECK_TIMEOUT = 10.0
"""check_imap's default -t: no run may take longer unless the test says so."""


def expect(result: Run, rc: int, first_line: str, timeout: float = CHECK_TIMEOUT) -> None:
    """Exit code, the whole first line (a regular expression), empty stderr, and time.

    Every failure message carries the full output, so a red test explains itself.
    """
    detail = f"rc={result.rc}\nstdout:\n{result.out}\nstderr:\n{result.err}\nwant:\n{first_line}"
    assert result.err == "", detail
    assert re.fullmatch(first_line, result.first_line), detail
    assert result.rc == rc, detail
    assert result.elapsed < timeout, f"took {result.elapsed:.2f}s\n{detail}"


def assert_redacted(result: Run, *secrets: str) -> None:
    """No secret in either stream."""
    for secret in secrets:
        assert secret not in result.out, result.out
        assert secret not in result.err, result.err


NUM = r"\d+\.\d+"
PERFDATA = r" \| \S+=\S.*"
"""The perfdata on the first line, for a test that checks it separately (``Run.perfdata``)."""
PLAIN_STEPS = ("connect", "greeting", "logout")


def times(*labels: str, steps: tuple[str, ...] = PLAIN_STEPS) -> str:
    """The timing perfdata of each address label ("" for one address), as a regex.

    Every address carries the same metrics, only the suffix differs; nagiosplugin
    sorts perfdata by label, and so does this.
    """
    items = []
    for label in labels:
        sfx = f"_{label}" if label else ""
        items.append(f"time{sfx}={NUM}s;;;0;{NUM}")
        items += [f"time_{step}{sfx}={NUM}s;;;0" for step in steps]
    return " ".join(sorted(items))


LEAF_ONLY = __import__("sys").version_info < (3, 10)
"""Python 3.9's ssl shows only the leaf: no chain_days metric, no chain checks."""


def chain_perf(text: str) -> str:
    """``text`` (a chain_days perfdata item) where Python shows the chain, else ""."""
    return "" if LEAF_ONLY else text
