"""The baselines: a bare app with one /healthz route, on the same framework and server.

Each runs from the rendered project's venv (so the same package versions), from a temp folder,
started by its server's own CLI with that server's defaults, except the workers, the threads of
gunicorn's gthread worker (8, as the rendered service has) and the access log, on or off.
"""

from pathlib import Path

MODULE = "bare_app"

SOURCES = {
    "fastapi": """\
from fastapi import FastAPI

app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
""",
    "flask": """\
from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")
""",
}


def write_bare_app(framework: str, folder: Path) -> Path:
    """The folder holding the bare app's module, to run the server from."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{MODULE}.py").write_text(SOURCES[framework])
    return folder


def bare_command(framework: str, port: int, workers: int, access_log: bool) -> list[str]:
    bind = ["--host", "0.0.0.0", "--port", str(port)]
    if framework == "fastapi":
        log = [] if access_log else ["--no-access-log"]  # uvicorn logs access by default
        return ["uvicorn", *bind, "--workers", str(workers), *log, f"{MODULE}:app"]
    log = ["--access-logfile", "-"] if access_log else []  # gunicorn's format, when asked for
    return [
        "gunicorn",
        "--bind",
        f"0.0.0.0:{port}",
        "--workers",
        str(workers),
        "-k",
        "gthread",
        "--threads",
        "8",
        *log,
        f"{MODULE}:app",
    ]
