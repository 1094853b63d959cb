"""The web process's numbers, in Prometheus's text format at GET /metrics (edge.py); loaded
only with METRICS on, the default (off, the edge counts nothing and prometheus_client is not
loaded).

Requests are counted by route template (`/notes/{note_id}`, never the path asked for, so that
the label values are as few as the routes), method and status. With WEB_CONCURRENCY > 1, each
server process writes its numbers to the directory metrics_directory.py shares, and /metrics
adds them up: one set of numbers for the whole server, whichever process answers. One process
keeps them in memory, and serves the same series."""

import os
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from .asgi import METHODS
from .metrics_directory import VARIABLE

if values.ValueClass is values.MutexValue:
    # In memory, prometheus_client adds series the files of many processes do not hold: its
    # process, platform and GC collectors', and each counter's `_created`. Without them, /metrics
    # answers the same series with one server process or many.
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        REGISTRY.unregister(collector)
    disable_created_metrics()  # type: ignore[no-untyped-call]

REQUESTS = Counter(
    "http_requests",
    "Requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer a request, by route template and method.",
    ["route", "method"],
)
# livesum: the requests of the server's live processes, those of a process gone not counted.
IN_FLIGHT = Gauge(
    "http_requests_in_flight", "Requests being answered.", multiprocess_mode="livesum"
)


# Each label set's counter and histogram, looked up once (a few µs a request saved): as few as
# the routes, methods and statuses.
series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def record(route: str, method: str, status: int, seconds: float) -> None:
    method = method if method in METHODS else "OTHER"
    found = series.get((route, method, status))
    if found is None:
        found = REQUESTS.labels(route, method, str(status)), LATENCY.labels(route, method)
        series[route, method, status] = found
    requests, latency = found
    requests.inc()
    latency.observe(seconds)


class RequestMetrics:
    """What the edge records of each request, and serves at /metrics."""

    content_type = CONTENT_TYPE_LATEST.encode()

    @staticmethod
    def began() -> None:
        IN_FLIGHT.inc()

    @staticmethod
    def ended(route: str, method: str, status: int | None, seconds: float) -> None:
        """Called once per request; with no status, the client went before an answer began."""
        IN_FLIGHT.dec()
        if status is not None:
            record(route, method, status, seconds)

    @staticmethod
    def exposition() -> bytes:
        """Every number of the server, added up over its processes, in the text format."""
        # Where prometheus_client keeps the numbers, as it chose when first imported: in memory
        # in a server of one process or a process not started by the web command (the tests').
        if values.ValueClass is values.MutexValue:
            return generate_latest(REGISTRY)
        directory = os.environ[VARIABLE]
        forget_processes_gone(Path(directory))
        registry = CollectorRegistry()
        MultiProcessCollector(registry, directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


def forget_processes_gone(directory: Path) -> None:
    """Drop the live gauges of server processes that died (a worker replaced after kill -9):
    their in-flight requests and pool connections are no longer anyone's."""
    for path in directory.glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
        except PermissionError:  # alive, as another user
            continue
