"""No file holds a conflict that `copier update` (or a git merge) left marked and unresolved.

The markers break no parser in a Markdown, YAML or TOML file that nothing reads at once: this
test fails the lint-and-test run (and CI) until each is resolved, naming every file.
"""

import re
from collections.abc import Iterator
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
# A conflict's first and last lines, as git and Copier write them.
OPENING = re.compile(rb"^<{7}( |$)", re.MULTILINE)
CLOSING = re.compile(rb"^>{7}( |$)", re.MULTILINE)
# What is not the project's own: installed, cached or built.
NOT_OURS = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


def project_files(folder: Path = PROJECT) -> Iterator[Path]:
    for path in folder.iterdir():
        if path.name in NOT_OURS or path.is_symlink():
            continue
        if path.is_dir():
            yield from project_files(path)
        elif path.is_file():
            yield path


def test_no_file_holds_an_unresolved_conflict() -> None:
    conflicted = sorted(
        str(path.relative_to(PROJECT))
        for path in project_files()
        if OPENING.search(text := path.read_bytes()) and CLOSING.search(text)
    )
    assert not conflicted, f"resolve the conflicts marked in: {', '.join(conflicted)}"
