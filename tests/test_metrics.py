"""Prometheus metrics on the running web process of every code combination, served by one
server process and by two: the counts are the requests sent, whichever process served each, and
a flood of unknown paths adds no label value."""

import json
import os
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import load
from helpers.processes import Running, app_env, procfile, run_process, running_web

# prometheus_client's variable, which the web command sets for its server processes.
DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
WEB_THREADS = 8  # the default; each server process's database pool holds as many

Samples = dict[tuple[str, frozenset], float]

# Unknown paths, one after another: were each a label value, the scrape would hold as many more.
FLOOD = 50


@pytest.fixture
def env(project: Path, service_env: dict[str, str]) -> dict[str, str]:
    return app_env(project, service_env)


def scrape(web: Running) -> Samples:
    with urllib.request.urlopen(f"{web.base_url}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def counted(samples: Samples, route: str, method: str, status: int) -> float:
    labels = frozenset({"route": route, "method": method, "status": str(status)}.items())
    return samples.get(("http_requests_total", labels), 0.0)


def post(web: Running, path: str, body: object) -> int:
    """The status, once the whole answer is in: the service counts a request before its last
    bytes go out, not before its first (urlopen returns on the head, which a server may send
    ahead of the body: a2wsgi passes Flask's on from another thread)."""
    request = urllib.request.Request(
        web.base_url + path, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
        return response.status


def descendants(pid: int) -> list[int]:
    """The processes under this one (the server's), from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def shared_directory(pid: int) -> Path:
    """The metrics directory the server's processes were started with, as this process sees it:
    through the process's root where it has one of its own (a Python the host lacks)."""
    for process in descendants(pid):
        try:
            variables = Path(f"/proc/{process}/environ").read_bytes().split(b"\0")
            root = os.readlink(f"/proc/{process}/root")
        except OSError:
            continue
        for variable in variables:
            name, _, value = variable.decode().partition("=")
            if name == DIRECTORY:
                return Path(value) if root == "/" else Path(f"/proc/{process}/root", value[1:])
    raise AssertionError(f"no server process has {DIRECTORY}")


def counting_processes(directory: Path) -> set[str]:
    """The server processes that have counted a request: each keeps its counters in a file of
    its own there, `counter_<pid>.db`, from its first."""
    return {path.stem.rsplit("_", 1)[1] for path in directory.glob("counter_*.db")}


@pytest.mark.parametrize("processes", [1, 2])
def test_metrics_count_each_request_sent_by_route_template_whichever_process_served_it(
    code_combination: dict[str, str], project: Path, env: dict[str, str], processes: int, tmp_path
) -> None:
    if code_combination["database"] != "none":
        assert run_process(project, "release", env).returncode == 0
    sent: dict[tuple[str, str, int], int] = {}
    # More log lines than a pipe holds: to a file (load.logging_to).
    command = load.logging_to(tmp_path / "web.log", procfile(project)["web"])
    with running_web(project, {**env, "WEB_CONCURRENCY": str(processes)}, command) as web:
        # running_web's own /healthz, until one was answered.
        sent["/healthz", "GET", 200] = 1
        if processes > 1:
            # running_web returns once one process answers; the others may be starting still.
            # Each on a connection of its own, until every process has served (and counted) one.
            directory = shared_directory(web.process.pid)
            deadline = time.monotonic() + 30
            while len(counting_processes(directory)) < processes:
                assert time.monotonic() < deadline, (
                    f"after {sent['/healthz', 'GET', 200]} requests in 30 s, counted by "
                    f"{counting_processes(directory)} only"
                )
                assert web.get("/healthz")[0] == 200
                sent["/healthz", "GET", 200] += 1
                time.sleep(0.05)
        # Each on a connection of its own, so the server's processes share them out.
        for _ in range(40):
            assert web.get("/healthz")[0] == 200
        sent["/healthz", "GET", 200] += 40
        if code_combination["database"] != "none":
            for number in range(5):
                assert post(web, "/notes", {"text": f"note {number}"}) == 201
            sent["/notes", "POST", 201] = 5
        if code_combination["worker"] != "none":
            for number in range(5):
                assert post(web, "/jobs/example", {"message": f"job {number}"}) == 202
            sent["/jobs/example", "POST", 202] = 5
        assert web.get(f"/{uuid.uuid4()}")[0] == 404
        sent["(unrouted)", "GET", 404] = 1
        timed_key = ("/healthz", "GET", 200)
        scrapes = [scrape(web) for _ in range(6)]
        for number, samples in enumerate(scrapes):
            for (route, method, status), count in sent.items():
                assert counted(samples, route, method, status) == count, (route, number)
            assert counted(samples, "/metrics", "GET", 200) == number
            timed = frozenset({"route": "/healthz", "method": "GET"}.items())
            assert samples["http_request_duration_seconds_count", timed] == sent[timed_key]
            # Only the scrape itself is in flight, in whichever process answers it.
            assert samples["http_requests_in_flight", frozenset()] == 1
            if (
                code_combination["database"] != "none"
                and code_combination["web_framework"] != "django"
            ):
                # Each server process's pool, added up over the processes (Django has none).
                pool = samples["db_pool_connections_size", frozenset()]
                assert pool == processes * WEB_THREADS
        # The service's own series, the same with one process or many: none of those
        # prometheus_client adds in memory alone (process_*, python_*, *_created).
        names = {name for name, _ in scrapes[-1]}
        assert all(
            name.startswith(("http_", "db_pool_")) and not name.endswith("_created")
            for name in names
        ), sorted(names)
        # A flood of unknown paths is counted under one route value: no label value is added.
        labels_before = set(scrapes[-1])
        for _ in range(FLOOD):
            assert web.get(f"/{uuid.uuid4().hex}/{uuid.uuid4().hex}")[0] == 404
        flooded = scrape(web)
        assert counted(flooded, "(unrouted)", "GET", 404) == FLOOD + 1
        assert set(flooded) == labels_before
        if processes > 1:
            writers = counting_processes(directory)
            assert len(writers) == processes, f"requests counted by {writers} only"
        assert web.stop() == 0, web.stderr
    if processes > 1 and directory.is_relative_to("/tmp"):  # not in a root of its own
        assert not directory.exists(), "the metrics directory outlived the server"


@pytest.mark.pairwise
def test_with_metrics_off_metrics_is_an_unknown_path_and_requests_are_answered(
    project: Path, env: dict[str, str]
) -> None:
    with running_web(project, {**env, "METRICS": "false"}) as web:
        assert web.get("/metrics")[0] == 404
        assert web.get("/healthz") == (200, {"status": "ok"})
        assert web.get("/readyz")[0] == 200
    assert web.stderr == ""
