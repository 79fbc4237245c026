# SPDX-License-Identifier: MIT
"""The README's install line works as written on Debian (PEP 668 and all).

The line is read from the README's Install section, not copied here, so the README
cannot drift from what is tested. It runs in bash as root, exactly as printed, with
``/opt/check_imap`` moved into a temporary directory, from a copy of this tree (pip
writes build files into the tree it installs). The venv's interpreter must be
Debian's own, and the installed plugin must answer ``--version`` and run a check.
The second command of the quick start, tests/run, is what CI runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from check_imap import __version__
from support.tree import copy_tree

pytestmark = pytest.mark.build

REPO = Path(__file__).resolve().parents[1]


def install_line() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "no sh block in the README's Install section"
    lines = [line for line in block.group(1).splitlines() if "-m venv" in line]
    assert len(lines) == 1, block.group(1)
    return lines[0]


def test_readme_install_line_works_as_written(tmp_path: Path) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get") or not Path("/usr/bin/python3").exists():
        pytest.skip("the README's install line is for root on Debian/Ubuntu (apt-get)")
    line = install_line()
    assert line.startswith("apt-get install -y python3-venv && /usr/bin/python3 -m venv "), line
    prefix = tmp_path / "opt" / "check_imap"
    tree = tmp_path / "clone"
    copy_tree(tree)
    command = line.split("#", 1)[0].replace("/opt/check_imap", str(prefix))
    result = subprocess.run(
        ["bash", "-euc", command],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=dict(os.environ, DEBIAN_FRONTEND="noninteractive", PIP_DISABLE_PIP_VERSION_CHECK="1"),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    home = (prefix / "pyvenv.cfg").read_text()
    assert re.search(r"^home = /usr/bin$", home, re.M), home
    version = subprocess.run(
        [str(prefix / "bin" / "check_imap"), "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (version.returncode, version.stdout) == (3, f"check_imap {__version__}\n"), version
    refused = subprocess.run(
        [str(prefix / "bin" / "check_imap"), "-H", "127.0.0.1", "-p", "1", "-t", "5"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode == 2, refused
    assert refused.stdout.startswith("IMAP CRITICAL - 127.0.0.1:1: connection refused"), refused
