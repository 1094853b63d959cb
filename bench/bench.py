"""Measure what the template costs its users on this machine; print a table, write JSON.

    uv run python bench/bench.py [--runs N]

Medians over repeated runs, the compared variants interleaved run by run.
"""

import argparse
import json
import os
import platform
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SECRET = "b" * 40


def timed(command: list[str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def copier_copy(destination: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "copier", "copy", "--defaults", "--trust", "--quiet",
            *extra, str(ROOT), str(destination)]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cold_start(project: Path) -> float:
    """Seconds from exec of the Procfile's web command to the first 200 on /healthz."""
    web = next(line.split(":", 1)[1] for line in (project / "Procfile").read_text().splitlines()
               if line.startswith("web:"))  # fmt: skip
    port = free_port()
    env = {"PATH": f"{project / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "SECRET_KEY": SECRET, "PORT": str(port)}  # fmt: skip
    start = time.perf_counter()
    process = subprocess.Popen(shlex.split(web), env=env, cwd=project, stdout=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    return time.perf_counter() - start
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError(f"web exited with {process.returncode}") from None
                time.sleep(0.005)
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    samples: dict[str, list[float]] = {}

    def sample(name: str, seconds: float) -> None:
        samples.setdefault(name, []).append(seconds)

    for run in range(runs):
        for label, extra in (("copier copy --defaults --skip-tasks", ["--skip-tasks"]),
                             ("copier copy --defaults (with uv lock)", [])):  # fmt: skip
            destination = work / f"copy-{run}-{len(extra)}"
            sample(label, timed(copier_copy(destination, *extra)))
            shutil.rmtree(destination)

    projects = {}
    for framework in ("fastapi", "flask"):
        project = work / framework
        subprocess.run(copier_copy(project, "--data", f"web_framework={framework}"), check=True)
        subprocess.run(["uv", "sync", "--locked", "--quiet"], cwd=project, check=True)
        projects[framework] = project
    for _ in range(runs):
        for framework, project in projects.items():
            sample(f"cold start, {framework} (exec to first 200)", cold_start(project))

    table = {name: {"median_s": round(statistics.median(v), 3), "runs": len(v)}
             for name, v in samples.items()}  # fmt: skip
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "results": table,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['date']}  {report['machine']}")
    for name, row in table.items():
        print(f"{row['median_s']:>8.3f} s  {name}  (median of {row['runs']})")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
