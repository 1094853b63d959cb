"""The plain `copier copy`: no flag a user would not type, and a project that needs no task.

The template has no tasks, so Copier asks for no `--trust`, and nothing that fails after the
files are written (no uv, no git, no network) can make Copier remove the project again.
"""

import os
import re
import shutil
from pathlib import Path

from helpers.commands import assert_succeeds, copier_copy, rendered_files
from helpers.matrix import TEMPLATE_ROOT, choice_questions, defaults
from helpers.python_root import in_project


def next_steps(output: str) -> list[str]:
    """The commands of the after-copy message: its indented lines."""
    return [line.strip() for line in output.splitlines() if line.startswith("    ")]


def test_plain_copy_then_the_printed_next_steps_give_a_locked_committed_project(
    template_repo: Path, tmp_path: Path
) -> None:
    destination = tmp_path / "myapp"
    copied = copier_copy(template_repo, destination, cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    steps = next_steps(copied.stdout + copied.stderr)
    assert steps[0] == f"cd {destination}", steps
    assert not (destination / "uv.lock").exists(), "the template must not render the lock"

    # On the Python the project gets (python_root.py), as the steps install it.
    python = defaults()["python_version"]
    assert_succeeds(in_project(["bash", "-e", "-c", "\n".join(steps)], tmp_path, python), tmp_path)

    assert (destination / "uv.lock").is_file()
    assert_succeeds(["git", "diff", "--quiet", "HEAD"], destination)
    assert "uv.lock" in assert_succeeds(["git", "ls-files"], destination).stdout


def test_the_after_copy_message_says_how_to_move_to_a_python_this_machine_has(
    template_repo: Path, tmp_path: Path
) -> None:
    """Where the default Python cannot be had (no download), the message's command, run as
    printed once the project is committed, moves it to one that can, and `uv sync` installs."""
    destination = tmp_path / "myapp"
    copied = copier_copy(template_repo, destination, cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    message = copied.stdout + copied.stderr
    (update,) = re.findall(r"`(copier update [^`]*python_version=([\d.]+))`", message)
    command, python = update
    assert python != defaults()["python_version"] and python in choice_questions()["python_version"]
    for step in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        assert_succeeds(step, destination)
    assert_succeeds(["bash", "-c", command], destination)
    assert (destination / ".python-version").read_text().strip() == python
    # Only the Pythons this machine has: no download.
    environment = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    assert_succeeds(
        in_project(["uv", "sync", "-q"], destination, python), destination, env=environment
    )


def test_copy_without_uv_on_path_still_leaves_the_whole_project(
    template_repo: Path, tmp_path: Path
) -> None:
    """Every command of PATH but uv: nothing could lock, and the project is whole."""
    without_uv = tmp_path / "path-without-uv"
    without_uv.mkdir()
    for folder in map(Path, os.environ["PATH"].split(os.pathsep)):
        for command in folder.glob("*") if folder.is_dir() else ():
            link = without_uv / command.name
            if command.name not in ("uv", "uvx") and not link.exists():
                link.symlink_to(command)
    assert shutil.which("uv", path=str(without_uv)) is None
    destination = tmp_path / "myapp"
    environment = {**os.environ, "PATH": str(without_uv)}
    copied = copier_copy(template_repo, destination, env=environment)
    assert copied.returncode == 0, copied.stderr
    files = rendered_files(destination)
    for expected in ("pyproject.toml", "Procfile", "README.md", ".copier-answers.yml"):
        assert expected in files, sorted(files)


def test_only_files_with_jinja_in_them_are_compiled() -> None:
    """Copier compiles each `.jinja` file on every copy and update; one with no Jinja in it is
    copied as it is without the suffix (its name may still be a condition)."""
    plain = [
        str(path.relative_to(TEMPLATE_ROOT))
        for path in (TEMPLATE_ROOT / "template").rglob("*.jinja")
        if not any(mark in path.read_text() for mark in ("{{", "{%", "{#"))
    ]
    assert plain == [], f"no Jinja in these: drop their .jinja suffix: {plain}"
