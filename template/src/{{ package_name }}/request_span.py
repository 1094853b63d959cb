"""A request's span, named by its route template (never its path) once the edge knows the route."""

from .asgi import METHODS, Scope

# Where the request's span waits in the ASGI scope for its route (request_tracing.py puts it).
SPAN_KEY = f"{__package__}.span"


def name_request_span(scope: Scope, route: str | None) -> None:
    """Name the request's span by its route template, once the app has found the route; one
    that found none is named by its method alone, as OpenTelemetry's conventions ask."""
    span = scope.get(SPAN_KEY)
    if span is None:
        return
    method = scope["method"] if scope["method"] in METHODS else "HTTP"
    if route is None:
        span.update_name(method)
    else:
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
