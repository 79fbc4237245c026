"""The docs stay true: generated parts match the code, links resolve, the README is short.

Like tests/test_manpages.py for the man pages: ``docs/generate.py`` writes the
``--help`` texts (``docs/help/*.txt`` and the blocks embedded in ``docs/*.md``), and
this fails while a committed file differs from what it writes now.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 270
PAGES = [
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    ROOT / "CHANGELOG.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
LINK = re.compile(r"\]\(([^)\s]+)\)")
OTHERS: frozenset[str] = frozenset()  # every linked page exists
"""Pages other helpers write: a link to them may come before the page does."""
GENERATED_WITH = (3, 11)
"""argparse's layout differs between Python versions; the committed help is 3.11's."""


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated() -> dict[Path, str]:
    if sys.version_info[:2] != GENERATED_WITH:
        pytest.skip(f"the committed --help is Python {GENERATED_WITH[0]}.{GENERATED_WITH[1]}'s")
    files: dict[Path, str] = _generator().outputs()
    return files


def test_generator_covers_both_commands(generated: dict[Path, str]) -> None:
    helps = {p.name for p in generated if p.parent == ROOT / "docs" / "help"}
    assert helps == {"check_imap.txt", "notify_on_change.txt"}
    guide = generated[ROOT / "docs" / "check_imap.md"]
    assert "<!-- help:check_imap -->\n```\nusage: check_imap -H HOST" in guide


@pytest.mark.parametrize(
    "name",
    [
        "help/check_imap.txt",
        "help/notify_on_change.txt",
        *sorted(p.name for p in (ROOT / "docs").glob("*.md")),
    ],
)
def test_committed_docs_match_the_generator(generated: dict[Path, str], name: str) -> None:
    path = ROOT / "docs" / name
    assert path in generated, f"docs/generate.py does not write docs/{name}"
    assert path.exists(), f"docs/{name} is missing: run python docs/generate.py"
    assert path.read_text(encoding="utf-8") == generated[path], (
        f"docs/{name} is stale: run python docs/generate.py"
    )


def test_shipped_help_is_the_parsers(generated: dict[Path, str]) -> None:
    """check_imap --help prints helptext.py without the parser: it must be the parser's text."""
    path = ROOT / "src" / "check_imap" / "helptext.py"
    assert path.read_text(encoding="utf-8") == generated[path], (
        "src/check_imap/helptext.py is stale: run python docs/generate.py"
    )
    from check_imap import helptext

    assert (helptext.PYTHON, helptext.WIDTH) == (GENERATED_WITH, 78)
    assert (ROOT / "docs" / "help" / "check_imap.txt").read_text(encoding="utf-8") == helptext.HELP


@pytest.mark.parametrize("columns", ["80", "100", "60"])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_is_argparses_at_any_width(columns: str, flag: str) -> None:
    """The prebuilt text where it fits, the parser's own layout everywhere else."""
    env = dict(os.environ, COLUMNS=columns)
    code = (
        "import sys; from check_imap.arguments import build_parser; "
        "sys.stdout.write(build_parser().format_help())"
    )
    want = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout
    got = subprocess.run(
        [sys.executable, "-m", "check_imap", flag],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert (got.returncode, got.stderr, got.stdout) == (3, "", want)


def test_readme_is_short() -> None:
    lines = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/"


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def _relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return [link for link in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", link, re.I)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    """Every relative link names an existing file (or a page another helper writes),
    and every #anchor names a heading of the page it points to."""
    broken = []
    for link in _relative_links(page):
        target, _, fragment = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        relative = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else None
        if relative in OTHERS and not path.exists():
            continue
        missing_anchor = fragment and path.suffix == ".md" and fragment not in _anchors(path)
        if not path.exists() or missing_anchor:
            broken.append(link)
    assert not broken, f"{page.name}: broken links {broken}"


def test_link_check_sees_broken_links(tmp_path: Path) -> None:
    """The checker itself: a missing file and a missing anchor are both found."""
    page = tmp_path / "page.md"
    page.write_text("# Title\n[a](missing.md) [b](#title) [c](#nope) [d](https://x.org/y)\n")
    assert _relative_links(page) == ["missing.md", "#title", "#nope"]
    assert _anchors(page) == {"title"}
