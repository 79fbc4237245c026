# SPDX-License-Identifier: MIT
"""A nagiosplugin that is missing or does not fit is one UNKNOWN line and exit 3.

Never exit 1 (Nagios would read WARNING) and never a traceback: a distribution's
nagiosplugin (Debian 12 ships 1.3.2) or a half-upgraded venv must say what is wrong.
A stand-in package on PYTHONPATH shadows the installed one. The lowest supported
versions themselves run the suite in tests/matrix (constraints-min.txt).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support.processes import run

BROKEN = {
    "missing": 'raise ImportError("No module named \'nagiosplugin\'", name="nagiosplugin")\n',
    # An API from before 1.3: the classes check_imap builds on are absent.
    "too old": "__version__ = '0.4'\nclass Check:\n    pass\n",
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_unusable_nagiosplugin_is_one_unknown_line(tmp_path: Path, case: str) -> None:
    package = tmp_path / "nagiosplugin"
    package.mkdir()
    (package / "__init__.py").write_text(BROKEN[case])
    result = run(
        "check_imap", "-H", "127.0.0.1", "-p", "1", env={"PYTHONPATH": str(tmp_path)}, timeout=30
    )
    assert result.rc == 3, result
    assert result.err == "", result
    assert len(result.out.splitlines()) == 1, result.out
    assert "Traceback" not in result.out
    if case == "missing":
        assert result.out == (
            "IMAP UNKNOWN - cannot import nagiosplugin: check the installation\n"
        ), result.out
    else:
        assert result.out.startswith("IMAP UNKNOWN - "), result.out
        assert "nagiosplugin" in result.out, result.out
