"""The event stream: one JSON object per line on stdout, for the app, the server and libraries.

Standard-library records (the server's own) and structlog events go through one formatter, so
every line has the same keys; each request's access line has them too (`access_log`).
LOG_FORMAT=console is for people at a terminal.
"""

import json
import logging
import sys
from collections.abc import Callable

import structlog
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from .asgi import Scope
from .settings import Settings
from .tracing import add_trace_ids, tracing_on

# The access line's logger and message, as uvicorn's own access log wrote them: a query on
# either keeps working.
ACCESS_LOGGER = "uvicorn.access"
ACCESS_MESSAGE = '%s - "%s %s HTTP/%s" %d'
TIMESTAMP = structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp")
# The name of the handler every line goes through.
STDOUT = "stdout"


def configure_logging(settings: Settings) -> None:
    """Send every log record to stdout in one format."""
    shared_processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        *([add_trace_ids] if tracing_on(settings) else []),
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        TIMESTAMP,
        drop_positional_args,
    ]
    final_processors: list[structlog.typing.Processor]
    if settings.log_format == "json":
        final_processors = [
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(),
        ]
    else:
        final_processors = [structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())]

    handler = logging.StreamHandler(sys.stdout)
    handler.set_name(STDOUT)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared_processors,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *final_processors,
            ],
            # A record's arguments reach the server processors as `positional_args`.
            pass_foreign_args=True,
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(settings.log_level)
    # Warnings (deprecations, a library's complaints) join the same stream instead of stderr.
    logging.captureWarnings(True)

    structlog.configure(
        processors=[*shared_processors, wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def access_log(settings: Settings) -> Callable[[Scope, int], None] | None:
    """What writes a request's access line when its answer begins (the edge calls it), or None
    where LOG_LEVEL leaves info lines out. Called after `configure_logging`.

    In JSON, the line is one object built here with the keys the chain gives every line, and
    the request's method, path and status: the chain cost a fifth of a request's CPU. At a
    terminal, it goes through the chain as any record.
    """
    if logging.getLevelNamesMapping()[settings.log_level] > logging.INFO:
        return None
    logger = logging.getLogger(ACCESS_LOGGER)

    def through_chain(scope: Scope, status: int) -> None:
        client, method, path, version = request_fields(scope)
        logger.info(ACCESS_MESSAGE, client, method, path, version, status)

    if settings.log_format != "json":
        return through_chain
    handler = logging.getHandlerByName(STDOUT)
    if not isinstance(handler, logging.StreamHandler):  # logging left as it was (a test's)
        return through_chain
    stream = handler.stream
    trace_ids = add_trace_ids if tracing_on(settings) else None

    def as_json(scope: Scope, status: int) -> None:
        client, method, path, version = request_fields(scope)
        event = structlog.contextvars.get_contextvars()  # the request id
        if trace_ids is not None:
            trace_ids(logger, "info", event)
        event["level"] = "info"
        event["logger"] = ACCESS_LOGGER
        TIMESTAMP(logger, "info", event)
        event["method"] = method
        event["path"] = path
        event["status"] = status
        event["message"] = ACCESS_MESSAGE % (client, method, path, version, status)
        line = json.dumps(event) + "\n"
        handler.acquire()  # the handler's lock: a line whole among other threads' lines
        try:
            stream.write(line)
            stream.flush()
        finally:
            handler.release()

    return as_json


def request_fields(scope: Scope) -> tuple[str, str, str, str]:
    """The client, method, path (with the query) and HTTP version, as uvicorn wrote them."""
    return (
        get_client_addr(scope),  # type: ignore[arg-type]
        scope["method"],
        get_path_with_query_string(scope),  # type: ignore[arg-type]
        scope["http_version"],
    )


def drop_positional_args(
    _logger: object, _method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """The message already holds a record's arguments; they are not logged twice."""
    event.pop("positional_args", None)
    return event


def wrap_for_formatter(
    logger: logging.Logger, name: str, event: structlog.typing.EventDict
) -> tuple[tuple[object, ...], dict[str, object]]:
    """structlog's hand-over to the standard library, with the event's error on the record too:
    other handlers (Sentry's, error_reports.py) see it; the JSON line renders it once."""
    args, kwargs = structlog.stdlib.ProcessorFormatter.wrap_for_formatter(logger, name, event)
    if event.get("exc_info"):
        return args, {**kwargs, "exc_info": event["exc_info"]}
    return args, dict(kwargs)
