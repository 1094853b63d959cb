"""OpenTelemetry traces on every code combination, received by a local OTLP/HTTP collector
(receivers.py): the requests a caller sends in its trace come back in that trace, each named by
its route, with the SQL statements it ran, the job it enqueued and that job's run in the worker;
the log lines written for them carry the trace's id; the probes send nothing. A frozen collector
delays neither the requests nor the process's exit past its bound. With no collector set, the
SDK is not even loaded (test_error_reports.py)."""

import json
import socket
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from helpers.processes import Watched, app_env, run_process, running_web
from helpers.receivers import OtlpCollector, Span
from helpers.worker_faults import Worker, enqueue, runs_jobs, wait_for_result


@pytest.fixture
def collector() -> Iterator[OtlpCollector]:
    receiver = OtlpCollector()
    yield receiver
    receiver.close()


def send(url: str, headers: dict[str, str], body: object = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={**headers, "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def one(spans: list[Span], name: str) -> Span:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, f"{len(found)} spans named {name!r} in {spans}"
    return found[0]


def log_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_callers_trace_holds_each_request_with_its_sql_job_redis_spans_and_logs_a_release_its_own(
    code_combination: dict[str, str], project: Path, service_env: dict[str, str], collector
) -> None:
    """Each request of a caller's trace is a span of it, named by its route, with its SQL, the
    job it enqueues, the job's run and the job's Redis commands; the log lines written in them
    carry their ids. The release run before, a one-off, is one trace of its own."""
    database = code_combination["database"] == "postgresql"
    worker = code_combination["worker"] == "celery"
    trace_id, caller = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    # The caller's own span, as a client or a proxy in front of the service sends it.
    headers = {"traceparent": f"00-{trace_id}-{caller}-01"}
    env = {
        **app_env(project, service_env),
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # milliseconds: spans sent as they end, near enough
    }
    # The requests sent, by the path asked for, with their status and the span name expected.
    requests = {"/no-such-path": (None, 404, "GET")}
    if database:
        assert run_process(project, "release", env).returncode == 0
        requests["/notes"] = ({"text": "traced"}, 201, "POST /notes")
    if worker:
        requests["/jobs/example"] = ({"message": "traced"}, 202, "POST /jobs/example")

    def complete(spans: list[Span]) -> bool:
        names = {span.name for span in spans}
        wanted = {name for _body, _status, name in requests.values()}
        if database:
            wanted.add("admin migrate")
        if worker:
            wanted |= {"run/example", "RPUSH"}
        return wanted <= names

    with ExitStack() as stack:
        # The worker takes the job whenever it has started: the wait for spans includes its start.
        jobs = Watched(project, "worker", env) if worker else None
        if jobs is not None:
            stack.callback(jobs.stop)
        web = stack.enter_context(running_web(project, env))
        # Readiness asks every backing service (SELECT 1, PING): no span, no trace of its own.
        assert web.get("/readyz")[0] == 200
        for path, (body, status, _name) in requests.items():
            assert send(web.base_url + path, headers, body) == status, path
        spans = collector.wait_for_spans(complete, timeout=60)
    assert complete(spans), f"spans received: {[span.name for span in spans]}"

    # The release, a one-off, is one trace of its own: its run, and each statement in it.
    released = [span for span in spans if span.trace_id != trace_id]
    spans = [span for span in spans if span.trace_id == trace_id]
    if database:
        migrate = one(released, "admin migrate")
        assert migrate.parent_span_id == ""
        assert {span.trace_id for span in released} == {migrate.trace_id}
        assert len(released) > 1, "the migration's statements sent no span"
        statements = [span for span in released if span is not migrate]
        assert {span.parent_span_id for span in statements} == {migrate.span_id}
    else:
        assert released == [], f"spans outside the caller's trace: {released}"
    service = tomllib.loads((project / "pyproject.toml").read_text())["project"]["name"]
    assert {span.service for span in spans} == {service}
    served = {path: one(spans, name) for path, (_body, _status, name) in requests.items()}
    for path, span in served.items():
        assert span.parent_span_id == caller, path
        assert span.attributes.get("http.route") == (None if path == "/no-such-path" else path)

    if database:
        inserts = [span for span in spans if span.name == "INSERT"]
        assert [span.parent_span_id for span in inserts] == [served["/notes"].span_id]
        assert inserts[0].attributes["db.system"] == "postgresql"
    if worker:
        enqueued = one(spans, "apply_async/example")
        run = one(spans, "run/example")
        assert enqueued.parent_span_id == served["/jobs/example"].span_id
        assert run.parent_span_id == enqueued.span_id
        assert one(spans, "RPUSH").parent_span_id == run.span_id
        done = [
            line for line in log_lines("".join(jobs.lines)) if line["message"] == "example job done"
        ]
        assert [(line.get("trace_id"), line.get("span_id")) for line in done] == [
            (trace_id, run.span_id)
        ]

    # The access lines: those with the request's fields the service lifts out of the server's.
    access = [line for line in log_lines(web.stdout) if {"method", "path", "status"} <= line.keys()]
    for path, span in served.items():
        (line,) = [line for line in access if line["path"] == path]
        assert (line.get("trace_id"), line.get("span_id")) == (trace_id, span.span_id), path
    (probe,) = [line for line in access if line["path"] == "/readyz"]
    assert "trace_id" not in probe


@pytest.mark.pairwise
@pytest.mark.combinations(worker="celery")
def test_an_admin_one_off_is_one_trace_with_the_job_it_enqueues_and_the_jobs_run(
    project: Path, service_env: dict[str, str], collector
) -> None:
    message = f"one-off-{uuid.uuid4()}"
    env = {
        **app_env(project, service_env),
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }

    def complete(spans: list[Span]) -> bool:
        return {"admin enqueue-example", "run/example", "RPUSH"} <= {span.name for span in spans}

    with Worker(project, env) as worker:
        enqueue(project, env, message, seconds=0)
        # The worker's start included: it takes the job once it has started.
        assert wait_for_result(env["REDIS_URL"], message, timeout=60), worker.output()
        spans = collector.wait_for_spans(complete)
        worker.stop()
    assert complete(spans), f"spans received: {[span.name for span in spans]}"
    one_off = one(spans, "admin enqueue-example")
    assert one_off.parent_span_id == ""
    assert {span.trace_id for span in spans} == {one_off.trace_id}, "more than one trace"
    enqueued = one(spans, "apply_async/example")
    assert enqueued.parent_span_id == one_off.span_id
    assert one(spans, "run/example").parent_span_id == enqueued.span_id


@pytest.mark.pairwise
def test_with_its_collector_frozen_the_web_process_answers_and_stops_within_its_export_bound(
    project: Path, service_env: dict[str, str]
) -> None:
    """A collector that takes connections and never answers (a frozen process; the exporter's
    own retries would run for 10 s): requests are answered as before, and SIGTERM ends the
    process after the 2 s the service gives its last spans (tracing.EXIT_EXPORT_SECONDS)."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as frozen:  # never accepts
        env = {
            **app_env(project, service_env),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{frozen.getsockname()[1]}",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        }
        with running_web(project, env) as web:
            started = time.perf_counter()
            for _ in range(5):
                assert send(web.base_url + "/no-such-path", {}) == 404
            answered_in = time.perf_counter() - started
            time.sleep(0.3)  # an export has begun and hangs
            stopping = time.perf_counter()
            assert web.stop(timeout=30) == 0
            stopped_in = time.perf_counter() - stopping
    assert answered_in < 2, f"5 requests took {answered_in:.1f} s with the collector frozen"
    assert stopped_in < 6, f"{stopped_in:.1f} s from SIGTERM to exit with the collector frozen"
    assert web.stderr == ""


@pytest.mark.pairwise
@pytest.mark.combinations(worker="celery")
def test_with_its_collector_frozen_the_worker_runs_jobs_and_stops_within_its_export_bound(
    project: Path, service_env: dict[str, str]
) -> None:
    """The same for the worker, whose pool processes hold the jobs' spans: a job runs at once,
    and SIGTERM ends the worker within its own stop and the 2 s its pool processes give their
    last spans (`worker_process_shutdown`; they end without exit handlers)."""
    message = f"frozen-{uuid.uuid4()}"
    with socket.create_server(("127.0.0.1", 0), backlog=64) as frozen:  # never accepts
        env = {
            **app_env(project, service_env),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{frozen.getsockname()[1]}",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        }
        # Enqueued by one-offs that send no spans: their own exit would wait on the frozen
        # collector too (2 s), and the worker is what is measured here.
        quiet = app_env(project, service_env)
        with Worker(project, env) as worker:
            # Started: a first job run (its spans' export hangs from then on).
            assert runs_jobs(project, quiet, worker.process, timeout=60), worker.output()
            started = time.perf_counter()
            enqueue(project, quiet, message, seconds=0)
            ran = wait_for_result(env["REDIS_URL"], message, timeout=30)
            ran_in = time.perf_counter() - started
            time.sleep(0.3)  # the job's spans are on their way, and the export hangs
            stopping = time.perf_counter()
            status = worker.stop(timeout=30)
            stopped_in = time.perf_counter() - stopping
    assert ran, worker.output()
    assert ran_in < 5, f"the job took {ran_in:.1f} s with the collector frozen"
    assert status == 0, worker.output()
    # Measured: 3.6 s (its stop, 1.6 s idle, and the 2 s); 11 s without the bound.
    assert stopped_in < 8, f"{stopped_in:.1f} s from SIGTERM to exit: {worker.output()}"
