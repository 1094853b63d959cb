"""Run a rendered project's processes as a platform would: the Procfile's command, env only."""

import contextlib
import json
import os
import shlex
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from helpers.artifacts import env_example_names
from helpers.python_root import in_project
from helpers.servers import free_port

SECRET_KEY = "s" * 40
# The variables without a default a service may read besides its backing services' URLs, as the
# tests give them: the host names are those the tests reach it by.
REQUIRED = {"SECRET_KEY": SECRET_KEY, "ALLOWED_HOSTS": "127.0.0.1,localhost"}


def procfile(project: Path) -> dict[str, list[str]]:
    """Each process type of the Procfile with its command as an argument list."""
    commands = {}
    for line in (project / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            commands[name.strip()] = shlex.split(command)
    return commands


def app_env(project: Path, service_env: dict[str, str], **overrides: str) -> dict[str, str]:
    """What the service needs to start: its secret and its host names where it reads them
    (.env.example names each variable it reads), its backing services, and any overrides."""
    read = env_example_names(project)
    required = {name: value for name, value in REQUIRED.items() if name in read}
    return {**required, **service_env, **overrides}


def worker_env(variables: dict[str, str]) -> dict[str, str]:
    """A worker's variables, with a free port for its metrics unless they name one: workers of
    tests running side by side would all take the default."""
    return {"WORKER_METRICS_PORT": str(free_port()), **variables}


def process_env(project: Path, variables: dict[str, str]) -> dict[str, str]:
    """Only the given variables, and a PATH that leads to the project's environment first."""
    return {"PATH": f"{project / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}", **variables}


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, object]:
    """The status and the body, parsed as JSON where it is JSON."""
    try:
        request = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(request, timeout=10) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    try:
        return status, json.loads(body)
    except json.JSONDecodeError:
        return status, body.decode(errors="replace")


@dataclass
class Running:
    process: subprocess.Popen
    base_url: str
    started_in: float  # seconds from exec to the first answer on /healthz
    stdout: str = ""  # filled in when the process has ended
    stderr: str = ""

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, object]:
        return http_get(self.base_url + path, headers)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as a platform sends it; the exit status, once the process exits by itself.

        One that is still there after `timeout` is killed with all it started, and fails.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.stdout, self.stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.stdout, self.stderr = self.process.communicate()
            raise AssertionError(f"still running {timeout} s after SIGTERM") from None
        return self.process.returncode


@contextmanager
def running_web(
    project: Path, variables: dict[str, str], command: list[str] | None = None, port: int = 0
) -> Iterator[Running]:
    """The Procfile's web process on a free port, answering /healthz; stopped with SIGTERM.

    Only the given variables, PORT and PATH are in its environment; `port`, where the variables
    give it another way (PORT_FILE), is the port it must then serve on.
    """
    if port:
        env = process_env(project, variables)
    else:
        port = free_port()
        env = process_env(project, {**variables, "PORT": str(port)})
    start = time.perf_counter()
    process = subprocess.Popen(  # in a session of its own, to clean up
        in_project(command or procfile(project)["web"], project), cwd=project, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    running = Running(process, f"http://127.0.0.1:{port}", 0.0)
    try:
        deadline = start + 15
        while True:
            try:
                urllib.request.urlopen(f"{running.base_url}/healthz", timeout=1).close()
                break
            except OSError:
                if process.poll() is not None:
                    raise AssertionError(
                        f"web exited with {process.returncode}:\n{process.communicate()[1]}"
                    ) from None
                if time.perf_counter() > deadline:
                    raise AssertionError("web did not answer /healthz within 15 s") from None
                time.sleep(0.01)
        running.started_in = time.perf_counter() - start
        yield running
    finally:
        try:
            if process.poll() is None:
                running.stop()
        finally:
            # Whatever it left behind (a child a shell script orphaned, say) goes too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def run_one_off(
    project: Path, command: list[str], variables: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run a command (a release, an admin command) to its end, with only these variables.

    One still running after `timeout` fails (a server that should have refused to start).
    """
    try:
        return subprocess.run(
            in_project(command, project), cwd=project, capture_output=True, text=True,
            timeout=timeout, env=process_env(project, variables),
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{shlex.join(command)} still running after {timeout} s") from None


def run_process(
    project: Path, process_type: str, variables: dict[str, str]
) -> subprocess.CompletedProcess:
    """Run a one-off process type of the Procfile (release, say) to its end."""
    return run_one_off(project, procfile(project)[process_type], variables)


class Watched:
    """A long-running process of the Procfile whose stdout lines are collected as they come."""

    def __init__(self, project: Path, process_type: str, variables: dict[str, str]) -> None:
        self.lines: list[str] = []
        if process_type == "worker":
            variables = worker_env(variables)
        self.process = subprocess.Popen(
            in_project(procfile(project)[process_type], project), cwd=project, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=process_env(project, variables),
        )  # fmt: skip
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for_line(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no line with {text!r}; got:\n{''.join(self.lines)}")
            time.sleep(0.05)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then wait for the process to exit by itself; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=timeout)
        self.reader.join(timeout=5)
        return self.process.returncode
