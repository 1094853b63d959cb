"""The web process as the Procfile starts it: configured by its environment alone."""

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent


def procfile_command(process_type: str) -> list[str]:
    for line in (PROJECT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process_type:
            return shlex.split(command)
    raise AssertionError(f"the Procfile has no {process_type} process")


def environment(**variables: str) -> dict[str, str]:
    """Only what the process is given: its variables, and a PATH that leads to this venv."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    return {"PATH": path, **variables}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def assert_refused_naming(
    result: subprocess.CompletedProcess[str], required: Iterable[str], *bad: str
) -> None:
    """A process stopped at start-up by its configuration, as every one of the service's is:
    a non-zero exit and one message naming each required variable unset and each bad one."""
    assert result.returncode != 0
    for variable in required:
        assert f"{variable}: is required but not set" in result.stderr
    for variable in bad:
        assert variable in result.stderr
    assert "Traceback" not in result.stderr


# Well under a second when idle; the bound is for a machine busy with other work (CI).
def wait_until_serving(process: subprocess.Popen[str], url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"web process exited with {process.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@contextmanager
def serving(
    required_env: dict[str, str], **variables: str
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The web process with these settings besides the required ones, its output discarded:
    the process and its port, once it answers."""
    port = free_port()
    process = subprocess.Popen(
        procfile_command("web"),
        env=environment(**required_env, **variables, PORT=str(port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_until_serving(process, f"http://127.0.0.1:{port}/healthz")
        yield process, port
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


@pytest.fixture
def web(required_env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    process = subprocess.Popen(
        procfile_command("web"),
        env=environment(**required_env, PORT=str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, f"{base}/healthz")
        yield process, base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_serves_on_port_and_logs_json_lines_with_the_request_id(web) -> None:
    process, base = web
    # Forwarded as https by a trusted proxy (127.0.0.1, by default); TLS_IN_FRONT is off.
    headers = {"X-Request-ID": "trace-7", "X-Forwarded-Proto": "https"}
    request = urllib.request.Request(f"{base}/healthz", headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
        assert response.headers["X-Request-ID"] == "trace-7"
        assert "Strict-Transport-Security" not in response.headers
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)
    events = [json.loads(line) for line in stdout.splitlines()]
    assert events, "the web process logged nothing"
    for event in events:
        assert {"timestamp", "level", "logger", "message"} <= event.keys()
    assert any(event.get("request_id") == "trace-7" for event in events), stdout
    assert stderr == ""


def test_missing_or_bad_config_stops_startup_with_one_message(required_env) -> None:
    result = subprocess.run(
        procfile_command("web"),
        env=environment(PORT=str(free_port()), LOG_FORMAT="xml", FORWARDED_ALLOW_IPS="10.0.0.300"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert_refused_naming(result, required_env, "LOG_FORMAT", "FORWARDED_ALLOW_IPS")
    assert result.stdout == ""
