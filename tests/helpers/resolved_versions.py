"""What each rendered project resolved, so that a failure can be traced to the release behind it.

Every code combination's first `uv sync` resolves the newest releases its ranges allow, on the
day the suite runs. Each project's lock is read as it is made; at the end of the run the
versions are written to bench/results/resolved-versions.txt (one line per package: its
versions and how many combinations took each), and every package whose versions differ from
bench/resolved-versions.txt (those of the last run that landed) is named in the summary, with
the old and new versions. Copy the file over the tracked one when a run lands.
"""

import json
import os
import re
import tempfile
import tomllib
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.matrix import TEMPLATE_ROOT

LANDED = TEMPLATE_ROOT / "bench" / "resolved-versions.txt"
WRITTEN = TEMPLATE_ROOT / "bench" / "results" / "resolved-versions.txt"
# Where each test process leaves one file per combination; set once, by the first process.
DIRECTORY_VARIABLE = "TEMPLATE_TESTS_RESOLVED_DIR"


def pytest_configure(config: pytest.Config) -> None:
    if DIRECTORY_VARIABLE not in os.environ:  # the controller; its workers inherit it
        os.environ[DIRECTORY_VARIABLE] = tempfile.mkdtemp(prefix="resolved-versions-")


def record(combination_id: str, project: Path) -> None:
    """Keep the versions in `project`'s lock under its combination's id."""
    target = Path(os.environ[DIRECTORY_VARIABLE]) / f"{combination_id}.json"
    if target.exists():
        return
    lock = tomllib.loads((project / "uv.lock").read_text())
    versions = {
        package["name"]: package["version"]
        for package in lock.get("package", [])
        if "version" in package and package.get("source", {}).get("editable") != "."
    }
    target.write_text(json.dumps(versions))


@pytest.fixture(scope="session")
def record_resolved_versions() -> Callable[[str, Path], None]:
    """`record`, for the fixture that installs each combination's project."""
    return record


def read_table(path: Path) -> dict[str, str]:
    """A written table: each package's versions, as one text."""
    if not path.exists():
        return {}
    rows = (line.split(maxsplit=1) for line in path.read_text().splitlines() if line.strip())
    return {name: versions for name, versions in rows if not name.startswith("#")}


def table(directory: Path) -> tuple[int, dict[str, str]]:
    """How many combinations resolved, and each package's versions with their counts."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    files = sorted(directory.glob("*.json"))
    for path in files:
        for name, version in json.loads(path.read_text()).items():
            counts[name][version] += 1
    return len(files), {
        name: " ".join(f"{version} ({n})" for version, n in sorted(by_version.items()))
        for name, by_version in sorted(counts.items())
    }


def versions(row: str) -> str:
    """A row's versions without their counts (a run of some combinations takes fewer)."""
    return " ".join(re.sub(r" \(\d+\)", "", row).split())


def changes(before: dict[str, str], now: dict[str, str]) -> list[str]:
    """One line per package resolved now whose versions differ from the landed run's."""
    return [
        f"{name}: {versions(before.get(name, '(none)'))} -> {versions(row)}"
        for name, row in now.items()
        if versions(before.get(name, "(none)")) != versions(row)
    ]


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    resolved, now = table(Path(os.environ[DIRECTORY_VARIABLE]))
    if not resolved:
        return
    header = f"# {resolved} code combinations resolved: each package's versions (combinations)\n"
    WRITTEN.parent.mkdir(parents=True, exist_ok=True)
    WRITTEN.write_text(header + "".join(f"{name} {versions}\n" for name, versions in now.items()))
    moved = changes(read_table(LANDED), now)
    terminalreporter.section("resolved versions")
    terminalreporter.write_line(
        f"{resolved} code combinations; {WRITTEN.relative_to(TEMPLATE_ROOT)} holds every package. "
        f"Changed since {LANDED.relative_to(TEMPLATE_ROOT)}: {len(moved) or 'none'}"
    )
    for line in moved:
        terminalreporter.write_line(f"  {line}")
