"""Stand-ins for what a service reports to, over real HTTP on this machine: a Sentry project
that keeps the envelopes the SDK sends it, and an OpenTelemetry collector's OTLP/HTTP traces
endpoint that keeps the spans it is sent, decoded from the real protobuf."""

import gzip
import json
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

SENTRY_KEY = "0123456789abcdef0123456789abcdef"


def envelope_items(data: bytes) -> list[tuple[dict, bytes]]:
    """The items of a Sentry envelope (a header line, then each item's header line and payload,
    `length` bytes long where the item's header says so, else up to the next newline)."""
    _header, _, rest = data.partition(b"\n")
    items = []
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        headers = json.loads(line)
        length = headers.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            payload, rest = rest[:length], rest[length + 1 :]
        items.append((headers, payload))
    return items


class Receiver:
    """An HTTP server on a free local port, on a thread: each POST's body, decoded, goes to
    `receive(path, content_type, body)`, which returns the answer's status, type and body."""

    def __init__(self) -> None:
        receive = self.receive

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                body = decoded(body, self.headers.get("Content-Encoding", "identity"))
                status, content_type, answer = receive(
                    self.path, self.headers.get("Content-Type", ""), body
                )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_port

    def receive(self, path: str, content_type: str, body: bytes) -> tuple[int, str, bytes]:
        raise NotImplementedError

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def decoded(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    assert encoding == "identity", f"a body in {encoding}"
    return body


class SentryProject(Receiver):
    """A Sentry project at http://127.0.0.1:PORT/1: what it was sent, raw and as events."""

    def __init__(self) -> None:
        self.envelopes: list[bytes] = []
        super().__init__()

    def receive(self, _path: str, _content_type: str, body: bytes) -> tuple[int, str, bytes]:
        self.envelopes.append(body)
        return 200, "application/json", b"{}"

    @property
    def dsn(self) -> str:
        return f"http://{SENTRY_KEY}@127.0.0.1:{self.port}/1"

    def events(self) -> list[dict]:
        return [
            json.loads(payload)
            for envelope in self.envelopes
            for headers, payload in envelope_items(envelope)
            if headers.get("type") == "event"
        ]

    def wait_for_events(self, count: int, timeout: float = 15, settle: float = 0.5) -> list[dict]:
        """The events, once `count` have come and no more came for `settle` seconds."""
        deadline = time.monotonic() + timeout
        while len(self.events()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(settle)
        return self.events()


@dataclass(frozen=True)
class Span:
    """One received span, its ids in hex as log lines and trace viewers show them."""

    trace_id: str
    span_id: str
    parent_span_id: str  # empty for a trace's root
    name: str
    service: str  # the resource's service.name
    attributes: dict


def attribute_value(value) -> object:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


class OtlpCollector(Receiver):
    """An OTLP/HTTP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:PORT) that accepts
    traces at /v1/traces in protobuf, as a collector does, and keeps their spans."""

    def __init__(self) -> None:
        self.received: list[Span] = []
        super().__init__()

    def receive(self, path: str, content_type: str, body: bytes) -> tuple[int, str, bytes]:
        if path != "/v1/traces":
            return 404, "text/plain", b"traces only"
        assert content_type == "application/x-protobuf", content_type
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            resource = {a.key: attribute_value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                self.received += [
                    Span(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        service=str(resource.get("service.name", "")),
                        attributes={a.key: attribute_value(a.value) for a in span.attributes},
                    )
                    for span in scope_spans.spans
                ]
        return 200, "application/x-protobuf", ExportTraceServiceResponse().SerializeToString()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for_spans(
        self, enough: Callable[[list[Span]], bool], timeout: float = 15
    ) -> list[Span]:
        """The spans received, once `enough` holds for them (or the timeout has passed)."""
        deadline = time.monotonic() + timeout
        while not enough(list(self.received)) and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.received)
