"""What a rendered project's pytest run did, read from its JUnit XML report (`--junitxml`, the
file format CI systems read), not from its terminal summary, whose words are pytest's own.

A command run as written (a README's block, a CI job's step) is given the option through
PYTEST_ADDOPTS, which pytest reads for every run.
"""

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path


def reporting_to(report: Path, env: dict[str, str]) -> dict[str, str]:
    """`env` with PYTEST_ADDOPTS asking pytest for its report at `report` (a path under /tmp,
    which a project on a Python of the root's reaches too: python_root.py)."""
    options = f"{env.get('PYTEST_ADDOPTS', '')} --junitxml={report}".strip()
    return {**env, "PYTEST_ADDOPTS": options}


@dataclass
class Outcomes:
    """How many tests passed; the messages of those skipped, and of the failures and errors."""

    passed: int
    skipped: list[str]
    failed: list[str]  # each failure or error: its message, then the text under it

    def __str__(self) -> str:
        return f"{self.passed} passed; skipped: {self.skipped}; failed: {self.failed}"


def outcomes(report: Path) -> Outcomes:
    assert report.is_file(), f"pytest wrote no report at {report}: did it run?"
    passed, skipped, failed = 0, [], []
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        results = [result for result in case if result.tag in ("skipped", "failure", "error")]
        passed += not results
        for result in results:
            message = result.get("message", "")
            if result.tag == "skipped":
                skipped.append(message)
            else:
                failed.append(f"{message}\n{result.text or ''}")
    return Outcomes(passed, skipped, failed)
