"""The baselines: a bare app with one /healthz route, on the same framework and server, and
the same test-only route as the rendered service is given (a route its framework serves).

Each runs from the rendered project's venv (so the same package versions), from a temp folder,
started by uvicorn's own CLI with its defaults, except the workers and the access log, on or
off. Flask and Django run on a2wsgi's 8 threads, as the rendered service does; the bare Django
app has no middleware and no installed app, the least Django serves a route with.
"""

from pathlib import Path

MODULE = "bare_app"
# The bare app, and the settings every service that follows the design reads at its start
# (pydantic-settings, which the design asks for: one class of a few fields, from the
# environment). The rendered service pays for this too; the bare app alone does not.
SETTINGS_MODULE = "bare_app_with_settings"
SETTINGS_SOURCE = f"""\
from pydantic_settings import BaseSettings

from {MODULE} import asgi_app


class Settings(BaseSettings):
    port: int = 8000
    web_concurrency: int = 1
    log_level: str = "INFO"
    debug: bool = False


settings = Settings()
__all__ = ["asgi_app"]
"""

SOURCES = {
    "fastapi": """\
from fastapi import FastAPI

app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}

ROUTE
asgi_app = app
""",
    "flask": """\
from a2wsgi import WSGIMiddleware
from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")

ROUTE
asgi_app = WSGIMiddleware(app, workers=8)
""",
    "django": """\
import django
from a2wsgi import WSGIMiddleware
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.http import JsonResponse
from django.urls import path

settings.configure(
    ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], MIDDLEWARE=[], INSTALLED_APPS=[], SECRET_KEY="b"
)
django.setup(set_prefix=False)


def healthz(request):
    return JsonResponse({"status": "ok"})


urlpatterns = [path("healthz", healthz)]
ROUTE
asgi_app = WSGIMiddleware(WSGIHandler(), workers=8)
""",
}


def write_bare_app(framework: str, folder: Path, route: str) -> Path:
    """The folder holding the bare app's module, with `route` (code adding a route to `app`),
    and the one that adds the settings to it, to run the server from."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{MODULE}.py").write_text(SOURCES[framework].replace("ROUTE", route))
    (folder / f"{SETTINGS_MODULE}.py").write_text(SETTINGS_SOURCE)
    return folder


def bare_command(port: int, workers: int, access_log: bool, settings: bool = False) -> list[str]:
    bind = ["--host", "0.0.0.0", "--port", str(port)]
    log = [] if access_log else ["--no-access-log"]  # uvicorn logs access by default
    module = SETTINGS_MODULE if settings else MODULE
    return ["uvicorn", *bind, "--workers", str(workers), *log, f"{module}:asgi_app"]
