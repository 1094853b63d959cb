"""The web server's HTTP/1.1 protocol: uvicorn's own (httptools), with bounds on a request's head.

uvicorn bounds neither the size nor the number of a request's headers, nor the time a client
takes to send them: one 100 MB header was read whole into memory, and a connection that never
finishes its headers stayed open for ever. Here, as the big servers do, a head (the request
line and its headers) larger than MAX_HEADER_BYTES, a header line longer than
MAX_HEADER_LINE_BYTES or more than MAX_HEADERS headers is answered 431 as the limit is crossed,
before the rest is read, and a head not whole within HEADER_TIMEOUT_SECONDS of its first byte
(or of the connection) is answered 408; either way the connection is closed. Both answers are
the service's JSON errors, with a request id. A client's misbehaviour is not the service's
error: one INFO line each. A response's head is written with its body (response_writes.py).
"""

import asyncio
import json
from functools import cache
from http import HTTPStatus
from typing import Any, NamedTuple, cast

import structlog
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from .failures import error_body
from .request_id import HEADER, choose_request_id
from .response_writes import HeadWithBody
from .settings import load_settings

log = structlog.get_logger(__name__)


class HeadLimits(NamedTuple):
    total_bytes: int
    line_bytes: int
    headers: int
    seconds: float


@cache
def head_limits() -> HeadLimits:
    """The limits, read once per server process (uvicorn makes a protocol per connection)."""
    settings = load_settings()
    return HeadLimits(
        settings.max_header_bytes,
        settings.max_header_line_bytes,
        settings.max_headers,
        settings.header_timeout_seconds,
    )


class HeadTooLarge(Exception):
    """Raised inside the parser's callback: the parser stops, and uvicorn answers (see below)."""


class BoundedHeadProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a head over its limits or too slow to arrive."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = head_limits()
        self.in_head = True  # until the head's end; again after each request's end
        self.head_bytes = 0  # bytes received since the head began, counted as they arrive
        self.header_count = 0
        self.head_timer: asyncio.TimerHandle | None = None
        self.refusal: tuple[int, str] | None = None
        # The requests read on this connection and not yet answered, pipelined ones included.
        self.unanswered: list[RequestResponseCycle] = []

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_head_timer()
        self.client_gone()
        super().connection_lost(exc)

    def eof_received(self) -> None:
        # The client closed its side. The transport closes as this returns (the protocol does
        # not keep it open), so nothing more can be sent on it.
        self.client_gone()

    def client_gone(self) -> None:
        """Tell every request still to be answered on this connection that its client is gone,
        so that the app's answer is dropped. uvicorn tells only the newest, and only once the
        connection is lost: the answers of those pipelined before it, or sent in between, met a
        closed transport (an ERROR line and an error report each, for the client's doing)."""
        for cycle in self.unanswered:
            if not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
        self.unanswered.clear()

    def data_received(self, data: bytes) -> None:
        if self.in_head:
            self.head_bytes += len(data)
        super().data_received(data)
        # A head still unfinished after this piece: the parser holds it all, so refuse it here,
        # not once it ends (a single header can be any length).
        if self.in_head and self.head_bytes > self.limits.total_bytes and self.refusal is None:
            self.refuse(
                431, f"The request's headers must be at most {self.limits.total_bytes} bytes."
            )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.header_count = 0
        if self.head_timer is None:
            self.start_head_timer()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.line_bytes:
            self.refusal = (
                414,
                f"The request's URL must be at most {self.limits.line_bytes} bytes.",
            )
            raise HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        if self.header_count > self.limits.headers:
            self.refusal = (431, f"A request may have at most {self.limits.headers} headers.")
            raise HeadTooLarge
        if len(name) + len(value) + 2 > self.limits.line_bytes:
            self.refusal = (
                431,
                f"Each request header must be at most {self.limits.line_bytes} bytes.",
            )
            raise HeadTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.stop_head_timer()
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is previous:  # no request cycle made: the connection was upgraded
            return
        # Its response's head goes out with its body's first part (response_writes.py). The
        # cycle's task has not run yet: it starts on the loop's next turn.
        self.cycle.transport = cast("asyncio.Transport", HeadWithBody(self.transport, self.loop))
        self.unanswered = [c for c in self.unanswered if not c.response_complete]
        self.unanswered.append(self.cycle)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.in_head, self.head_bytes = True, 0

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers a parser error 400; one raised by a limit above gets its own answer.
        if self.refusal is not None:
            self.refuse(*self.refusal)
        else:
            super().send_400_response(msg)

    def start_head_timer(self) -> None:
        self.head_timer = self.loop.call_later(self.limits.seconds, self.head_timed_out)

    def stop_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def head_timed_out(self) -> None:
        self.head_timer = None
        if not self.in_head or self.transport.is_closing():
            return
        if self.head_bytes:
            self.refuse(408, f"The request's headers took longer than {self.limits.seconds:g} s.")
        else:  # a connection that never sent a byte: nothing to answer
            log.info("idle connection closed", seconds=self.limits.seconds)
            self.transport.close()

    def refuse(self, status: int, detail: str) -> None:
        """Answer `status` in the service's JSON, and close the connection."""
        self.refusal = self.refusal or (status, detail)
        self.stop_head_timer()
        request_id = choose_request_id(None)
        body = json.dumps(error_body(status, detail)).encode()
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            f"{HEADER.lower()}: {request_id}\r\n"
            "connection: close\r\n\r\n"
        )
        log.info("request head refused", status=status, detail=detail, request_id=request_id)
        self.transport.write(head.encode() + body)
        self.transport.close()
