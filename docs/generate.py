#!/usr/bin/env python3
"""Write the generated parts of the docs from the code: the ``--help`` texts.

- ``docs/help/check_imap.txt`` and ``docs/help/notify_on_change.txt``: the output of
  check_imap's live argparse parser and of ``python -m check_imap.notify --help`` at
  ``COLUMNS=80``;
- every ``docs/*.md`` block between ``<!-- help:NAME -->`` and ``<!-- /help -->``: the
  same text in a code block;
- ``src/check_imap/helptext.py``: check_imap's text again, which ``check_imap --help``
  prints without building the parser when the width and Python version match.

Run ``python docs/generate.py`` after changing an option. ``tests/test_docs.py`` fails
while a committed file differs from what this writes (``--check`` says which, too).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
HELP_DIR = DOCS / "help"
MODULES = {"check_imap": "check_imap", "notify_on_change": "check_imap.notify"}
MARKER = re.compile(r"(<!-- help:(?P<name>[a-z_]+) -->\n).*?(<!-- /help -->)", re.S)
COLUMNS = "80"
HELPTEXT = DOCS.parent / "src" / "check_imap" / "helptext.py"
# check_imap --help itself prints helptext.py, so its text comes from the parser.
LIVE_PARSER = (
    "import sys; from check_imap.arguments import build_parser; "
    "sys.stdout.write(build_parser().format_help())"
)


def help_text(name: str) -> str:
    """``--help`` of one command, as a user with an 80-column terminal sees it."""
    env = {k: v for k, v in os.environ.items() if k not in ("LANG", "LANGUAGE", "LC_ALL")}
    env.update(COLUMNS=COLUMNS, LC_ALL="C.UTF-8")
    argv = ["-c", LIVE_PARSER] if name == "check_imap" else ["-m", MODULES[name], "--help"]
    proc = subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if not proc.stdout.startswith("usage: "):
        raise RuntimeError(f"{name} --help printed no usage (rc {proc.returncode}): {proc.stderr}")
    return proc.stdout.rstrip("\n") + "\n"


def render(text: str, helps: dict[str, str] | None = None) -> str:
    """``text`` with every help marker block filled in."""
    helps = helps if helps is not None else {}

    def block(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in helps:
            helps[name] = help_text(name)
        return f"{match.group(1)}```\n{helps[name]}```\n{match.group(3)}"

    return MARKER.sub(block, text)


def _literal(text: str) -> str:
    """A string literal as ruff format writes it (double quotes unless single ones escape less)."""
    if '"' in text and "'" not in text:
        return repr(text)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def helptext_module(text: str) -> str:
    """src/check_imap/helptext.py for check_imap's ``--help`` text."""
    pieces = [
        line[start : start + 80]
        for line in text.splitlines(keepends=True)
        for start in range(0, len(line), 80)
    ]
    lines = "".join(f"    {_literal(piece)}\n" for piece in pieces)
    return (
        '"""check_imap --help, written by docs/generate.py from the parser: do not edit.\n\n'
        "cli.py prints it for a bare ``--help``/``-h`` when argparse would lay it out the\n"
        "same way (this Python version, this width), which saves building the 55-option\n"
        'parser; tests/test_docs.py checks it against the live parser."""\n\n'
        f"PYTHON = {tuple(sys.version_info[:2])!r}\n"
        f"WIDTH = {int(COLUMNS) - 2}  # what text.help_width() gives at COLUMNS={COLUMNS}\n"
        f"HELP = (\n{lines})\n"
    )


def outputs() -> dict[Path, str]:
    """Every generated file and the content it must have now."""
    helps = {name: help_text(name) for name in MODULES}
    files = {HELP_DIR / f"{name}.txt": text for name, text in helps.items()}
    files[HELPTEXT] = helptext_module(helps["check_imap"])
    for page in sorted(DOCS.glob("*.md")):
        files[page] = render(page.read_text(encoding="utf-8"), helps)
    return files


def stale() -> list[Path]:
    """The generated files that differ from what :func:`outputs` makes."""
    return [
        path
        for path, text in outputs().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        paths = stale()
        for path in paths:
            print(f"stale: {path.relative_to(DOCS.parent)}")
        return 1 if paths else 0
    if argv:
        print("usage: python docs/generate.py [--check]", file=sys.stderr)
        return 2
    for path, text in outputs().items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(DOCS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
