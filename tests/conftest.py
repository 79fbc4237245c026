# SPDX-License-Identifier: MIT
"""Shared fixtures only; the machinery behind them lives in dovecot.py."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from support import dovecot as dc


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """check_imap's certificate cache goes to a temp dir, never to ~ or /var/cache."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(scope="session")
def dovecot() -> Iterator[dc.Dovecot]:
    """The Dovecot instances main, expired, wronghost and soon: started once, always stopped.

    Skips (with the reason shown by -ra) when Dovecot is not installed; fails with the
    Dovecot log when it is installed but does not start.
    """
    yield from _dovecot(dc.SPECS)


@pytest.fixture(scope="session")
def named_dovecot() -> Iterator[dc.Dovecot]:
    """The one Dovecot instance ``named`` (certificate for ``imap.test`` only, at
    127.0.0.1), for the contrib tests; skips and fails like ``dovecot``."""
    yield from _dovecot(dc.NAMED_SPECS)


def _dovecot(specs: tuple[dc.Spec, ...]) -> Iterator[dc.Dovecot]:
    reason = dc.unavailable()
    if reason is not None:
        pytest.skip(reason)
    failure = None
    try:
        bed = dc.start(specs=specs)
    except dc.DovecotStartError as exc:
        failure = str(exc)
    if failure is not None:  # failed outside `except`, so no chained traceback
        pytest.fail(failure, pytrace=False)
    try:
        yield bed
    finally:
        bed.cleanup()
