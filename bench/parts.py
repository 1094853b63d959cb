"""What each part of a rendered FastAPI service costs a request, measured by turning it off.

    uv run python bench/parts.py [--rounds 5] [--seconds 5] [--project DIR]

The default FastAPI render (or DIR, a rendered, synced FastAPI project) serves a path it does
not have (FastAPI's 404) under wrk -c16, one process, as the Procfile's web line runs it, and
again with one part off at a time: the JSON access log (LOG_LEVEL=WARNING), the metrics
(METRICS=false), the edge (a sitecustomize, never shipped, that serves the framework's app
without it, /healthz added for the wait), the bounds on a request's head and the joined
response writes (uvicorn's own httptools protocol), and all four off. The variants take turns,
the order reversed every other round; medians of req/s and CPU per request.

A part's cost here is the service's CPU a request with it less without it: what it adds in the
running server, where it also takes room in the caches from the rest (in process, timed alone,
the access line is about 16 µs and the edge about 13 µs).
"""

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import rendering
from peers import ask
from serving import Launch, ensure_wrk, rendered

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers.probes import package_of  # the tests' folder, put on sys.path above

WITHOUT_EDGE = """
import {package}.app as module
made_by = module.create_app
def create_app(*args):
    app = made_by(*args).framework_app
    async def healthz():
        return {{"status": "ok"}}
    app.add_api_route("/healthz", healthz)
    return app
module.create_app = create_app
"""
WITH_UVICORNS_PROTOCOL = """
import uvicorn
run = uvicorn.run
def run_with_uvicorns_protocol(*args, **options):
    options["http"] = "httptools"
    return run(*args, **options)
uvicorn.run = run_with_uvicorns_protocol
"""
QUIET = {"LOG_LEVEL": "WARNING"}
NO_METRICS = {"METRICS": "false"}


def sitecustomize(folder: Path, *parts: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text("\n".join(parts))
    return str(folder)


def variants(project: Path, scratch: Path) -> dict[str, Callable[[], Launch]]:
    package = package_of(project)
    edge_off = sitecustomize(scratch / "edge", WITHOUT_EDGE.format(package=package))
    protocol_off = sitecustomize(scratch / "protocol", WITH_UVICORNS_PROTOCOL)
    all_off = sitecustomize(
        scratch / "all", WITHOUT_EDGE.format(package=package), WITH_UVICORNS_PROTOCOL
    )
    return {
        "as shipped": lambda: rendered(project),
        "access log off": lambda: rendered(project, **QUIET),
        "metrics off": lambda: rendered(project, **NO_METRICS),
        "edge off": lambda: rendered(project, PYTHONPATH=edge_off),
        "uvicorn's protocol": lambda: rendered(project, PYTHONPATH=protocol_off),
        "all four off": lambda: rendered(project, PYTHONPATH=all_off, **QUIET, **NO_METRICS),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--project", type=Path, help="a rendered, synced FastAPI project")
    args = parser.parse_args()
    ensure_wrk()
    rendering.prepare_environment()
    with tempfile.TemporaryDirectory() as tmp:
        project = args.project.resolve() if args.project else None
        if project is None:
            template = rendering.snapshot_template(Path(tmp) / "template")
            project = Path(tmp) / "ours"
            fastapi = ("--data", "web_framework=fastapi")
            rendering.run(rendering.copy_command(template, project, *fastapi))
            rendering.run(["uv", "sync", "--quiet"], project)
        launches = variants(project, Path(tmp) / "parts")
        table: dict[str, list[dict[str, float]]] = {}
        for number in range(args.rounds):
            names = list(launches) if number % 2 == 0 else list(reversed(launches))
            for name in names:
                measured = ask(launches[name](), "/no-such-path", 404, args.seconds)
                table.setdefault(name, []).append(measured)
    print(f"{args.rounds} interleaved rounds of {args.seconds} s; medians")
    print("| served | req/s | CPU µs a request | less than as shipped |")
    print("| --- | ---: | ---: | ---: |")
    shipped = statistics.median(m["CPU ms/request"] for m in table["as shipped"]) * 1000
    for name, runs in table.items():
        cpu = statistics.median(m["CPU ms/request"] for m in runs) * 1000
        rate = statistics.median(m["req/s"] for m in runs)
        print(f"| {name} | {rate:,.0f} | {cpu:.1f} | {shipped - cpu:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
