"""Keeps a project's uv.lock through an update from a version before 0.3.0 (`_migrations`).

Before 0.3.0 the template made uv.lock in a task of its own. An update run with `--trust` (as
Copier's own hint suggests) runs that task again in the copy of the old version Copier renders
to compare with: the old version then has a uv.lock, the new one none, and Copier deleted the
project's. With `before` this keeps a copy in the project's git folder; with `after` it puts the
lock back if the update took it, and removes the copy. Standard library only: it runs on the
Python that runs Copier.
"""

import shutil
import sys
from pathlib import Path

from project_git import kept_copy

LOCK = Path("uv.lock")


def main(stage: str) -> int:
    kept = kept_copy("copier-twelve-factor-uv.lock")
    if stage == "before":
        if LOCK.is_file():
            shutil.copy2(LOCK, kept)
        return 0
    if kept.is_file():
        if not LOCK.exists():
            shutil.copy2(kept, LOCK)
            print("uv.lock: kept (the update from before 0.3.0 removed it)", file=sys.stderr)
        kept.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
