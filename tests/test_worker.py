"""IX. Disposability of the worker: SIGTERM mid-job loses no job, against a real Redis."""

import time
import uuid
from pathlib import Path

import pytest
from conftest import IDENTITY
from processes import Watched, app_env, run_one_off
from redis import Redis

PACKAGE = IDENTITY["package_name"]
# Where the example job records the message of each run (the rendered jobs.EXAMPLE_RESULTS).
RESULTS = f"{PACKAGE}:example-job:done"


def results(redis_url: str) -> list[str]:
    with Redis.from_url(redis_url) as redis:
        return [item.decode() for item in redis.lrange(RESULTS, 0, -1)]


def enqueue(project: Path, env: dict[str, str], message: str, seconds: float) -> None:
    command = [
        "python",
        "-m",
        f"{PACKAGE}.admin",
        "enqueue-example",
        message,
        f"--seconds={seconds}",
    ]
    enqueued = run_one_off(project, command, env)
    assert enqueued.returncode == 0, enqueued.stderr


@pytest.fixture
def env(project: Path, service_env: dict[str, str]) -> dict[str, str]:
    # A short grace period keeps the test short; the mechanism is the same at any length.
    return app_env(project, service_env, SHUTDOWN_GRACE_SECONDS="2")


@pytest.mark.combinations(worker="celery")
def test_a_job_within_the_grace_period_finishes_before_the_worker_exits(
    combination, project: Path, env: dict[str, str]
) -> None:
    message = f"short-{uuid.uuid4()}"
    worker = Watched(project, "worker", env)
    try:
        worker.wait_for_line("ready")
        enqueue(project, env, message, seconds=1)
        worker.wait_for_line("received")
    finally:
        status = worker.stop()
    assert message in results(env["REDIS_URL"])
    assert status == 0, "".join(worker.lines)


@pytest.mark.combinations(worker="celery")
def test_a_job_cut_off_by_shutdown_goes_back_to_the_queue_and_runs_on_the_next_worker(
    combination, project: Path, env: dict[str, str]
) -> None:
    message = f"long-{uuid.uuid4()}"
    first = Watched(project, "worker", env)
    try:
        first.wait_for_line("ready")
        enqueue(project, env, message, seconds=6)
        first.wait_for_line("received")
        time.sleep(0.5)
    finally:
        started = time.monotonic()
        first.stop()
    assert time.monotonic() - started < 10, "the worker did not stop within its grace period"
    assert message not in results(env["REDIS_URL"]), "the job was not cut off; test is void"

    second = Watched(project, "worker", env)
    try:
        deadline = time.monotonic() + 30
        while message not in results(env["REDIS_URL"]):
            assert time.monotonic() < deadline, "the cut-off job was lost:\n" + "".join(
                second.lines
            )
            time.sleep(0.2)
    finally:
        second.stop()
