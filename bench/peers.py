"""The rendered services beside the fastest public templates of their frameworks, like for like.

    uv run python bench/peers.py [--rounds 5] [--seconds 6] [--peer DIR] [--keel DIR]

FastAPI: s3rius/FastAPI-template's generator is on PyPI (`fastapi-template`): without --peer, a
project is generated with it (REST, no database, its example routers) into a temporary folder,
through `uvx`; with --peer DIR, DIR is such a project, synced. Theirs runs as its image does
(`python -m PKG`: uvicorn with its access log).

Django: with --keel DIR, a checkout of django-keel (a Copier template, CuriousLearner/django-keel),
a project is rendered from it with its defaults (Sentry off: its `sentry_sdk.init` takes an
option sentry-sdk 3 no longer has, so its project does not start with it) and run by its image's
command, gunicorn's sync workers (one, as ours; its prod settings, HTTPS redirect off since
no proxy is in front). Without --keel the Django pair is left out.

Each side runs one server process with its shipped production settings (ours: the Procfile's
web line, METRICS and the JSON access log on), stdout to /dev/null, and is asked by wrk -c16
in turn, the order reversed every other round; each ratio is taken within its round.

What is asked: a path neither has (each framework's 404); the same route in both (one route
answering a small JSON object, the same code: FastAPI's put in by a sitecustomize, Django's
appended to each project's URLconf); and for FastAPI, health as each ships it (ours /healthz,
answered by the edge; theirs /api/health, a sync route FastAPI runs on its thread pool). Each
asked path's status is checked before it is measured. Per side: req/s, CPU per request from
/proc, p99 latency, peak RSS, and the cold start (exec to the first answer of its health path;
for Django, of the route, since keel's health asks its database).
"""

import argparse
import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import rendering
from serving import Launch, Running, cold_start, ensure_wrk, rendered, tree_status, venv_path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers.probes import package_of  # the tests' folder, put on sys.path above
from helpers.servers import start_postgres

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
# The same Django view, appended to each project's URLconf.
DJANGO_ROUTE = """

from django.http import JsonResponse as _JsonResponse
from django.urls import path as _path


def _route(_request):
    return _JsonResponse({"route": "same"})


urlpatterns.append(_path("route", _route))
"""
# What is asked: (name, our path, the peer's path, the status both must answer).
ASKED = [
    ("404, a path neither has", "/no-such-path", "/no-such-path", 404),
    ("the same route", ROUTE, ROUTE, 200),
    ("health as shipped", "/healthz", "/api/health", 200),
]
KEEL_ANSWERS = {
    "project_name": "Peer",
    "project_description": "A peer",
    "author_name": "Bench",
    "author_email": "bench@example.org",
    "use_sentry": "false",
}


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
    # Its image runs the project from its folder, as `python -m` does here; the sitecustomize
    # imports the app before that folder is on sys.path, so PYTHONPATH names it too.
    path = [str(route_folder), str(project)] if route_folder else []
    launch.env = {
        "PATH": venv_path(project),
        f"{package.upper()}_PORT": str(launch.port),
        # Its image leaves the generated .env out (.dockerignore): that file, for its compose
        # file's development container, turns uvicorn's reloader on.
        f"{package.upper()}_RELOAD": "False",
        **({"PYTHONPATH": os.pathsep.join(path)} if path else {}),
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


def ask(launch: Launch, path: str, status: int, seconds: int) -> dict[str, float]:
    """req/s, CPU ms a request, p99 ms and peak RSS MiB of one server under wrk -c16."""
    with Running(launch) as server:
        url = f"{launch.url}{path}"
        try:
            answered = urllib.request.urlopen(url, timeout=5).status
        except urllib.error.HTTPError as error:
            answered = error.code
        if answered != status:  # a route not put in would measure a 404 as the route
            raise SystemExit(f"{' '.join(launch.argv)}: {path} answered {answered}, not {status}")
        subprocess.run(["wrk", "-t1", "-c16", "-d2s", url], check=True, capture_output=True)
        before = tree_status(server.process.pid)["cpu_seconds"]
        run = subprocess.run(
            ["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency", url],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        after = tree_status(server.process.pid)
    requests = int(re.search(r"(\d+) requests in", run.stdout)[1])
    p99, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", run.stdout).groups()
    return {
        "req/s": float(re.search(r"Requests/sec:\s*([\d.]+)", run.stdout)[1]),
        "CPU ms/request": 1000 * (after["cpu_seconds"] - before) / requests,
        "p99 ms": float(p99) * {"us": 0.001, "ms": 1, "s": 1000}[unit],
        "peak RSS MiB": after["peak_rss_mib"],
    }


def render_keel(template: Path, into: Path) -> Path:
    """A django-keel project with its defaults (KEEL_ANSWERS aside), its dependencies synced."""
    project = into / "keel"
    answers = [arg for key, value in KEEL_ANSWERS.items() for arg in ("--data", f"{key}={value}")]
    python = ["--data", f"python_version={os.environ['BENCH_PYTHON']}"]
    rendering.run([*rendering.COPIER, "copy", "--defaults", "--skip-tasks", "--quiet", *answers,
                   *python, str(template), str(project)])  # fmt: skip
    rendering.run(["uv", "sync", "--quiet", "--no-dev"], project)
    return project


def keel_launch(project: Path, database_url: str) -> Launch:
    """Its image's command, one worker; the settings its prod module asks of the environment.
    Its database is a real one: its settings put each view in a transaction (ATOMIC_REQUESTS),
    so that the route asks a connection."""
    launch = Launch([], project, {})
    launch.argv = ["gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{launch.port}",
                   "--workers", "1"]  # fmt: skip
    launch.ready_path = ROUTE
    # Its SIGTERM handler exits the worker inside the request in hand, and gunicorn then waits
    # its graceful timeout (30 s) for it: SIGINT, gunicorn's quick stop (stops are not measured).
    launch.stop_signal = signal.SIGINT
    launch.env = {
        "PATH": venv_path(project),
        "DJANGO_SECRET_KEY": "bench-" * 10,
        "DEBUG": "False",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": database_url,
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "CELERY_BROKER_URL": "redis://127.0.0.1:1/1",
        "SECURE_SSL_REDIRECT": "False",
    }
    return launch


Launches = dict[str, tuple[Launch, str]]
Ready = tuple[str, str]


def measure(
    table: dict[tuple[str, str, str], list[float]],
    pair: str,
    asked: list[tuple[str, str, str, int]],
    launches: Callable[[str, str], Launches],
    args: argparse.Namespace,
    number: int,
) -> None:
    """Round `number` of a pair: each asked path of each side, ratios ours over theirs."""
    for name, our_path, peer_path, status in asked:
        order = list(launches(our_path, peer_path).items())
        if number % 2:
            order.reverse()
        measured = {side: ask(launch, path, status, args.seconds) for side, (launch, path) in order}
        for side, values in measured.items():
            for key, value in values.items():
                table.setdefault((pair, name, side, key), []).append(value)
        for key in ("req/s", "CPU ms/request"):
            ratio = measured["ours"][key] / measured["theirs"][key]
            table.setdefault((pair, name, "ours/theirs", key), []).append(ratio)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--peer", type=Path, help="a generated, synced FastAPI-template project")
    parser.add_argument("--keel", type=Path, help="a checkout of the django-keel template")
    args = parser.parse_args()
    ensure_wrk()
    rendering.prepare_environment()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as cleanup:
        template = rendering.snapshot_template(Path(tmp) / "template")
        ours = Path(tmp) / "ours"
        rendering.run(rendering.copy_command(template, ours, "--data", "web_framework=fastapi"))
        rendering.run(["uv", "sync", "--quiet"], ours)  # makes the lock, as the README says
        peer = args.peer.resolve() if args.peer else generate_peer(Path(tmp))
        our_route = with_route(ours, package_of(ours), ours=True)
        peer_route = with_route(peer, peer.name.replace("-", "_"), ours=False)

        def fastapi_launches(our_path: str, peer_path: str) -> Launches:
            """Each side's server and the path it is asked, the route put in where asked."""
            our_env = {"PYTHONPATH": str(our_route)} if our_path == ROUTE else {}
            return {
                "ours": (rendered(ours, **our_env), our_path),
                "theirs": (
                    peer_launch(peer, peer_route if peer_path == ROUTE else None),
                    peer_path,
                ),
            }

        # (name, what is asked, each side's server, the paths each side's cold start waits for)
        pairs: list[
            tuple[str, list[tuple[str, str, str, int]], Callable[[str, str], Launches], Ready]
        ]
        pairs = [
            ("FastAPI: ours, s3rius/FastAPI-template", ASKED, fastapi_launches,
             ("/healthz", "/api/health")),
        ]  # fmt: skip
        if args.keel:
            our_django = Path(tmp) / "ours-django"
            rendering.run(
                rendering.copy_command(template, our_django, "--data", "web_framework=django")
            )
            rendering.run(["uv", "sync", "--quiet"], our_django)
            keel = render_keel(args.keel.resolve(), Path(tmp))
            postgres = start_postgres()
            cleanup.callback(postgres.remove)
            database_url = postgres.create_database("keel")
            for urlconf in (our_django / "src" / package_of(our_django) / "urls.py",
                            keel / "config" / "urls.py"):  # fmt: skip
                urlconf.write_text(urlconf.read_text() + DJANGO_ROUTE)

            def django_launches(our_path: str, peer_path: str) -> Launches:
                return {
                    "ours": (rendered(our_django), our_path),
                    "theirs": (keel_launch(keel, database_url), peer_path),
                }

            # keel's health asks its database: both cold starts wait for the route.
            pairs.append(("Django: ours, django-keel", ASKED[:2], django_launches, (ROUTE, ROUTE)))
        table: dict[tuple[str, str, str, str], list[float]] = {}
        for number in range(args.rounds):
            for pair, asked, launches, ready in pairs:
                measure(table, pair, asked, launches, args, number)
                for side, (launch, _) in launches(*ready).items():
                    table.setdefault((pair, "cold start", side, "s"), []).append(cold_start(launch))
    print(f"{args.rounds} interleaved rounds of {args.seconds} s each; medians, min and max")
    print("| pair | asked | side | measure | median | min | max |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: |")
    for (pair, name, side, key), values in table.items():
        print(f"| {pair} | {name} | {side} | {key} | {statistics.median(values):.3f} | "
              f"{min(values):.3f} | {max(values):.3f} |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
