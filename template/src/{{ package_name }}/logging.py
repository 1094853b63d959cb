"""The event stream: one JSON object per line on stdout, for the app, the server and libraries.

Standard-library records (the server's own and its access log) and structlog events go through
one formatter, so every line has the same keys. LOG_FORMAT=console is for people at a terminal.
"""

import functools
import logging
import sys
from collections.abc import Sequence

import structlog

from .settings import Settings
from .tracing import add_trace_ids, tracing_on


def configure_logging(
    settings: Settings, server_processors: Sequence[structlog.typing.Processor] = ()
) -> None:
    """Send every log record to stdout in one format.

    `server_processors` lift a server's access-log fields out of its records into the event.
    """
    shared_processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        *([add_trace_ids] if tracing_on(settings) else []),
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        *server_processors,
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
    handler.setFormatter(
        LineFormatter(
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
    # No line shows a record's caller, thread or process: not gathered, as the logging HOWTO's
    # "Optimization" advises (a tenth of an access line's cost, paid on every request).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False

    structlog.configure(
        processors=[*shared_processors, wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
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


class LineFormatter(structlog.stdlib.ProcessorFormatter):
    """structlog's formatter, without its copy of a record the processors only read.

    structlog copies each record before it runs the processors, so that the handlers after this
    one see the record as it came. A record from outside structlog with no error or stack to
    render (the server's access lines: most of the stream) is only read by the processors here,
    so it goes through them as it is: the same line, a fifth of a request's logging time less.
    """

    def format(self, record: logging.LogRecord) -> str:
        if hasattr(record, "_logger") or record.exc_info or record.stack_info:
            return super().format(record)
        method = record.levelname.lower()
        event: structlog.typing.EventDict = {
            "event": record.getMessage(),
            "_record": record,
            "_from_structlog": False,
        }
        if self.pass_foreign_args:
            event["positional_args"] = record.args
        for processor in self.chain:
            event = processor(self.logger, method, event)  # type: ignore[assignment]
        return str(event)

    @functools.cached_property
    def chain(self) -> tuple[structlog.typing.Processor, ...]:
        """What structlog runs on a foreign record: the pre-chain, then the processors."""
        return (*(self.foreign_pre_chain or ()), *self.processors)
