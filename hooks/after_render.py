"""Runs in the rendered project after `copier copy` and `copier update`.

It makes the project complete with no manual step: a git repository (so that `copier update`
can work later) and a real `uv.lock` (so that `uv sync --locked` works in CI and the Dockerfile).
It uses only the standard library, since it runs on the Python that runs Copier.
"""

import shutil
import subprocess
import sys


def inside_git_work_tree() -> bool:
    result = subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"], capture_output=True, text=True
    )
    return result.returncode == 0 and result.stdout.strip() == "true"


def main() -> int:
    if shutil.which("git") and not inside_git_work_tree():
        subprocess.run(["git", "init", "--quiet"], check=True)
    uv = shutil.which("uv")
    if uv is None:
        print(
            "uv is not installed, so uv.lock was not created. Install uv "
            "(https://docs.astral.sh/uv/) and run `uv lock` in the project.",
            file=sys.stderr,
        )
        return 1
    # `uv lock` keeps the versions already locked and only resolves what changed.
    return subprocess.run([uv, "lock", "--quiet"]).returncode


if __name__ == "__main__":
    sys.exit(main())
