"""Running web servers for the bench: start to the first 200, load with wrk, memory, SIGTERM."""

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bare_apps import bare_command

SECRET = "b" * 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def venv_path(project: Path) -> str:
    return f"{project / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"


@dataclass
class Launch:
    """A server command with its folder, its whole environment and the port it will bind."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    ready_path: str = "/healthz"  # answered once the server serves
    stop_signal: int = signal.SIGTERM  # as a platform stops it

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def procfile_web(project: Path) -> list[str]:
    for line in (project / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == "web":
            return shlex.split(command)
    raise RuntimeError(f"{project}/Procfile has no web line")


def rendered(project: Path, workers: int = 1, **variables: str) -> Launch:
    """The Procfile's web command, configured by its environment alone, as a platform runs it."""
    launch = Launch(procfile_web(project), project, {})
    launch.env = {
        "PATH": venv_path(project),
        "SECRET_KEY": SECRET,
        "ALLOWED_HOSTS": "127.0.0.1",
        "PORT": str(launch.port),
        "WEB_CONCURRENCY": str(workers),
        **variables,
    }
    return launch


def bare(
    project: Path, app_dir: Path, workers: int, access_log: bool, settings: bool = False
) -> Launch:
    launch = Launch([], app_dir, {"PATH": venv_path(project)})
    launch.argv = bare_command(launch.port, workers, access_log, settings)
    return launch


class Running:
    """A started server that answers its ready path; stdout (its logs) goes to /dev/null."""

    def __init__(self, launch: Launch, timeout: float = 30) -> None:
        self.launch = launch
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - open while it runs
        start = time.perf_counter()
        self.process = subprocess.Popen(
            launch.argv,
            cwd=launch.cwd,
            env=launch.env,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
            start_new_session=True,  # its own group, to clean up after
        )
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"{launch.url}{launch.ready_path}", timeout=1):
                        break
                except OSError:
                    if self.process.poll() is not None or time.perf_counter() - start > timeout:
                        raise RuntimeError(
                            f"{shlex.join(launch.argv)} did not serve:\n{self.errors()}"
                        ) from None
                    time.sleep(0.005)
        except BaseException:
            self.close()
            raise
        self.started_in = time.perf_counter() - start

    def errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-3000:]

    def stop(self, timeout: float = 30) -> int:
        """The launch's stop signal (SIGTERM, as a platform sends it); the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(self.launch.stop_signal)
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                self.stop()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.stderr.close()

    def __enter__(self) -> "Running":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def cold_start(launch: Launch) -> float:
    """Seconds from exec to the first 200 on its ready path."""
    with Running(launch) as server:
        return server.started_in


def ensure_wrk() -> str:
    """wrk's path, installed from Debian's packages if missing."""
    if not shutil.which("wrk"):
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        install = [*sudo, "apt-get", "install", "-y", "-q", "wrk"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run([*sudo, "apt-get", "update", "-q"], env=env, check=True)
            subprocess.run(install, env=env, check=True, capture_output=True)
    return shutil.which("wrk") or "wrk"


def wrk(url: str, seconds: int, connections: int) -> dict[str, float]:
    """Requests per second, requests served, and errors (non-2xx answers, socket errors)."""
    run = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip

    def counts(pattern: str) -> int:
        found = re.search(pattern, run.stdout)
        return sum(int(n) for n in found.groups()) if found else 0

    return {
        "rate": float(re.search(r"Requests/sec:\s*([\d.]+)", run.stdout)[1]),
        "requests": counts(r"(\d+) requests in"),
        "errors": counts(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
        + counts(r"Non-2xx or 3xx responses: (\d+)"),
    }


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # The field after the command's closing parenthesis: state, then the parent's pid.
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    tree = [pid]
    for member in tree:
        tree.extend(child for child, parent in parents.items() if parent == member)
    return tree


def tree_status(pid: int) -> dict[str, float]:
    """Over the process tree: peak resident memory (VmHWM) in MiB, and CPU seconds used."""
    kib = ticks = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            kib += int(re.search(r"VmHWM:\s*(\d+)", Path(f"/proc/{member}/status").read_text())[1])
            # utime and stime, the 12th and 13th fields after the command's closing parenthesis.
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return {"peak_rss_mib": kib / 1024, "cpu_seconds": ticks / os.sysconf("SC_CLK_TCK")}


def drain_on_sigterm(launch: Launch, in_flight: int, settle: float = 0.7) -> dict[str, float]:
    """Requests to /slow in flight, then SIGTERM: how many got a 200, seconds to exit, status."""
    statuses: list[object] = []

    def request_slow() -> None:
        try:
            with urllib.request.urlopen(f"{launch.url}/slow", timeout=60) as response:
                statuses.append(response.status)
        except OSError as error:
            statuses.append(repr(error))

    with Running(launch) as server:
        threads = [threading.Thread(target=request_slow) for _ in range(in_flight)]
        for thread in threads:
            thread.start()
        time.sleep(settle)  # every request has reached the server by now
        stopped_at = time.perf_counter()
        status = server.stop(timeout=60)
        exit_seconds = time.perf_counter() - stopped_at
        for thread in threads:
            thread.join(timeout=60)
    return {"completed": statuses.count(200), "exit_seconds": exit_seconds, "status": status}
