"""Where a server's processes keep their Prometheus numbers: one directory, made at its start.

prometheus_client chooses, when it is first imported, between numbers held in memory (one
process's) and numbers kept in files of PROMETHEUS_MULTIPROC_DIR (every process's, added up at
each scrape). The web and worker commands call `share` before anything imports it, so their
processes, and the processes those start, all write to one fresh directory.
"""

import atexit
import os
import shutil
import tempfile

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def share() -> None:
    """Make an empty directory under TMPDIR (a tmpfs under a read-only root filesystem) and name
    it in the environment, which the server's processes inherit; it goes when this one ends."""
    if VARIABLE in os.environ:  # set by the operator, or inherited from the process that made it
        return
    directory = tempfile.mkdtemp(prefix="metrics-")
    os.environ[VARIABLE] = directory
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
