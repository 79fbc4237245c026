# SPDX-License-Identifier: MIT
"""A copy of this source tree without what is not source (venvs, caches, build output).

Tests that build or install (pip writes build/ and *.egg-info into the tree it builds)
work on such a copy, so the checkout stays clean and parallel workers do not collide.
"""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOT_SOURCE = (
    ".git",
    ".venv*",
    ".hypothesis",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
)


def copy_tree(destination: Path) -> Path:
    shutil.copytree(REPO, destination, ignore=shutil.ignore_patterns(*NOT_SOURCE), symlinks=True)
    return destination
