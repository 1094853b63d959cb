"""Error reports to Sentry on every code combination, received by a local Sentry project
(receivers.py): an unexpected error is one event with its request id and release and no secret;
with no SENTRY_DSN (and no OpenTelemetry collector, and METRICS=false), none of their libraries
is even loaded."""

import json
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from helpers.probes import package_of, with_failing_route
from helpers.processes import Watched, app_env, run_one_off, run_process, running_web
from helpers.receivers import SENTRY_KEY, SentryProject
from helpers.worker_faults import runs_jobs

# Values no event may hold: the test's secrets, and what a client sends to authenticate.
CANARY = "canary-" + uuid.uuid4().hex
RELEASE = "0123abc"


@pytest.fixture
def sentry() -> Iterator[SentryProject]:
    project = SentryProject()
    yield project
    project.close()


def secrets(env: dict[str, str]) -> dict[str, str]:
    """The service's secrets, each holding the canary (PostgreSQL here trusts any password)."""
    changed = {}
    if "SECRET_KEY" in env:
        changed["SECRET_KEY"] = f"{CANARY}-secret-key-at-least-32-characters"
    if "DATABASE_URL" in env:
        scheme, _, place = env["DATABASE_URL"].partition("://")
        user, _, host = place.partition("@")
        changed["DATABASE_URL"] = f"{scheme}://{user}:{CANARY}-db@{host}"
    return changed


def test_an_unexpected_error_is_one_event_with_its_request_id_and_release_and_no_secret(
    code_combination: dict[str, str], project: Path, service_env: dict[str, str], sentry
) -> None:
    env = app_env(project, service_env)
    env = {
        **env,
        **secrets(env),
        "SENTRY_DSN": sentry.dsn,
        "SENTRY_RELEASE": RELEASE,
        "PYTHONPATH": str(with_failing_route(project, code_combination["web_framework"])),
    }
    request_id = f"report-{uuid.uuid4().hex[:8]}"
    with running_web(project, env) as web:
        request = urllib.request.Request(
            f"{web.base_url}/fail",
            headers={
                "X-Request-ID": request_id,
                "Authorization": f"Bearer {CANARY}-token",
                "Cookie": f"session={CANARY}-cookie",
            },
        )
        with pytest.raises(urllib.error.HTTPError) as answered:
            urllib.request.urlopen(request, timeout=10)
        assert answered.value.code == 500
        events = sentry.wait_for_events(1)
    assert len(events) == 1, f"{len(events)} events for one error"
    (event,) = events
    assert event["tags"]["request_id"] == request_id
    assert event["release"] == RELEASE
    (error,) = [e for e in event["exception"]["values"] if e["type"] == "RuntimeError"]
    # The error's message quoted SENTRY_DSN (probes.FAILING_ROUTE): it is scrubbed.
    assert "[Filtered]" in error["value"], error["value"]
    sent = b"".join(sentry.envelopes).decode()
    assert CANARY not in sent, "a secret reached Sentry"
    assert SENTRY_KEY not in json.dumps(event), "the DSN reached Sentry in an event"


def test_with_metrics_error_reports_and_traces_off_the_web_process_loads_none_of_their_libraries(
    project: Path, service_env: dict[str, str]
) -> None:
    """The web process's app, built as each server process builds it (web.serve_app), with
    METRICS=false and no DSN or collector: no prometheus_client, no Sentry SDK, no OpenTelemetry
    tracer provider, exporter or instrumentation. (FastAPI imports OpenTelemetry's API, a no-op
    without a provider; redis-py, the SDK's metrics module.)"""
    code = (
        f"import sys; from {package_of(project)}.web import serve_app; serve_app(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sentry_sdk', "
        "'prometheus_client') or m.startswith(('opentelemetry.sdk.trace', "
        "'opentelemetry.exporter', 'opentelemetry.instrumentation'))))"
    )
    env = app_env(project, service_env, METRICS="false")
    result = run_one_off(project, ["python", "-c", code], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert result.stderr == ""


@pytest.mark.combinations(worker="celery")
def test_a_job_that_raises_is_one_event_from_the_worker_with_its_release_and_no_secret(
    project: Path, service_env: dict[str, str], sentry
) -> None:
    env = app_env(project, service_env)
    env = {**env, **secrets(env), "SENTRY_DSN": sentry.dsn, "SENTRY_RELEASE": RELEASE}
    worker = Watched(project, "worker", env)
    try:
        # Started: it runs a job (which raises nothing, so sends no event).
        assert runs_jobs(project, env, worker.process, timeout=60), "".join(worker.lines)
        # Arguments the example job does not take: it raises a TypeError in the pool's process.
        code = (
            f"from {package_of(project)}.jobs import create_queue; "
            f"from {package_of(project)}.settings import load_settings; "
            "create_queue(load_settings()).send_task('example', args=[])"
        )
        sent = run_one_off(project, ["python", "-c", code], env)
        assert sent.returncode == 0, sent.stderr
        events = sentry.wait_for_events(1)
    finally:
        worker.stop()
    assert len(events) == 1, f"{len(events)} events for one failed job"
    (event,) = events
    assert event["release"] == RELEASE
    assert [e["type"] for e in event["exception"]["values"]][-1] == "TypeError"
    assert CANARY not in b"".join(sentry.envelopes).decode(), "a secret reached Sentry"
    assert SENTRY_KEY not in json.dumps(event), "the DSN reached Sentry in an event"


# A migrations' history the release cannot go on from, by framework.
ALEMBIC_AHEAD = (
    "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);"
    "INSERT INTO alembic_version VALUES ('f00dfeedf00d')",
)
HISTORY_THAT_CRASHES = {
    "fastapi": ALEMBIC_AHEAD,
    "flask": ALEMBIC_AHEAD,
    "django": (
        "CREATE TABLE django_migrations (id serial PRIMARY KEY, app varchar(255),"
        " name varchar(255), applied timestamptz);"
        "INSERT INTO django_migrations (app, name, applied)"
        " VALUES ('admin', '0001_initial', now())",
    ),
}


@pytest.mark.pairwise
@pytest.mark.combinations(database="postgresql")
def test_a_release_that_crashes_is_one_event_with_its_release_and_no_secret(
    code_combination: dict[str, str], project: Path, service_env: dict[str, str], sentry, postgres
) -> None:
    """An admin one-off reports as the web and worker do. Its crash here is a history the
    migrations cannot go on from: with Alembic, a rollback's release (the database at a
    revision that a newer image's release made, which this image does not have); with Django,
    which passes over migrations it does not have, a database restored in part (a migration
    recorded as applied without the one it depends on)."""
    url = postgres.create_database(f"ahead_{uuid.uuid4().hex[:8]}")
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(*HISTORY_THAT_CRASHES[code_combination["web_framework"]])
    env = {**app_env(project, service_env), "DATABASE_URL": url}
    env = {**env, **secrets(env), "SENTRY_DSN": sentry.dsn, "SENTRY_RELEASE": RELEASE}
    released = run_process(project, "release", env)
    assert released.returncode != 0, released.stdout
    events = sentry.wait_for_events(1)
    assert len(events) == 1, f"{len(events)} events for one crash: {released.stderr}"
    (event,) = events
    assert event["release"] == RELEASE
    (error,) = event["exception"]["values"][-1:]
    # The crash the release printed, whatever words its library gives it (Alembic's, Django's).
    assert error["value"].strip() and error["value"] in released.stderr, (error, released.stderr)
    assert CANARY not in b"".join(sentry.envelopes).decode(), "a secret reached Sentry"
    assert SENTRY_KEY not in json.dumps(event), "the DSN reached Sentry in an event"


@pytest.mark.pairwise
def test_clients_gone_before_their_answers_make_no_error_line_and_no_event(
    code_combination: dict[str, str], project: Path, service_env: dict[str, str], sentry
) -> None:
    """Pipelined requests on connections their client has half-closed: their answers cannot be
    sent, which is the client's doing, not the service's. Then one real error, which is the one
    ERROR line and the one event: the reports were on throughout."""
    env = {
        **app_env(project, service_env),
        "SENTRY_DSN": sentry.dsn,
        "PYTHONPATH": str(with_failing_route(project, code_combination["web_framework"])),
    }
    failing = f"report-{uuid.uuid4().hex[:8]}"
    with running_web(project, env) as web:
        address = ("127.0.0.1", int(web.base_url.rsplit(":", 1)[1]))
        for _ in range(5):
            with socket.create_connection(address, timeout=10) as connection:
                connection.sendall(b"GET /no-such-path HTTP/1.1\r\nHost: localhost\r\n\r\n" * 5)
                connection.shutdown(socket.SHUT_WR)
                while connection.recv(65536):  # until the service closes its side
                    pass
        request = urllib.request.Request(f"{web.base_url}/fail", headers={"X-Request-ID": failing})
        with pytest.raises(urllib.error.HTTPError) as answered:
            urllib.request.urlopen(request, timeout=10)
        assert answered.value.code == 500
        events = sentry.wait_for_events(1)
        assert web.stop() == 0, web.stderr
    reported = [event.get("tags", {}).get("request_id") for event in events]
    assert reported == [failing], [event.get("exception") for event in events]
    errors = [
        line for line in map(json.loads, web.stdout.splitlines())
        if line["level"] in ("error", "critical")
    ]  # fmt: skip
    assert [line.get("request_id") for line in errors] == [failing], errors
    assert web.stderr == ""
