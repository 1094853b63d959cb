"""Carries the user's edits of a module the template renamed to its new name (update across 0.10.0).

Copier has no notion of a renamed file: an update deletes the old one, edits and all, and writes
the new one as the template has it. After such an update this puts back what the user changed:
a three-way merge of the user's old file (the commit before the update) into the new one, with
the old version's render of the old file as the base, so each edit lands where it was made and
an edit the template's change meets is a conflict shown inline, as Copier shows its own. Standard
library only: it runs on the Python that runs Copier.

    renamed_modules.py <package> <answers file> <template> <previous version>
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

# Old name -> new name, under src/<package>/.
RENAMED = {
    "services.py": "backing_services.py",
    "admin/settings_loaded.py": "admin/with_settings.py",
    "django_apps.py": "django_base_settings.py",
}
LABELS = ("-L", "before updating", "-L", "last update", "-L", "after updating")


def committed(path: str) -> bytes | None:
    """The file as the commit before the update holds it (None: it had none)."""
    shown = subprocess.run(["git", "show", f"HEAD:{path}"], capture_output=True)
    return shown.stdout if shown.returncode == 0 else None


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


def main(package: str, answers_file: str, template: str, version: str) -> None:
    moved = {}
    for old, new in RENAMED.items():
        old_path, new_path = f"src/{package}/{old}", Path(f"src/{package}/{new}")
        users = committed(old_path)
        # Only where the update did the rename: the old file gone, the new one written.
        if users is not None and not Path(old_path).exists() and new_path.exists():
            moved[old_path] = (users, new_path)
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
