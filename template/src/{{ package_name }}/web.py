"""The web process: validate the settings, then serve on 0.0.0.0:$PORT with uvicorn.

Run by the Procfile's `web` line. Settings are checked here, before the port is bound, so a
configuration error ends the process with one message and no traceback.
"""

from __future__ import annotations

import signal
import sys
from typing import TYPE_CHECKING

import uvicorn

from . import metrics_directory
from .error_reports import start_error_reports
from .logging import configure_logging
from .request_tracing import trace_requests
from .settings import load_settings
from .started import freeze_startup_objects
from .tracing import start_tracing

if TYPE_CHECKING:
    from structlog.typing import EventDict, WrappedLogger

    from .asgi import ASGIApp


def access_fields(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    """Lift the request's fields out of a uvicorn access record into the JSON line."""
    record = event.get("_record")
    if record is not None and record.name == "uvicorn.access":
        _client, method, path, _http_version, status = event["positional_args"]
        event.update(method=method, path=path, status=status)
    return event


def serve_app() -> ASGIApp:
    """The app of one server process; each worker process builds its own."""
    # Imported once the settings are valid (main): a configuration error stops the process in
    # a fifth of the time, before the framework and the libraries load.
    from .app import create_app

    settings = load_settings()
    configure_logging(settings, server_processors=[access_fields])
    start_error_reports(settings)
    traced = start_tracing(settings)  # before the app's database engine and queue are made
    edge = create_app(settings)
    served = trace_requests(edge) if traced else edge
    freeze_startup_objects()
    return served


def drained(_signal: int, _frame: object) -> None:
    """uvicorn raises SIGTERM again once it has drained: that stop is a clean one, status 0."""
    sys.exit(0)


def main() -> None:
    settings = load_settings()
    configure_logging(settings, server_processors=[access_fields])
    signal.signal(signal.SIGTERM, drained)
    if settings.metrics and settings.web_concurrency > 1:
        # Before the server's processes start: they all write their numbers there (metrics.py).
        # One process keeps them in memory: no file to write, no pid to check, on each request.
        metrics_directory.share()
    uvicorn.run(
        f"{__name__}:serve_app",
        factory=True,
        host="0.0.0.0",  # noqa: S104 - a twelve-factor process binds every interface of its host
        port=settings.port,
        workers=settings.web_concurrency,
        # Logging is ours: uvicorn's records propagate to the service's JSON handler.
        log_config=None,
        # On SIGTERM uvicorn stops accepting and lets in-flight requests finish this long.
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        server_header=False,
        # The client's address and the scheme come from X-Forwarded-For and -Proto when these
        # proxies send them (FORWARDED_ALLOW_IPS), from the connection otherwise.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        # uvicorn's HTTP/1.1 protocol, with the request head bounded in size, count and time.
        http=f"{__package__}.http_head:BoundedHeadProtocol",
    )


if __name__ == "__main__":
    main()
