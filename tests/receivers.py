"""Stand-ins for what a service reports to, over real HTTP on this machine: a Sentry project
that keeps the envelopes the SDK sends it."""

import gzip
import json
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


class SentryProject:
    """A Sentry project at http://127.0.0.1:PORT/1: what it was sent, raw and as events."""

    def __init__(self) -> None:
        self.envelopes: list[bytes] = []
        received = self.envelopes

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                encoding = self.headers.get("Content-Encoding", "identity")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                else:
                    assert encoding == "identity", f"an envelope in {encoding}"
                received.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def dsn(self) -> str:
        return f"http://{SENTRY_KEY}@127.0.0.1:{self.server.server_port}/1"

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

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
