import re


def test_incoming_request_id_is_echoed(get) -> None:
    reply = get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert reply.headers["X-Request-ID"] == "abc-123"


def test_request_id_is_made_when_absent(get) -> None:
    first, second = get("/healthz"), get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["X-Request-ID"])
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


def test_unsafe_incoming_request_id_is_replaced(get) -> None:
    reply = get("/healthz", headers={"X-Request-ID": "bad id\twith spaces" + "x" * 200})
    assert re.fullmatch(r"[0-9a-f]{32}", reply.headers["X-Request-ID"])
