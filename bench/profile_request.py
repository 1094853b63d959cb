"""Where a request's CPU goes in a rendered service: py-spy samples its web process while wrk
asks one path, and each sample is put down to the part of the stack it is in.

    uv run python bench/profile_request.py PROJECT [--path /no-such-path] [--seconds 8]

PROJECT is a rendered, synced project (its `.venv`); py-spy comes from PyPI through `uvx`, wrk
as bench.py installs it. One web process (`WEB_CONCURRENCY=1`), its defaults otherwise (the
JSON access log, metrics on), stdout to /dev/null. Only the thread holding the GIL is sampled,
and a sample whose innermost frame is a wait (the event loop in epoll) is left out. Each
other sample goes to the part of its innermost frame that belongs to one of PARTS, stdlib
frames in between counting for their caller.
"""

import argparse
import collections
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from serving import Running, ensure_wrk, rendered, wrk

# In the order they are tried on a frame; a frame of none (the stdlib) defers to its caller.
PARTS = [
    ("metrics (ours, prometheus_client)", r"_service/metrics(_directory)?\.py|prometheus_client/"),
    ("logging (ours, structlog, logging)", r"_service/logging\.py|structlog/|logging/__init__"),
    ("request id", r"_service/request_id\.py|uuid\.py"),
    ("request span", r"_service/request_(span|tracing)\.py"),
    ("edge (ours)", r"_service/(edge|failures|health)\.py"),
    ("request head's limits (ours)", r"_service/http_head\.py"),
    ("framework and app", r"fastapi/|starlette/|django/|flask/|werkzeug/|_service/app\.py"),
    ("a2wsgi's thread hop", r"a2wsgi/|concurrent/futures/|threading\.py"),
    ("server (uvicorn, httptools)", r"uvicorn/|httptools"),
    ("event loop (asyncio)", r"asyncio/|selectors\.py"),
]  # fmt: skip
# Innermost frames of a thread that waits, not runs.
WAITING = re.compile(
    r"^(Condition\.wait \(threading|Runner\.run \(asyncio/runners\.py|_worker \(concurrent/)"
)


def shares(collapsed: str) -> tuple[int, collections.Counter[str], collections.Counter[str]]:
    """Samples counted, each part's, and the innermost frames'."""
    parts: collections.Counter[str] = collections.Counter()
    innermost: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if WAITING.match(frames[-1]):
            continue
        total += int(count)
        innermost[frames[-1]] += int(count)
        for frame in reversed(frames):
            part = next((name for name, pattern in PARTS if re.search(pattern, frame)), None)
            if part:
                parts[part] += int(count)
                break
        else:
            parts["other"] += int(count)
    return total, parts, innermost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("--path", default="/no-such-path", help="what wrk asks (a 404 by default)")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rate", type=int, default=1000, help="py-spy's samples a second")
    args = parser.parse_args()
    ensure_wrk()
    with Running(rendered(args.project.resolve())) as server, tempfile.TemporaryDirectory() as tmp:
        url = f"{server.launch.url}{args.path}"
        wrk(url, 2, 16)  # warm: bytecode, caches, the first requests' one-off work
        raw = Path(tmp) / "samples.txt"
        # --gil: the thread holding the GIL only, the one running Python (with a2wsgi's
        # threads, the others wait for it at any line, which would count as running there).
        spy = ["uvx", "--quiet", "--from", "py-spy", "py-spy", "record", "--gil", "--nonblocking",
               "--pid", str(server.process.pid), "--rate", str(args.rate), "--format", "raw",
               "--duration", str(args.seconds + 1), "--output", str(raw)]  # fmt: skip
        recording = threading.Thread(target=subprocess.run, args=(spy,), kwargs={"check": True})
        recording.start()
        served = wrk(url, args.seconds, 16)
        recording.join()
        total, parts, innermost = shares(raw.read_text())
    print(f"{args.project.name} {args.path}: {served['rate']:.0f} req/s, "
          f"{total} samples while running")  # fmt: skip
    print("| part | share |\n| --- | ---: |")
    for part, count in parts.most_common():
        print(f"| {part} | {100 * count / total:.1f} % |")
    print("\nInnermost frames:")
    for frame, count in innermost.most_common(10):
        print(f"  {100 * count / total:5.1f} %  {frame}")


if __name__ == "__main__":
    sys.exit(main())
