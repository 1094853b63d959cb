"""What every admin command runs in, on every framework: a one-off process of the service."""

from collections.abc import Iterator
from contextlib import contextmanager

from .error_reports import start_error_reports
from .logging import configure_logging
from .settings import Settings, load_settings
from .started import freeze_startup_objects
from .tracing import one_off_span, start_tracing


@contextmanager
def one_off(command: str) -> Iterator[Settings]:
    """The settings, read as the command runs (bad config stops it with one message naming every
    variable at fault), with logging, error reports and traces started as the web process starts
    them; the command's span around it; the start-up's objects frozen at its end."""
    settings = load_settings()
    configure_logging(settings)
    # A one-off is one of the service's processes: its errors and spans go where the web's and
    # the worker's do (a release that crashes is an event; its statements, one trace).
    start_error_reports(settings)
    start_tracing(settings)
    try:
        with one_off_span(command):
            yield settings
    finally:
        freeze_startup_objects()  # a one-off's exit then skips the collector's passes
