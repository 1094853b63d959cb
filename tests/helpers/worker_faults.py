"""The example job and a Celery worker to break: its own process group, both streams kept.

A platform's kill -9 (OOM, node loss) takes the whole worker, main process and pool children at
once; the worker runs in a session of its own so that a test can do the same with killpg.
"""

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from redis import Redis

from helpers.matrix import IDENTITY
from helpers.processes import process_env, procfile, run_one_off, worker_env
from helpers.python_root import in_project

PACKAGE = IDENTITY["package_name"]
# Where the example job records the message of each run (the rendered jobs.EXAMPLE_RESULTS).
RESULTS = f"{PACKAGE}:example-job:done"


def results(redis_url: str) -> list[str]:
    with Redis.from_url(redis_url) as redis:
        return [item.decode() for item in redis.lrange(RESULTS, 0, -1)]


def wait_for_result(redis_url: str, message: str, timeout: float) -> bool:
    """Whether the example job recorded `message` within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while message not in results(redis_url):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def enqueue(project: Path, env: dict[str, str], message: str, seconds: float) -> str:
    """Put the example job on the queue as the admin command does; the job's id."""
    command = ["python", "-m", f"{PACKAGE}.manage", "enqueue-example", message,
               f"--seconds={seconds}"]  # fmt: skip
    enqueued = run_one_off(project, command, env)
    assert enqueued.returncode == 0, enqueued.stderr
    job = re.search(r"enqueued job (\S+)", enqueued.stdout)
    assert job, f"no job id in: {enqueued.stdout!r}"
    return job.group(1)


def runs_jobs(project: Path, env: dict[str, str], worker: subprocess.Popen, timeout: float) -> bool:
    """Whether the worker, started already, runs a job within `timeout` seconds: an example job
    put on the queue for it (with `env`), recorded. The service's own sign that a worker has
    started; Celery's "ready" line says so in Celery's words, which a release may change."""
    message = f"warm-up-{uuid.uuid4()}"
    enqueue(project, env, message, seconds=0)
    deadline = time.monotonic() + timeout
    while message not in results(env["REDIS_URL"]):
        if worker.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def received(job: str) -> Callable[[str], bool]:
    """Matches the worker's first line naming this job: Celery logs a job's id first as it
    takes the job off the queue. Its words for that are Celery's, so only the id is matched."""
    return lambda line: job in line


def not_json_objects(lines: list[str]) -> list[str]:
    """The lines that are not one JSON object each."""
    bad = []
    for line in lines:
        try:
            parsed = json.loads(line)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            bad.append(line)
    return bad


class Worker:
    """The Procfile's worker, in a session of its own, every line of both streams timed."""

    def __init__(self, project: Path, variables: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            in_project(procfile(project)["worker"], project), cwd=project, text=True,
            env=process_env(project, worker_env(variables)), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        self.stdout: list[tuple[float, str]] = []
        self.stderr: list[tuple[float, str]] = []
        self.readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in ((self.process.stdout, self.stdout),
                                  (self.process.stderr, self.stderr))
        ]  # fmt: skip
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream, lines: list[tuple[float, str]]) -> None:
        for line in stream:
            lines.append((time.monotonic(), line))

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *_exc: object) -> None:
        # Whatever is left of it (a pool child whose parent was killed, say) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        for reader in self.readers:
            reader.join(timeout=5)

    def output(self) -> str:
        lines = [f"stdout: {line}" for _, line in self.stdout]
        return "".join(lines + [f"stderr: {line}" for _, line in self.stderr])

    def wait_for(self, matches: Callable[[str], bool], timeout: float) -> float | None:
        """When (time.monotonic()) a stdout line matching came, or None after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            for seen, line in list(self.stdout):
                if matches(line):
                    return seen
            if self.process.poll() is not None or time.monotonic() > deadline:
                return None
            time.sleep(0.02)

    def pool_processes(self) -> list[int]:
        """The pids of the processes the worker's main process started (its job pool)."""
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    # The parent pid is the 2nd field after the parenthesised command name.
                    stat = (entry / "stat").read_text()
                    if int(stat.rpartition(")")[2].split()[1]) == self.process.pid:
                        children.append(int(entry.name))
        return children

    def kill_everything(self) -> None:
        """kill -9 of the main process and its pool at once, as the OOM killer or a lost node."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def exit_status(self, timeout: float) -> int | None:
        """The exit status once the process ends by itself, or None if it runs past `timeout`."""
        try:
            status = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        for reader in self.readers:
            reader.join(timeout=5)
        return status

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, as a platform sends it; the exit status, or None if it outlives `timeout`."""
        self.process.send_signal(signal.SIGTERM)
        return self.exit_status(timeout)
