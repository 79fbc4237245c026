#!/usr/bin/env python3
"""Write the generated parts of the docs from the code: the --help texts.

Run ``python docs/generate.py`` after changing an option; tests/test_docs.py fails
while the committed docs differ from what this writes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
MARKER = re.compile(r"(<!-- help:(?P<name>[a-z_]+) -->\n).*?(<!-- /help -->)", re.S)


def help_text(name: str) -> str:
    env = dict(os.environ, COLUMNS="80")
    module = {"check_imap": "check_imap", "notify_on_change": "check_imap.notify"}[name]
    code = (
        f"import sys, runpy; sys.argv[0] = {name!r}; "
        f"runpy.run_module({module!r}, run_name='__main__')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "--help"], capture_output=True, text=True, env=env, check=False
    )
    return proc.stdout


def render(text: str) -> str:
    def block(match: re.Match[str]) -> str:
        body = help_text(match.group("name")).rstrip("\n")
        return f"{match.group(1)}```\n{body}\n```\n{match.group(3)}"

    return MARKER.sub(block, text)


def main() -> int:
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        new = render(text)
        if new != text:
            page.write_text(new)
            print(f"wrote {page.relative_to(DOCS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
