# SPDX-License-Identifier: MIT
"""The sdist and wheel carry what a packager and a user need, and the metadata is right.

- The sdist built from this tree holds every tracked file of contrib/, docs/, man/ and
  tests/, plus LICENSE, CHANGELOG.md, README.md and constraints-min.txt, and no
  caches; its metadata says ``License-Expression: MIT``. Unpacked, its test suite
  collects (its helpers are there) against the installed package.
- The wheel installs the man pages into share/man/man1 and contrib/ into
  share/check_imap/contrib.
- constraints-min.txt pins exactly the lower bounds pyproject.toml declares; the lint
  and type tools are pinned exactly.
- Every environment variable check_imap reads is documented in its man page.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from support.tree import copy_tree

pytestmark = pytest.mark.build

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = (REPO / "pyproject.toml").read_text()
SDIST_DIRS = ("contrib", "docs", "man", "tests")
SDIST_FILES = ("LICENSE", "CHANGELOG.md", "README.md", "constraints-min.txt", "pyproject.toml")


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sdist, wheel) built from this tree, without network (no build isolation)."""
    pytest.importorskip("build", reason="the test extra's 'build' is not installed")
    out = tmp_path_factory.mktemp("dist")
    # A copy: the build writes build/ and *.egg-info into its source tree, and another
    # pytest-xdist worker or interpreter may be building at the same time.
    tree = tmp_path_factory.mktemp("tree") / "check_imap"
    copy_tree(tree)
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(tree)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    sdists, wheels = list(out.glob("*.tar.gz")), list(out.glob("*.whl"))
    assert len(sdists) == len(wheels) == 1, list(out.iterdir())
    return sdists[0], wheels[0]


def tracked(*dirs: str) -> set[str]:
    """Tracked files under ``dirs`` (git), or skip outside a git checkout (an sdist)."""
    try:
        result = subprocess.run(
            ["git", "-C", str(REPO), "ls-files", "--", *dirs],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        pytest.skip("git is not installed")
    if result.returncode != 0:
        pytest.skip(f"not a git checkout: {result.stderr.strip()}")
    return {line for line in result.stdout.splitlines() if (REPO / line).is_file()}


def sdist_names(sdist: Path) -> set[str]:
    with tarfile.open(sdist) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
    top = names[0].split("/", 1)[0]
    return {n[len(top) + 1 :] for n in names}


def test_sdist_has_tests_contrib_man_docs_and_license(dists: tuple[Path, Path]) -> None:
    names = sdist_names(dists[0])
    missing = sorted((tracked(*SDIST_DIRS) | set(SDIST_FILES)) - names)
    assert not missing, f"not in the sdist: {missing}"
    caches = sorted(n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo")))
    assert not caches, caches
    assert not any(n.startswith((".venv", ".venvs/")) for n in names)


def test_sdist_metadata_has_the_spdx_license(dists: tuple[Path, Path]) -> None:
    with tarfile.open(dists[0]) as tar:
        member = next(
            m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")
        )
        extracted = tar.extractfile(member)
        assert extracted is not None
        pkg_info = extracted.read().decode()
    assert re.search(r"^License-Expression: MIT$", pkg_info, re.M), pkg_info[:600]
    assert re.search(r"^License-File: LICENSE$", pkg_info, re.M), pkg_info[:600]
    assert re.search(r"^Requires-Dist: nagiosplugin>=1\.3\.2$", pkg_info, re.M), pkg_info[:600]


def test_sdist_test_suite_collects_and_passes(dists: tuple[Path, Path], tmp_path: Path) -> None:
    """Its helpers (tests/support) are in the sdist: the suite imports and collects."""
    with tarfile.open(dists[0]) as tar:
        if hasattr(tarfile, "data_filter"):  # 3.12, and the 3.9-3.11 security releases
            tar.extractall(tmp_path, filter="data")
        else:
            tar.extractall(tmp_path)  # noqa: S202 - our own sdist, just built
    (root,) = tmp_path.iterdir()

    def pytest_in_sdist(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout

    collected = re.search(r"^(\d+) tests? collected", pytest_in_sdist("--collect-only"), re.M)
    assert collected and int(collected.group(1)) > 300, collected
    # and its pure tests pass there: the protocol core's transcripts and the step table
    pure = ["tests/test_protocol.py", "tests/test_protocol_transcripts.py", "tests/test_steps.py"]
    passed = pytest_in_sdist(*pure)
    count = re.search(r"^(\d+) passed", passed.splitlines()[-1])
    assert count and int(count.group(1)) > 50, passed[-500:]


def test_wheel_installs_man_pages_and_contrib(dists: tuple[Path, Path]) -> None:
    with zipfile.ZipFile(dists[1]) as whl:
        names = set(whl.namelist())
    data = {n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n}
    expected = {f"share/man/man1/{p.name}" for p in (REPO / "man").glob("*.1")}
    expected |= {f"share/check_imap/{f}" for f in tracked("contrib")}
    assert data == expected, sorted(data ^ expected)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), sorted(names)


# --------------------------------------------------------------------------- metadata


def lower_bounds() -> dict[str, str]:
    block = PYPROJECT.split("dependencies = [", 1)[1].split("]", 1)[0]
    return dict(re.findall(r'"([A-Za-z0-9_.-]+)>=([0-9.]+)"', block))


def test_constraints_min_pins_the_declared_lower_bounds() -> None:
    pins = dict(
        re.findall(
            r"^([A-Za-z0-9_.-]+)==([0-9.]+)$", (REPO / "constraints-min.txt").read_text(), re.M
        )
    )
    assert pins == lower_bounds(), (pins, lower_bounds())
    assert pins["nagiosplugin"] == "1.3.2", "Debian 12's python3-nagiosplugin"


def test_license_is_mit_with_an_spdx_expression() -> None:
    assert re.search(r'^license = "MIT"$', PYPROJECT, re.M)
    assert re.search(r'^license-files = \["LICENSE"\]$', PYPROJECT, re.M)
    assert (REPO / "LICENSE").read_text().startswith("MIT License\n")


def test_lint_and_type_tools_are_pinned_exactly() -> None:
    def extra(name: str) -> str:
        found = re.search(rf"^{name} = \[\n(.*?)^\]", PYPROJECT, re.M | re.S)
        assert found, f"no {name} extra"
        return found.group(1)

    test, runner = extra("test"), extra("pytest")
    assert '"check_imap[pytest]"' in test  # the main run has everything the matrix has
    for tool in ("ruff", "mypy"):
        assert re.search(rf'"{tool}==[0-9.]+[";]', test), f"{tool} is not pinned with =="
    assert re.search(r'"import-linter[>=]', test), "import-linter is not in the test extra"
    for tool in ("pytest", "pytest-xdist", "hypothesis", "trustme"):
        assert re.search(rf'"{tool}[>=]', runner), f"{tool} is not in the pytest extra"


def test_man_page_documents_every_environment_variable_read() -> None:
    """os.environ lookups in check_imap's modules (notify_on_change has its own page)."""
    read: set[str] = set()
    for module in (REPO / "src" / "check_imap").glob("*.py"):
        if module.name in ("notify.py", "policy.py", "state.py"):
            continue
        text = module.read_text()
        read |= set(re.findall(r'os\.environ(?:\.get\(|\[)"([A-Z_][A-Z0-9_]*)"', text))
    assert "CHECK_IMAP_PASSWORD" in read, read
    roff = (REPO / "man" / "check_imap.1").read_text()
    environment = roff.split(".SH ENVIRONMENT", 1)[1].split("\n.SH ", 1)[0]
    missing = sorted(v for v in read if not re.search(rf"\.BR? .*\b{v}\b", environment))
    assert not missing, f"not in the ENVIRONMENT section of man/check_imap.1: {missing}"
