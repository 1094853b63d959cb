"""The image's HEALTHCHECK: the web process's /healthz, and nothing for the other processes.

One image runs every process of the Procfile (web by default, the others by their command),
and the engine runs its one HEALTHCHECK in each container. A worker or a release serves no
HTTP, so probing /healthz there would mark a sound container unhealthy: they report healthy
while they run, and the platform sees their end by their exit.
"""

import os
import sys
import urllib.request
from pathlib import Path

WEB_COMMAND = ["-m", f"{__package__}.web"]


def runs_web() -> bool:
    """Whether any process of this container is the web process (PID 1, or a child of an init)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            arguments = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:  # the process ended while we looked
            continue
        if any(arguments[i : i + 2] == WEB_COMMAND for i in range(len(arguments))):
            return True
    return False


def main() -> None:
    if not runs_web():
        return
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz"
    try:
        urllib.request.urlopen(url, timeout=2).close()
    except OSError as error:
        sys.exit(f"{url}: {error}")  # the reason on stderr, and status 1: unhealthy


if __name__ == "__main__":
    main()
