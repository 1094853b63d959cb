"""The ASGI types, and the methods and probe paths that the edge, metrics and traces share."""

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The probes' paths, answered by the edge ahead of the app (/metrics only with METRICS on).
PROBE_PATHS = ("/healthz", "/readyz", "/metrics")
# Any other method (a server may pass on any token) is counted and named as one: the metrics'
# labels and the spans' names stay few.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
