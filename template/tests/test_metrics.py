"""GET /metrics: Prometheus's text format, with each request counted by its route's template."""

import uuid
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from .conftest import Reply

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(get: Callable[..., Reply]) -> Samples:
    reply = get("/metrics")
    assert reply.status == 200
    assert (reply.headers.get("content-type") or "").startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reply.body.decode())
        for sample in family.samples
    }


def requests(samples: Samples, route: str, method: str = "GET", status: str = "200") -> float:
    labels = frozenset({"route": route, "method": method, "status": status}.items())
    return samples.get(("http_requests_total", labels), 0.0)


def test_requests_are_counted_by_route_and_timed(get) -> None:
    before = scrape(get)
    for _ in range(3):
        assert get("/healthz").status == 200
    after = scrape(get)
    assert requests(after, "/healthz") - requests(before, "/healthz") == 3
    # The scrape before this one is counted too.
    assert requests(after, "/metrics") - requests(before, "/metrics") == 1
    timed = (
        "http_request_duration_seconds_count",
        frozenset({"route": "/healthz", "method": "GET"}.items()),
    )
    assert after[timed] - before.get(timed, 0.0) == 3


def test_unknown_paths_add_no_label_values(get) -> None:
    # Once each: an unknown path, and a scrape, have their label values from here on.
    assert get(f"/{uuid.uuid4()}").status == 404
    scrape(get)
    before = scrape(get)
    for _ in range(20):
        assert get(f"/{uuid.uuid4()}/{uuid.uuid4()}").status == 404
    after = scrape(get)
    unrouted = requests(after, "(unrouted)", status="404")
    assert unrouted - requests(before, "(unrouted)", status="404") == 20
    assert {labels for _, labels in after} == {labels for _, labels in before}
