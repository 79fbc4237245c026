# SPDX-License-Identifier: MIT
"""man/check_imap.1 and man/notify_on_change.1 stay in sync with --help.

Every option in the usage and option lines of the installed command's ``--help`` (long
and short forms) must appear in its man page, and every option the man page documents
under OPTIONS must still exist. A new option without documentation fails here. The
pages must have the usual sections and, when groff is installed, format without
warnings.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from support.processes import run

MAN = Path(__file__).resolve().parent.parent / "man"
COMMANDS = ("check_imap", "notify_on_change")
OPTION = re.compile(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*|-[a-zA-Z0-9])(?![\w-])")
SECTIONS = ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "EXAMPLES", "SEE ALSO")


def help_text(name: str) -> str:
    result = run(name, "--help")
    assert result.out.startswith("usage: "), result.out
    return result.out


def usage_lines(text: str) -> list[str]:
    lines = text.splitlines()
    block = [lines[0]]
    for line in lines[1:]:
        if not line.startswith(" "):
            break
        block.append(line)
    return block


def help_options(text: str) -> set[str]:
    """Options in the usage block and in the invocation column of the option lines."""
    found: set[str] = set()
    for line in usage_lines(text):
        found |= set(OPTION.findall(line))
    for line in text.splitlines():
        if line.rstrip().endswith(":") and line.lower().startswith("examples"):
            break  # example command lines are not option definitions
        if re.match(r"  {1,3}-", line):
            invocation = re.split(r"\s{2,}", line.strip())[0]
            found |= set(OPTION.findall(invocation))
    return found


def subcommands(text: str) -> set[str]:
    found = set()
    for line in usage_lines(text)[1:]:
        words = line.split()
        if len(words) > 1 and not words[1].startswith(("-", "[")):
            found.add(words[1])
    return found


def plain(roff: str) -> str:
    """Roff source to comparable text: \\- to -, font and no-op escapes removed."""
    text = roff.replace("\\-", "-").replace("\\e", "\\").replace("\\&", "")
    return re.sub(r"\\f[BIRP]", "", text)


def section(roff: str, name: str) -> str:
    match = re.search(rf"^\.SH \"?{name}\"?\n(.*?)(?=^\.SH |\Z)", roff, re.M | re.S)
    assert match, f"no .SH {name}"
    return match.group(1)


@pytest.mark.parametrize("name", COMMANDS)
def test_help_parser_finds_the_options(name: str) -> None:
    """The parser itself must see the basics, or the sync test would prove nothing."""
    options = help_options(help_text(name))
    expected = {"--help", "-h"} | (
        {"-H", "--hostname", "--tls", "-w"}
        if name == "check_imap"
        else {"--check", "--state-file", "--json"}
    )
    assert expected <= options, options


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_is_in_the_man_page(name: str) -> None:
    text = help_text(name)
    page = plain((MAN / f"{name}.1").read_text())
    documented = set(OPTION.findall(page))
    missing = sorted(help_options(text) - documented)
    assert not missing, f"options of {name} --help missing from man/{name}.1: {missing}"
    for word in subcommands(text):
        assert re.search(rf"^\.B[IR]? {word}\b", page, re.M), (
            f"subcommand {word} not in man/{name}.1"
        )


@pytest.mark.parametrize("name", COMMANDS)
def test_man_page_documents_no_removed_option(name: str) -> None:
    options = help_options(help_text(name))
    page = plain((MAN / f"{name}.1").read_text())
    stale = sorted(set(OPTION.findall(section(page, "OPTIONS"))) - options)
    assert not stale, f"man/{name}.1 documents options {name} no longer has: {stale}"


@pytest.mark.parametrize("name", COMMANDS)
def test_man_page_structure(name: str) -> None:
    roff = (MAN / f"{name}.1").read_text()
    header = re.sub(r'\A(?:\.\\".*\n)*', "", roff)  # comments (SPDX) may come first
    assert re.match(rf"\.TH {name.upper()} 1 ", header), roff[:80]
    for title in SECTIONS:
        section(roff, title)
    assert re.search(rf"^{name} \\- ", section(roff, "NAME"), re.M)
    groff = shutil.which("groff")
    if groff is None:
        pytest.skip("groff not installed: formatting not checked")
    result = subprocess.run(
        [groff, "-man", "-ww", "-z", str(MAN / f"{name}.1")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and not result.stderr, result.stderr
