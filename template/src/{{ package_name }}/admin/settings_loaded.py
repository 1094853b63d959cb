"""What every admin command runs with: the service's settings and event stream."""

import functools
from collections.abc import Callable


def with_settings(command: Callable[..., None]) -> Callable[..., None]:
    """Run the command with the settings (its first argument), logging, reporting errors and
    sending spans as the web process does.

    The settings are read when a command runs, not when the group parses its arguments, so
    `--help` works with nothing configured; a command with bad config stops with one message.
    """

    @functools.wraps(command)
    def run(*args: object, **kwargs: object) -> None:
        from ..error_reports import start_error_reports
        from ..logging import configure_logging
        from ..settings import load_settings
        from ..started import freeze_startup_objects
        from ..tracing import one_off_span, start_tracing

        settings = load_settings()
        configure_logging(settings)
        # A one-off is one of the service's processes: its errors and spans go where the web's
        # and the worker's do (a release that crashes is an event; its statements, one trace).
        start_error_reports(settings)
        start_tracing(settings)
        try:
            with one_off_span(command.__name__.replace("_", "-")):
                command(settings, *args, **kwargs)
        finally:
            freeze_startup_objects()  # a one-off's exit then skips the collector's passes

    return run
