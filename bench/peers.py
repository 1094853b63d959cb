"""The rendered FastAPI service beside the fastest public FastAPI template, like for like.

    uv run python bench/peers.py [--rounds 5] [--seconds 6] [--peer DIR]

s3rius/FastAPI-template's generator is on PyPI (`fastapi-template`): without --peer, a project
is generated with it (REST, no database, its example routers) into a temporary folder, through
`uvx`; with --peer DIR, DIR is such a project, synced. Each side runs one server process with
its shipped production settings (ours: the Procfile's web line, METRICS and the JSON access log
on; theirs: `python -m PKG`, uvicorn with its access log), stdout to /dev/null, and is asked by
wrk -c16 in turn, the order reversed every other round; each ratio is taken within its round.

What is asked: a path neither has (each framework's 404); the same route in both (one `async`
FastAPI route answering a small JSON object, the same code, put in by a sitecustomize); and
health as each ships it (ours /healthz, answered by the edge; theirs /api/health, a sync route
FastAPI runs on its thread pool). Per side: req/s, CPU per request from /proc, p99 latency,
peak RSS, and the cold start (exec to the first answer of its health path).
"""

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import rendering
from serving import Launch, Running, cold_start, ensure_wrk, rendered, tree_status, venv_path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers.probes import package_of  # the tests' folder, put on sys.path above

# The same route in both apps, the same code: FastAPI's own work on a request, with nothing of
# either template in it. Put in by a sitecustomize that wraps each app factory (never shipped).
ROUTE = "/route"
ROUTE_SITECUSTOMIZE = """
import {module} as module
real_factory = module.{factory}
def factory(*args):
    made = real_factory(*args)
    async def route():
        return {{"route": "same"}}
    made{framework_app}.add_api_route("/route", route)
    return made
module.{factory} = factory
"""
PEER = "FastAPI-template"
# What is asked: (name, our path, the peer's path).
ASKED = [
    ("404, a path neither has", "/no-such-path", "/no-such-path"),
    ("the same route", ROUTE, ROUTE),
    ("health as shipped", "/healthz", "/api/health"),
]


def generate_peer(into: Path) -> Path:
    """A project from s3rius/FastAPI-template's generator, its dependencies installed."""
    subprocess.run(
        ["uvx", "--from", "fastapi-template", "fastapi_template", "--name", "peer", "--quiet",
         "--api-type", "rest", "--db", "none", "--orm", "none", "--ci", "none", "--routers"],
        cwd=into, check=True, capture_output=True,
    )  # fmt: skip
    return into / "peer"


def peer_launch(project: Path, route_folder: Path | None) -> Launch:
    package = project.name.replace("-", "_")
    launch = Launch([str(project / ".venv/bin/python"), "-m", package], project, {})
    launch.ready_path = "/api/health"
    launch.env = {
        "PATH": venv_path(project),
        f"{package.upper()}_PORT": str(launch.port),
        **({"PYTHONPATH": str(route_folder)} if route_folder else {}),
    }
    return launch


def with_route(project: Path, package: str, ours: bool) -> Path:
    """A folder whose sitecustomize adds ROUTE to the project's app (PYTHONPATH names it)."""
    folder = project.parent / f"{project.name}-route"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        ROUTE_SITECUSTOMIZE.format(
            module=f"{package}.app" if ours else f"{package}.web.application",
            factory="create_app" if ours else "get_app",
            # Ours: the edge in front holds the framework's app.
            framework_app=".framework_app" if ours else "",
        )
    )
    return folder


def ask(launch: Launch, path: str, seconds: int) -> dict[str, float]:
    """req/s, CPU ms a request, p99 ms and peak RSS MiB of one server under wrk -c16."""
    with Running(launch) as server:
        url = f"{launch.url}{path}"
        subprocess.run(["wrk", "-t1", "-c16", "-d2s", url], check=True, capture_output=True)
        before = tree_status(server.process.pid)["cpu_seconds"]
        run = subprocess.run(
            ["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency", url],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        status = tree_status(server.process.pid)
    requests = int(re.search(r"(\d+) requests in", run.stdout)[1])
    p99, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", run.stdout).groups()
    return {
        "req/s": float(re.search(r"Requests/sec:\s*([\d.]+)", run.stdout)[1]),
        "CPU ms/request": 1000 * (status["cpu_seconds"] - before) / requests,
        "p99 ms": float(p99) * {"us": 0.001, "ms": 1, "s": 1000}[unit],
        "peak RSS MiB": status["peak_rss_mib"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--peer", type=Path, help="a generated, synced FastAPI-template project")
    args = parser.parse_args()
    ensure_wrk()
    rendering.prepare_environment()
    with tempfile.TemporaryDirectory() as tmp:
        template = rendering.snapshot_template(Path(tmp) / "template")
        ours = Path(tmp) / "ours"
        rendering.run(rendering.copy_command(template, ours, "--data", "web_framework=fastapi"))
        rendering.run(["uv", "sync", "--quiet"], ours)  # makes the lock, as the README says
        peer = args.peer.resolve() if args.peer else generate_peer(Path(tmp))
        our_route = with_route(ours, package_of(ours), ours=True)
        peer_route = with_route(peer, peer.name.replace("-", "_"), ours=False)

        def launches(our_path: str, peer_path: str) -> dict[str, tuple[Launch, str]]:
            """Each side's server and the path it is asked, the route put in where asked."""
            our_env = {"PYTHONPATH": str(our_route)} if our_path == ROUTE else {}
            return {
                "ours": (rendered(ours, **our_env), our_path),
                PEER: (peer_launch(peer, peer_route if peer_path == ROUTE else None), peer_path),
            }

        table: dict[tuple[str, str, str], list[float]] = {}
        for number in range(args.rounds):
            for name, our_path, peer_path in ASKED:
                order = list(launches(our_path, peer_path).items())
                if number % 2:
                    order.reverse()
                measured = {side: ask(launch, path, args.seconds) for side, (launch, path) in order}
                for side, values in measured.items():
                    for key, value in values.items():
                        table.setdefault((name, side, key), []).append(value)
                for key in ("req/s", "CPU ms/request"):
                    ratio = measured["ours"][key] / measured[PEER][key]
                    table.setdefault((name, "ours/peer", key), []).append(ratio)
            for side, (launch, _) in launches("/healthz", "/api/health").items():
                table.setdefault(("cold start", side, "s"), []).append(cold_start(launch))
    print(f"{args.rounds} interleaved rounds of {args.seconds} s each; medians, min and max")
    print("| asked | side | measure | median | min | max |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for (name, side, key), values in table.items():
        print(f"| {name} | {side} | {key} | {statistics.median(values):.3f} | "
              f"{min(values):.3f} | {max(values):.3f} |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
