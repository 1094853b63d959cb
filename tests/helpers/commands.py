"""Commands the tests run around a render: Copier's copy as a user types it, any tool in a
rendered project (uv on the project's Python), and a render's files read back."""

import subprocess
import sys
from pathlib import Path

from helpers.python_root import in_project


def run(command: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run a command in `cwd`; uv in a rendered project on the project's Python
    (python_root.py), every other tool (linters, git, `uv tool`'s Copier) on this machine."""
    if command[0] == "uv" and command[1] != "tool":
        command = in_project(command, cwd)
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600, **kwargs)


def assert_succeeds(command: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess[str]:
    result = run(command, cwd, **kwargs)
    assert result.returncode == 0, (
        f"`{' '.join(command)}` exited {result.returncode} in {cwd}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    return result


def copier_copy(
    template: Path, destination: Path, *data: str, **kwargs
) -> subprocess.CompletedProcess[str]:
    """`copier copy --defaults` as a user types it, each answer in `data` given as --data."""
    arguments = [arg for answer in data for arg in ("--data", answer)]
    return subprocess.run(
        [sys.executable, "-m", "copier", "copy", "--defaults", *arguments, str(template),
         str(destination)],
        capture_output=True, text=True, timeout=120, **kwargs,
    )  # fmt: skip


def rendered_files(root: Path) -> dict[str, bytes]:
    """Every file of a rendered project by its relative path, git's own files left out."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and ".git" not in path.relative_to(root).parts
    }
