"""Faults around a running web process: slow clients, a busy or frozen database, Redis down.

Each test injects one fault into the Procfile's web process, checks that it still answers
within its bound (liveness at once, errors as JSON 503 by the request's deadline), undoes the
fault, and checks that the same process recovers. The seconds measured are recorded.
"""

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from helpers.faults import (
    Answer,
    SlowClients,
    dedicated_redis,
    frozen_postgres,
    json_error_problems,
    post_path,
    probe,
    process_tree,
    request,
    seconds_of,
    wait_for_status,
)
from helpers.processes import app_env, run_process, running_web
from helpers.servers import start_postgres

# The service's behaviour: the fewest code combinations that meet every pair of answers, the
# Pythons spread over them (conftest.pairwise_over_pythons); install, lint, own tests and probes
# run on every code combination and Python.
pytestmark = pytest.mark.pairwise

# Liveness must answer this fast whatever the clients and the backing services do.
HEALTHZ_BOUND = 1.0
# Small deadlines keep each test short; the mechanism is the same at any length.
REQUEST_TIMEOUT = 2
SLACK = 1.0  # beyond the deadline, for the 503 to be written and reach the client
VALID_JOB = {"message": "fault test", "seconds": 0}


def fault_env(project: Path, service_env: dict[str, str], **overrides: str) -> dict[str, str]:
    # A short grace period bounds the stop at the end, with requests still hanging on a fault.
    bounds = {"REQUEST_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT), "SHUTDOWN_GRACE_SECONDS": "2"}
    return app_env(project, service_env, **{**bounds, **overrides})


def released(project: Path, env: dict[str, str]) -> None:
    """The release process migrated the database, so the notes table exists."""
    release = run_process(project, "release", env)
    assert release.returncode == 0, release.stderr


def slow_answers(answers: list[Answer], bound: float) -> list[str]:
    """Each answer that is not a 200 within `bound` seconds, described."""
    return [f"#{i}: {a}" for i, a in enumerate(answers) if a.status != 200 or a.seconds > bound]


def test_healthz_answers_200_within_1s_while_64_slow_clients_hold_connections(
    code_combination, project: Path, service_env: dict[str, str], record_property
) -> None:
    # The default deadline: a small one would answer the trickled bodies (408) mid-test.
    env = fault_env(project, service_env, REQUEST_TIMEOUT_SECONDS="10")
    slow_body = post_path(code_combination)
    with (
        running_web(project, env) as web,
        SlowClients(web.base_url, header_clients=32, body_clients=32, body_path=slow_body) as slow,
    ):
        time.sleep(1.0)  # two trickles: the server has taken up every connection
        answers = probe(web.base_url, "/healthz", times=6, timeout=HEALTHZ_BOUND + 1)
        held = slow.waiting()
    record_property("healthz_seconds", seconds_of(answers))
    record_property("slow_clients_held_after_probes", held)
    assert not slow_answers(answers, HEALTHZ_BOUND), (
        f"/healthz with 64 slow clients open: {slow_answers(answers, HEALTHZ_BOUND)}"
    )
    assert held == 64, f"only {held} slow clients were still held open: the test is void"


# Enough requests to take every app thread and database connection, and to queue behind them.
BLOCKED_REQUESTS = 50
WEB_THREADS = 4
# The lock holder waits this long for the blocked requests, so their deadline must end them.
BLOCKED_CLIENT_TIMEOUT = REQUEST_TIMEOUT + SLACK + 1


def lock_waiters(lock: psycopg.Connection) -> int:
    """Sessions of this database waiting for a lock on the notes table."""
    return lock.execute(
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
        " WHERE c.relname = 'notes' AND NOT l.granted"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchone()[0]


@pytest.mark.combinations(database="postgresql")
def test_healthz_answers_and_blocked_requests_get_json_503_by_their_deadline_while_every_database_connection_waits_on_a_lock(  # noqa: E501 - the name says what it checks
    code_combination, project: Path, service_env: dict[str, str], record_property
) -> None:
    env = fault_env(project, service_env, WEB_THREADS=str(WEB_THREADS))
    released(project, env)
    with running_web(project, env) as web:
        with (
            psycopg.connect(env["DATABASE_URL"], connect_timeout=5) as lock,
            ThreadPoolExecutor(BLOCKED_REQUESTS) as clients,
        ):
            try:
                # In an open transaction until the rollback: every read of notes waits on it.
                lock.execute("LOCK TABLE notes IN ACCESS EXCLUSIVE MODE")
                blocked = [
                    clients.submit(
                        request, web.base_url, "GET", "/notes", timeout=BLOCKED_CLIENT_TIMEOUT
                    )
                    for _ in range(BLOCKED_REQUESTS)
                ]
                deadline = time.monotonic() + 5
                while (waiting := lock_waiters(lock)) < WEB_THREADS:
                    assert time.monotonic() < deadline, f"only {waiting} queries wait; void test"
                    time.sleep(0.05)
                healthz = probe(web.base_url, "/healthz", times=6, timeout=HEALTHZ_BOUND + 1)
                # Each is bounded by its client timeout; the lock is held until all have ended.
                answers = [future.result() for future in blocked]
            finally:
                lock.rollback()
        recovered = wait_for_status(web.base_url, "GET", "/notes", 200, within=5, timeout=3)
    record_property("queries_waiting_on_the_lock_at_least", waiting)
    record_property("healthz_seconds", seconds_of(healthz))
    record_property("blocked_statuses", sorted({str(a.status) for a in answers}))
    record_property("blocked_slowest_seconds", round(max(a.seconds for a in answers), 3))
    assert not slow_answers(healthz, HEALTHZ_BOUND), (
        f"/healthz with every connection busy: {slow_answers(healthz, HEALTHZ_BOUND)}"
    )
    late = {
        i: problems
        for i, a in enumerate(answers)
        if (problems := json_error_problems(a, 503, REQUEST_TIMEOUT + SLACK))
    }
    assert not late, f"{len(late)} of {BLOCKED_REQUESTS} blocked GET /notes: {late}"
    assert recovered.status == 200, f"GET /notes after the lock was released: {recovered}"


# A frozen server answers nothing, so only the client's own bounds end a wait.
RECOVERY_BOUND = 10


@pytest.mark.combinations(database="postgresql")
def test_frozen_postgres_gives_readyz_503_in_2s_and_notes_json_503_by_the_deadline_then_recovers_in_the_same_process(  # noqa: E501 - the name says what it checks
    code_combination, project: Path, service_env: dict[str, str], record_property
) -> None:
    database = start_postgres()  # the test's own: freezing it disturbs no other test
    try:
        env = fault_env(project, service_env, DATABASE_URL=database.create_database("app"))
        released(project, env)
        with running_web(project, env) as web:
            # The pool holds a live connection when the database freezes, as in production.
            # The first request may pass the deadline on a busy machine: it loads what the
            # framework and the database layer import on first use, and caches their bytecode.
            first = wait_for_status(web.base_url, "GET", "/notes", 200, within=30, timeout=10)
            assert first.status == 200, f"GET /notes before the freeze: {first}"
            assert request(web.base_url, "GET", "/readyz").status == 200
            processes_before = process_tree(web.process.pid)
            with frozen_postgres(database):
                readyz = request(web.base_url, "GET", "/readyz", timeout=2 + SLACK)
                notes = request(web.base_url, "GET", "/notes", timeout=REQUEST_TIMEOUT + 2)
            ready_again = wait_for_status(
                web.base_url, "GET", "/readyz", 200, within=RECOVERY_BOUND, timeout=3
            )
            notes_again = wait_for_status(
                web.base_url, "GET", "/notes", 200, within=RECOVERY_BOUND, timeout=3
            )
            restarted = processes_before - process_tree(web.process.pid)
    finally:
        database.remove()
    record_property("readyz_frozen", str(readyz))
    record_property("notes_frozen", str(notes))
    record_property("readyz_after_resume", str(ready_again))
    record_property("notes_after_resume", str(notes_again))
    assert readyz.status == 503 and readyz.seconds <= 2.0, f"/readyz, database frozen: {readyz}"
    problems = json_error_problems(notes, 503, REQUEST_TIMEOUT + SLACK)
    assert not problems, f"GET /notes, database frozen: {problems}"
    assert ready_again.status == 200, f"/readyz after SIGCONT: {ready_again}"
    assert notes_again.status == 200, f"GET /notes after SIGCONT: {notes_again}"
    assert not restarted, f"processes of the web process gone (restarted?): {restarted}"


@pytest.mark.combinations(worker="celery")
def test_with_redis_down_readyz_and_notes_stay_200_and_enqueueing_gives_json_503_by_the_deadline(
    code_combination, project: Path, service_env: dict[str, str], record_property
) -> None:
    with dedicated_redis() as redis:
        env = fault_env(project, service_env, REDIS_URL=redis.allocate("faults"))
        if code_combination["database"] != "none":
            released(project, env)
        with running_web(project, env) as web:
            # The client holds a live connection when Redis goes, as in production.
            enqueued = request(web.base_url, "POST", "/jobs/example", json_body=VALID_JOB)
            assert enqueued.status == 202, f"enqueueing with Redis up: {enqueued}"
            redis.stop()
            readyz = request(web.base_url, "GET", "/readyz", timeout=3)
            has_notes = code_combination["database"] != "none"
            notes = request(web.base_url, "GET", "/notes", timeout=3) if has_notes else None
            job = request(
                web.base_url,
                "POST",
                "/jobs/example",
                json_body=VALID_JOB,
                timeout=REQUEST_TIMEOUT + 2,
            )
    record_property("readyz_redis_down", str(readyz))
    record_property("notes_redis_down", str(notes))
    record_property("enqueue_redis_down", str(job))
    assert readyz.status == 200, f"/readyz with Redis down (it needs only the database): {readyz}"
    if notes is not None:
        assert notes.status == 200, f"GET /notes with Redis down: {notes}"
    problems = json_error_problems(job, 503, REQUEST_TIMEOUT + SLACK)
    assert not problems, f"POST /jobs/example with Redis down: {problems}"
