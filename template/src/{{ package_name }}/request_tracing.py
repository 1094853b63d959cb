"""A span for each request but the probes', when this process sends traces (tracing.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .asgi import PROBE_PATHS, ASGIApp, Scope
from .request_span import SPAN_KEY

if TYPE_CHECKING:
    from collections.abc import Callable

    from opentelemetry.trace import Span

    from .edge import Edge


def trace_requests(edge: Edge) -> ASGIApp:
    """The edge inside OpenTelemetry's ASGI middleware: a span for each request but the probes'.

    Outside the edge, so that what the edge answers itself (a deadline, a body too large) and
    logs is in the request's span too.
    """
    # Only now: loading OpenTelemetry costs every process that sends no traces.
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    def untraced(probe: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            with suppress_instrumentation():
                return probe()

        return run

    # The readiness probes' queries start no trace of their own.
    edge.readiness_probes = {name: untraced(p) for name, p in edge.readiness_probes.items()}

    def keep_span(span: Span, scope: Scope) -> None:
        scope[SPAN_KEY] = span

    return OpenTelemetryMiddleware(
        edge,
        # The probes' paths: a trace each time a platform asks would bury the requests' traces.
        excluded_urls=",".join(f"{path}$" for path in PROBE_PATHS),
        server_request_hook=keep_span,
        # One span a request, not one more for each part of its body sent or received.
        exclude_spans=["receive", "send"],
    )
