"""Carries the user's edits of a module the template renamed to its new name (update across 0.10.0).

Copier has no notion of a renamed file: an update deletes the old one, edits and all, and writes
the new one as the template has it. After such an update this puts back what the user changed:
a three-way merge of the user's old file (the commit before the update) into the new one, with
the old version's render of the old file as the base, so each edit lands where it was made and
an edit the template's change meets is a conflict shown inline, as Copier shows its own. A
module the user added to a renamed package, which Copier leaves where it is, moves with the
package. Standard library only: it runs on the Python that runs Copier.

    renamed_modules.py <package> <answers file> <template> <previous version>
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from project_git import committed, git

# Old name -> new name, under src/<package>/: modules, then packages (each module in them).
RENAMED = {
    "services.py": "backing_services.py",
    "admin/settings_loaded.py": "manage/with_settings.py",
    "django_apps.py": "django_base_settings.py",
}
RENAMED_PACKAGES = {"admin/": "manage/"}
LABELS = ("-L", "before updating", "-L", "last update", "-L", "after updating")


def answers_data(answers_file: str) -> str:
    """The recorded answers, without Copier's own (`_commit`, `_src_path`), as a data file."""
    text = (committed(answers_file) or b"").decode()
    return "".join(
        line for line in text.splitlines(keepends=True) if not line.startswith(("_", "#"))
    )


def old_render(answers_file: str, template: str, version: str, into: Path) -> Path:
    """The project as the version it is updated from rendered it: each renamed file's base."""
    data = into / "answers.yml"
    data.write_text(answers_data(answers_file))
    project = into / "project"
    subprocess.run(
        # Trusted as the update is: its migrations run only with --trust.
        [sys.executable, "-m", "copier", "copy", "--quiet", "--defaults", "--trust", "--skip-tasks",
         "--vcs-ref", version, "--data-file", str(data), template, str(project)],
        check=True, capture_output=True,
    )  # fmt: skip
    return project


def new_name(old: str) -> str | None:
    """A module's name in the new version, if it was renamed."""
    if old in RENAMED:
        return RENAMED[old]
    for before, after in RENAMED_PACKAGES.items():
        if old.startswith(before):
            return after + old.removeprefix(before)
    return None


def renamed(package: str) -> dict[str, str]:
    """Each renamed file the commit before the update holds: its path, and its new one."""
    prefix = f"src/{package}/"
    return {
        path: prefix + new
        for path in git("ls-tree", "-r", "--name-only", "HEAD", prefix).splitlines()
        if (new := new_name(path.removeprefix(prefix))) is not None
    }


def main(package: str, answers_file: str, template: str, version: str) -> None:
    moved = {}
    for old_path, new in renamed(package).items():
        new_path = Path(new)
        if Path(old_path).exists():
            # A module of the user's in a renamed package (Copier keeps what it did not write).
            if new_path.exists():
                print(f"{old_path} is left where it is: {new_path} exists.")
            else:
                new_path.parent.mkdir(parents=True, exist_ok=True)
                Path(old_path).rename(new_path)
                print(f"{old_path} is now {new_path}: moved with its package.")
        elif new_path.exists():  # the update did the rename: the old file gone, the new written
            moved[old_path] = (committed(old_path), new_path)
    for before in RENAMED_PACKAGES:
        left = Path(f"src/{package}/{before}")
        shutil.rmtree(left / "__pycache__", ignore_errors=True)
        with contextlib.suppress(OSError):
            left.rmdir()  # only if nothing else is left in it
    if not moved:
        return
    with tempfile.TemporaryDirectory() as scratch:
        base_project = old_render(answers_file, template, version, Path(scratch))
        for old_path, (users, new_path) in moved.items():
            base = base_project / old_path
            if base.exists() and base.read_bytes() == users:
                continue  # not edited: the template's new file is the whole answer
            templates = Path(scratch) / "templates"
            templates.write_bytes(new_path.read_bytes())
            new_path.write_bytes(users)
            # The template's change (base to new) merged into the user's file, as Copier merges
            # its own; where both changed the same lines, both sides are kept between markers.
            subprocess.run(
                ["git", "merge-file", *LABELS, str(new_path),
                 str(base) if base.exists() else "/dev/null", str(templates)],
                check=False,
            )  # fmt: skip
            print(f"{old_path} is now {new_path}: your edits to it were carried there.")


if __name__ == "__main__":
    main(*sys.argv[1:])
