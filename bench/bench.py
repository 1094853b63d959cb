"""Measure what the template costs its users on this machine; print a table, write JSON.

    uv run python bench/bench.py [--runs N] [--duration S] [--suite-seconds S]

Medians over repeated runs; the compared variants are interleaved run by run (their order
reversed every other run), and each ratio is computed within one run. See bench/README.md.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import rendering
import serving
from bare_apps import write_bare_app

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers.probes import SLOW_ROUTE, with_slow_route  # the tests' folder, put on sys.path above
from helpers.receivers import Receiver

RESULTS = rendering.ROOT / "bench" / "results"
FRAMEWORKS = ("fastapi", "flask", "django")
WORKERS = (1, 2)
SECTIONS = ("copier", "harness", "start", "throughput", "route", "shutdown")
# The tests' test-only route, here with a sleep of 0 s: served by the framework in both apps.
ROUTE = "/slow"


class Samples:
    """Named series of values with their unit, in the order they were first seen."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}

    def add(self, name: str, unit: str, value: float) -> None:
        self.rows.setdefault(name, {"unit": unit, "samples": []})["samples"].append(value)

    def table(self) -> dict[str, dict]:
        return {
            name: {
                "unit": row["unit"],
                "median": statistics.median(row["samples"]),
                "min": min(row["samples"]),
                "max": max(row["samples"]),
                "runs": len(row["samples"]),
                "samples": row["samples"],
            }
            for name, row in self.rows.items()
        }


def in_turn(run: int, variants: list) -> list:
    """The variants in one order on even runs and the other on odd ones."""
    return variants if run % 2 == 0 else variants[::-1]


@dataclass
class CopierFloors:
    """Templates and projects that show what Copier costs whatever the template does."""

    minimal: Path  # one question, one templated file
    minimal_project: Path  # rendered from it and committed
    verbatim: Path  # a default render's files, none templated
    verbatim_project: Path  # rendered from it and committed
    update_project: Path  # rendered from the template and committed


def set_up_copier_floors(template: Path, work: Path) -> CopierFloors:
    minimal = rendering.minimal_template(work / "minimal-template")
    update_project = rendering.committed_project(template, work / "update")
    verbatim = rendering.verbatim_template(update_project, work / "verbatim-template")
    return CopierFloors(
        minimal=minimal,
        minimal_project=rendering.committed_project(minimal, work / "minimal-update", ours=False),
        verbatim=verbatim,
        verbatim_project=rendering.committed_project(
            verbatim, work / "verbatim-update", ours=False
        ),
        update_project=update_project,
    )


def bench_copier(out: Samples, run: int, template: Path, work: Path, floors: CopierFloors) -> None:
    # The template has no tasks: a copy and an update are Copier's work alone, and Copier's
    # start (`copier --version`: its imports) is the floor under both.
    destination = work / f"copy-{run}"
    start = rendering.timed([*rendering.COPIER, "--version"])
    floor = rendering.timed(
        rendering.copy_command(floors.minimal, work / f"minimal-{run}", asks_python=False)
    )
    verbatim = rendering.timed(
        rendering.copy_command(floors.verbatim, work / f"verbatim-{run}", asks_python=False)
    )
    copy = rendering.timed(rendering.copy_command(template, destination))
    shutil.rmtree(destination)
    update_floor = rendering.timed_update(floors.minimal_project)
    update_verbatim = rendering.timed_update(floors.verbatim_project)
    update = rendering.timed_update(floors.update_project)
    out.add("copier --version (Copier's start alone)", "s", start)
    out.add("copier copy --defaults of a one-question, one-file template (Copier's floor)", "s",
            floor)  # fmt: skip
    out.add("copier copy --defaults of a default render's files, none templated", "s", verbatim)
    out.add("copier copy --defaults", "s", copy)
    out.add("copier update --defaults, no change, of the one-file template's project", "s",
            update_floor)  # fmt: skip
    out.add("copier update --defaults, no change, of the untemplated files' project", "s",
            update_verbatim)  # fmt: skip
    out.add("copier update --defaults, no change", "s", update)
    out.add("copier copy --defaults: the template's share (copy - copier --version)", "s",
            copy - start)  # fmt: skip
    out.add("copier copy --defaults: the template's share over Copier's floor", "s",
            copy - floor)  # fmt: skip
    out.add("copier copy --defaults / copier --version", "x", copy / start)
    out.add("copier update, no change / copier copy", "x", update / copy)
    out.add("Copier's floor: update / copy of the one-file template", "x", update_floor / floor)
    out.add("Copier's floor: update / copy of a default render's files, none templated", "x",
            update_verbatim / verbatim)  # fmt: skip
    out.add("Copier's floor: a default render's files, none templated / copier --version", "x",
            verbatim / start)  # fmt: skip


def bench_harness(out: Samples, run: int, template: Path, work: Path) -> None:
    for framework in in_turn(run, list(FRAMEWORKS)):
        destination = work / f"harness-{run}-{framework}"
        for step, seconds in rendering.harness_steps(template, destination, framework).items():
            out.add(f"harness, {framework}: {step}", "s", seconds)
        shutil.rmtree(destination)


VARIANTS = ("rendered", "bare with access log", "bare without access log")
# The rendered service with its traces sent to an OTLP endpoint (Sink); the other variants
# run it as it ships, with no collector set: traces off.
TRACED = "rendered, traces exported"
# The rendered service with its metrics off too (METRICS=false): everything it reports, off.
QUIET = "rendered, metrics off"
# The bare app with its access log and the settings the design asks every service to read
# (pydantic-settings, bare_apps.SETTINGS_SOURCE): the least a service that follows it costs.
SETTLED = "bare with pydantic-settings"


class Sink(Receiver):
    """An OTLP/HTTP endpoint that takes every batch of spans and keeps none: what exporting
    costs the service, without a collector's own work on the same two cores."""

    def receive(self, _path: str, _content_type: str, _body: bytes) -> tuple[int, str, bytes]:
        return 200, "application/x-protobuf", b""  # an empty ExportTraceServiceResponse


@dataclass
class Service:
    """A rendered project of one framework, and the bare app that runs from its venv."""

    framework: str
    project: Path
    bare_dir: Path
    route_dir: Path  # the rendered service's sitecustomize adding the test-only route
    traces_to: str  # the Sink's address

    def launch(self, variant: str, workers: int = 1, route: bool = False) -> serving.Launch:
        if variant in ("rendered", TRACED, QUIET):
            variables = {"PYTHONPATH": str(self.route_dir)} if route else {}
            if variant == TRACED:
                variables["OTEL_EXPORTER_OTLP_ENDPOINT"] = self.traces_to
            if variant == QUIET:
                variables["METRICS"] = "false"
            return serving.rendered(self.project, workers, **variables)
        with_log = variant in ("bare with access log", SETTLED)
        return serving.bare(self.project, self.bare_dir, workers, with_log, variant == SETTLED)


def bench_start(out: Samples, run: int, services: list[Service]) -> None:
    for service in services:
        seconds = {
            variant: serving.cold_start(service.launch(variant))
            for variant in in_turn(
                run, ["rendered", QUIET, TRACED, "bare with access log", SETTLED]
            )
        }
        name = f"cold start, {service.framework} (exec to first 200)"
        bare = seconds["bare with access log"]
        out.add(f"{name}: rendered", "s", seconds["rendered"])
        out.add(f"{name}: {QUIET}", "s", seconds[QUIET])
        out.add(f"{name}: {TRACED}", "s", seconds[TRACED])
        out.add(f"{name}: bare", "s", bare)
        out.add(f"{name}: {SETTLED}", "s", seconds[SETTLED])
        for variant in ("rendered", QUIET, TRACED, SETTLED):
            out.add(f"{name}: {variant}/bare", "x", seconds[variant] / bare)
        for variant in ("rendered", QUIET):
            out.add(f"{name}: {variant}/{SETTLED}", "x", seconds[variant] / seconds[SETTLED])


def loaded(
    launch: serving.Launch, path: str, args: argparse.Namespace
) -> tuple[dict[str, float], float, float]:
    """wrk on `path` of the started server, after a 1 s warm-up: wrk's result, the server's CPU
    seconds per request answered, and its peak RSS (MiB) after the load."""
    with serving.Running(launch) as server:
        url, pid = f"{server.launch.url}{path}", server.process.pid
        serving.wrk(url, 1, args.connections)  # warm-up
        before = serving.tree_status(pid)
        load = serving.wrk(url, args.duration, args.connections)
        after = serving.tree_status(pid)
    cpu = (after["cpu_seconds"] - before["cpu_seconds"]) / max(load["requests"], 1)
    return load, cpu, after["peak_rss_mib"]


def bench_throughput(
    out: Samples, run: int, services: list[Service], args: argparse.Namespace
) -> list[str]:
    """Requests per second on /healthz, the CPU time each took, and the peak RSS after the load;
    the notes of any errors."""
    notes = []
    for service in services:
        for workers in WORKERS:
            where = f"{service.framework}, {workers} worker{'s' if workers > 1 else ''}"
            rate, cpu, rss = {}, {}, {}
            for variant in in_turn(run, [*VARIANTS, QUIET, SETTLED]):
                load, cpu[variant], rss[variant] = loaded(
                    service.launch(variant, workers), "/healthz", args
                )
                rate[variant] = load["rate"]
                if load["errors"]:
                    notes.append(f"run {run + 1}, {where}, {variant}: {load['errors']} wrk errors")
            rendered = ("rendered", QUIET)
            for variant in (*VARIANTS, QUIET, SETTLED):
                out.add(f"throughput, {where}: {variant}", "req/s", rate[variant])
            for variant in rendered:
                for baseline in VARIANTS[1:]:
                    ratio = rate[variant] / rate[baseline]
                    out.add(f"throughput, {where}: {variant}/{baseline}", "x", ratio)
            for variant in (*VARIANTS, QUIET, SETTLED):
                out.add(f"server CPU per request, {where}: {variant}", "ms", cpu[variant] * 1000)
            for variant in rendered:
                ratio = cpu[variant] / cpu["bare with access log"]
                out.add(
                    f"server CPU per request, {where}: {variant}/bare with access log", "x", ratio
                )
            for variant in (*VARIANTS[:2], QUIET, SETTLED):
                out.add(f"peak RSS, {where}: {variant}", "MiB", rss[variant])
            for variant in (*rendered, SETTLED):
                ratio = rss[variant] / rss["bare with access log"]
                out.add(f"peak RSS, {where}: {variant}/bare with access log", "x", ratio)
            for variant in rendered:
                ratio = rss[variant] / rss[SETTLED]
                out.add(f"peak RSS, {where}: {variant}/{SETTLED}", "x", ratio)
    return notes


def bench_route(
    out: Samples, run: int, services: list[Service], args: argparse.Namespace
) -> list[str]:
    """Requests per second and CPU per request on a route the framework serves in both apps
    (the tests' /slow, its sleep 0 s), like for like: what the edge, the request id and the
    JSON access line add to a request of the app's own; and, traced, what its span and export
    add (the probes' paths are not traced, so /healthz would show nothing)."""
    notes = []
    variants = ["rendered", TRACED, "bare with access log"]
    for service in services:
        for workers in WORKERS:
            where = f"{service.framework}, {workers} worker{'s' if workers > 1 else ''}"
            rate, cpu = {}, {}
            for variant in in_turn(run, variants):
                load, cpu[variant], _rss = loaded(
                    service.launch(variant, workers, route=True), ROUTE, args
                )
                rate[variant] = load["rate"]
                if load["errors"] or not load["requests"]:
                    notes.append(
                        f"run {run + 1}, {where}, {ROUTE}, {variant}: {load['requests']} requests"
                        f" answered, {load['errors']} wrk errors"
                    )
            if not all(rate.values()):
                continue  # noted above: no ratio from a measurement that answered nothing
            name = f"framework route {ROUTE}, {where}"
            for variant in variants:
                out.add(f"throughput, {name}: {variant}", "req/s", rate[variant])
                out.add(f"server CPU per request, {name}: {variant}", "ms", cpu[variant] * 1000)
            bare = variants[2]
            for variant in variants[:2]:
                out.add(f"throughput, {name}: {variant}/bare", "x", rate[variant] / rate[bare])
                out.add(
                    f"server CPU per request, {name}: {variant}/bare", "x", cpu[variant] / cpu[bare]
                )
    return notes


def bench_shutdown(out: Samples, services: list[Service], in_flight: int) -> None:
    for service in services:
        # The template's tests' test-only /slow route (the template itself has none).
        slow_route = with_slow_route(service.project, service.framework, seconds=2)
        for workers in WORKERS:
            launch = serving.rendered(
                service.project, workers, PYTHONPATH=str(slow_route), SHUTDOWN_GRACE_SECONDS="10"
            )
            drained = serving.drain_on_sigterm(launch, in_flight)
            where = f"{service.framework}, {workers} worker{'s' if workers > 1 else ''}"
            name = f"SIGTERM, {in_flight} requests to a 2 s route in flight, {where}"
            out.add(f"{name}: completed with 200", "req", drained["completed"])
            out.add(f"{name}: seconds to exit", "s", drained["exit_seconds"])
            out.add(f"{name}: exit status", "", drained["status"])


def set_up_services(
    template: Path, work: Path, traces_to: str, frameworks: list[str]
) -> list[Service]:
    """Per framework: a rendered project, installed, and its bare app; each started once."""
    services = []
    for framework in frameworks:
        project = work / framework
        data = f"web_framework={framework}"
        rendering.run(rendering.copy_command(template, project, "--data", data))
        rendering.run(["uv", "sync", "--quiet"], project)  # makes the lock, as the README says
        route = SLOW_ROUTE[framework].replace("SECONDS", "0")
        service = Service(
            framework,
            project,
            write_bare_app(framework, work / f"bare-{framework}", route),
            with_slow_route(project, framework, seconds=0),
            traces_to,
        )
        for variant in (*VARIANTS[:2], TRACED):
            serving.cold_start(service.launch(variant))  # warm-up: bytecode, page cache
        services.append(service)
    return services


def machine() -> str:
    debian = Path("/etc/debian_version")
    system = f"Debian {debian.read_text().strip()}" if debian.exists() else platform.platform()
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {system}, "
        f"Python {platform.python_version()}"
    )


def markdown(table: dict[str, dict]) -> str:
    lines = [
        "| measure | median | min | max | unit | runs |",
        "| --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for name, row in table.items():
        numbers = " | ".join(
            f"{row[k]:.3g}" if row["unit"] != "req/s" else f"{row[k]:.0f}"
            for k in ("median", "min", "max")
        )
        lines.append(f"| {name} | {numbers} | {row['unit']} | {row['runs']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--duration", type=int, default=5, help="seconds of each wrk run")
    parser.add_argument("--connections", type=int, default=16, help="wrk's open connections")
    parser.add_argument("--in-flight", type=int, default=10, help="requests in flight at SIGTERM")
    parser.add_argument(
        "--suite-seconds",
        type=float,
        help="the whole test suite's wall time, measured elsewhere (CI), to record beside",
    )
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=SECTIONS)
    parser.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=list(FRAMEWORKS))
    args = parser.parse_args()
    rendering.prepare_environment()
    if {"throughput", "route"} & set(args.only):
        serving.ensure_wrk()
    loadavg_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    out, notes = Samples(), []
    sink = Sink()
    try:
        template = rendering.snapshot_template(work / "template")
        if "copier" in args.only:
            floors = set_up_copier_floors(template, work)
        needs_servers = {"start", "throughput", "route", "shutdown"} & set(args.only)
        traces_to = f"http://127.0.0.1:{sink.port}"
        services = (
            set_up_services(template, work, traces_to, args.frameworks) if needs_servers else []
        )
        for run in range(args.runs):
            print(f"run {run + 1} of {args.runs}", flush=True)
            if "copier" in args.only:
                bench_copier(out, run, template, work, floors)
            if "harness" in args.only:
                bench_harness(out, run, template, work)
            if "start" in args.only:
                bench_start(out, run, services)
            if "throughput" in args.only:
                notes += bench_throughput(out, run, services, args)
            if "route" in args.only:
                notes += bench_route(out, run, services, args)
            if "shutdown" in args.only:
                bench_shutdown(out, services, args.in_flight)
    finally:
        sink.close()
        shutil.rmtree(work, ignore_errors=True)

    table = out.table()
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_before_after": [loadavg_before[0], os.getloadavg()[0]],
        "arguments": vars(args),
        "suite_seconds": args.suite_seconds,
        "results": table,
        "notes": notes,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"\n{report['date']}  {report['machine']}  "
        f"load average {loadavg_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after\n"
    )
    print(markdown(table))
    if args.suite_seconds is not None:
        print(f"\nwhole test suite (given): {args.suite_seconds:.0f} s")
    for note in notes:
        print(f"note: {note}")
    print(f"\nwritten: {(RESULTS / 'bench.json').relative_to(rendering.ROOT)}")


if __name__ == "__main__":
    main()
