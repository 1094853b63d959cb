"""The project's git repository, as the update hooks use it. Standard library only: the hooks
run on the Python that runs Copier."""

import subprocess
from pathlib import Path


def git(*arguments: str) -> str:
    return subprocess.run(
        ["git", *arguments], capture_output=True, text=True, check=True
    ).stdout.strip()


def kept_copy(name: str) -> Path:
    """A place in the project's git folder, which no update touches."""
    return Path(git("rev-parse", "--git-path", name))


def committed(path: str) -> bytes | None:
    """The file as the project's last commit holds it, byte for byte (None: it holds none)."""
    shown = subprocess.run(["git", "show", f"HEAD:{path}"], capture_output=True)
    return shown.stdout if shown.returncode == 0 else None
