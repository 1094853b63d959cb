"""The layer every request passes before the framework's app: plain ASGI, the same on each.

It holds what a request must get whatever the app does, and what must not wait for the app's
threads (which a slow database can take up): the request id, on every log line and echoed
back; /healthz, /readyz and /metrics (to the clients METRICS_ALLOW_IPS names); each request's
count and time (with METRICS on, the default); the body limit, enforced before a body is read
past it; the whole body read before the app starts, so that a slow client holds no thread; the
deadline; a Host check against ALLOWED_HOSTS, so that no link or redirect the app builds names
a host a client chose; HSTS on https answers when TLS ends in front (TLS_IN_FRONT); and a JSON
answer to every failure.
"""

import asyncio
import ipaddress
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Self

import structlog
from structlog.contextvars import bind_contextvars, reset_contextvars

from .asgi import PROBE_PATHS, ASGIApp, Message, Receive, Scope, Send
from .failures import answer_for, error_body, log_failure
from .health import bounded_readiness, liveness
from .request_id import HEADER, choose_request_id
from .request_span import name_request_span
from .settings import HSTS_SECONDS, Settings

if TYPE_CHECKING:
    from .metrics import RequestMetrics

ID_HEADER = HEADER.lower().encode()
# Sent on answers to https requests with TLS_IN_FRONT. Subdomains and preload lists are the
# domain owner's to add, at the proxy.
HSTS = (b"strict-transport-security", f"max-age={HSTS_SECONDS}".encode())
# A readiness probe not answered by then counts as failed, so /readyz answers within 2 s.
PROBE_SECONDS = 1.5
# The route of a request answered before it reached one: an unknown path, a body too large.
UNROUTED = "(unrouted)"
# Host headers whose verdict the edge keeps: the names a service is reached by, and room to spare.
MAX_HOST_VERDICTS = 256
# The headers of a request that has a body.
BODY_HEADERS = frozenset({b"content-length", b"transfer-encoding"})

log = structlog.get_logger(__name__)

# Python 3.12 on: a task that runs at once, until it first waits.
EAGER_TASK = getattr(asyncio, "eager_task_factory", None)


def start(work: Awaitable[None]) -> asyncio.Future[None]:
    """The app's work as a task of its own. Run eagerly where the Python can, an answer that
    needs no waiting (most do not) is whole before this returns, with no turn of the loop."""
    if EAGER_TASK is not None and asyncio.iscoroutine(work):
        task: asyncio.Task[None] = EAGER_TASK(asyncio.get_running_loop(), work)
        return task
    return asyncio.ensure_future(work)


class BodyTooLarge(Exception):
    """The request's body is longer than the limit."""


class ClientGone(Exception):
    """The client disconnected before its request was whole."""


class Reply:
    """The response to one request, sent by the app or, when it cannot, by the edge.

    `ended` is called once with the status (None if no answer began) when the answer is whole,
    before its last bytes go out (so that a client holding its answer finds it counted), or,
    for an answer never finished, when the edge is done with the request.
    """

    def __init__(
        self,
        send: Send,
        request_id: str,
        ended: Callable[[int | None], None],
        hsts: bool = False,
    ) -> None:
        self._send = send
        self._ended = ended
        self.request_id = request_id
        # The edge's own headers, on every answer, replacing any the app set under their names.
        self.own_headers = [(ID_HEADER, request_id.encode()), *([HSTS] if hsts else [])]
        self.status: int | None = None  # set once the response has begun
        self.closed = False  # the edge has answered: whatever the app sends later is dropped
        self.finished = False
        self.unsent: int | None = None  # bytes of the declared Content-Length still to send

    async def send(self, message: Message) -> None:
        if self.closed:
            return
        if message["type"] == "http.response.start":
            self.status = message["status"]
            headers = message.get("headers", [])
            length = next((v for k, v in headers if k.lower() == b"content-length"), None)
            self.unsent = int(length) if length is not None else None
            message["headers"] = self.with_own_headers(headers)
        elif message["type"] == "http.response.body":
            if self.unsent is not None:
                self.unsent -= len(message.get("body", b""))
            # Whole: the declared length sent (a stream sends an empty last part after it).
            sent_all = self.unsent is not None and self.unsent <= 0
            if sent_all or not message.get("more_body", False):
                self.finish()
        await self._send(message)

    async def json(
        self, status: int, body: object, extra: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        """Answer with a JSON body, unless the app has begun its own answer."""
        await self.whole(status, b"application/json", json.dumps(body).encode(), extra)

    async def whole(
        self,
        status: int,
        content_type: bytes,
        payload: bytes,
        extra: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        """Answer with this body (and these headers), unless the app has begun its own answer."""
        if self.started:
            return
        self.status = status
        self.closed = True
        length = str(len(payload)).encode()
        headers = self.with_own_headers(
            [(b"content-type", content_type), (b"content-length", length), *extra]
        )
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        self.finish()
        await self._send({"type": "http.response.body", "body": payload})

    def finish(self) -> None:
        if not self.finished:
            self.finished = True
            self._ended(self.status)

    @property
    def started(self) -> bool:
        """The response has begun: its status can no longer change."""
        return self.status is not None

    def with_own_headers(self, headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        names = {name for name, _ in self.own_headers}
        return [(k, v) for k, v in headers if k.lower() not in names] + self.own_headers


class Edge:
    """Wraps the framework's ASGI app (`app`); `framework_app` is the FastAPI or Flask object."""

    def __init__(
        self,
        app: ASGIApp,
        framework_app: object,
        *,
        request_timeout: float,
        max_body_bytes: int,
        allowed_hosts: Sequence[str],
        tls_in_front: bool,
        readiness_probes: Mapping[str, Callable[[], object]],
        metrics: bool,
        metrics_allow_ips: Sequence[str],
    ) -> None:
        self.app = app
        self.framework_app = framework_app
        self.request_timeout = request_timeout
        self.max_body_bytes = max_body_bytes
        self.allowed_hosts = [host.lower().removesuffix(".") for host in allowed_hosts]
        # The verdict on each Host header seen: a request pays a lookup, not the matching.
        self.host_verdicts: dict[bytes, bool] = {}
        self.tls_in_front = tls_in_front
        self.readiness_probes = readiness_probes
        # The clients /metrics answers; None: any.
        self.scrapers = (
            None
            if "*" in metrics_allow_ips
            else [ipaddress.ip_network(client) for client in metrics_allow_ips]
        )
        self.metrics: RequestMetrics | None = None
        if metrics:
            # Only now: with METRICS off, prometheus_client is not even loaded.
            from . import metrics as numbers

            self.metrics = numbers.RequestMetrics()
        # Readiness and /metrics run on threads of their own: answered when the app's are busy.
        self.probe_threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="probes")
        # Requests answered at their deadline whose app work has not ended yet.
        self.abandoned: set[asyncio.Future[None]] = set()

    @classmethod
    def for_service(
        cls,
        app: ASGIApp,
        framework_app: object,
        settings: Settings,
        readiness_probes: Mapping[str, Callable[[], object]],
    ) -> Self:
        """The edge as every framework's app factory puts it in front: its limits, hosts, proxy
        and metrics from the settings; readiness from the backing services' probes."""
        return cls(
            app,
            framework_app,
            request_timeout=settings.request_timeout_seconds,
            max_body_bytes=settings.max_body_bytes,
            allowed_hosts=settings.allowed_hosts,
            tls_in_front=settings.tls_in_front,
            readiness_probes=readiness_probes,
            metrics=settings.metrics,
            metrics_allow_ips=settings.metrics_allow_ips,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(name, value) for name, value in scope["headers"] if name != ID_HEADER]
        incoming = next((v for k, v in scope["headers"] if k == ID_HEADER), b"")
        request_id = choose_request_id(incoming.decode("latin-1"))
        # The app reads the id from the header: the one chosen here, whatever the client sent.
        scope["headers"] = [*headers, (ID_HEADER, request_id.encode())]
        started = time.perf_counter()
        metrics = self.metrics
        if metrics is not None:
            metrics.began()

        def ended(status: int | None) -> None:
            # FastAPI leaves its route object in the scope; Flask's app, its rule (app.py).
            found = scope.get("route")
            route = getattr(found, "path", found) or None
            if metrics is not None:
                seconds = time.perf_counter() - started
                metrics.ended(route or UNROUTED, scope["method"], status, seconds)
            if status is not None:
                name_request_span(scope, route)

        hsts = self.tls_in_front and scope["scheme"] == "https"
        reply = Reply(send, request_id, ended, hsts)
        bound = bind_contextvars(request_id=request_id)
        try:
            await self.handle(scope, receive, reply)
        finally:
            reset_contextvars(**bound)
            reply.finish()

    async def handle(self, scope: Scope, receive: Receive, reply: Reply) -> None:
        path = scope["path"]
        metrics = self.metrics
        probe = path in PROBE_PATHS and (
            path != "/metrics" or (metrics is not None and self.may_scrape(scope))
        )
        if probe and scope["method"] in ("GET", "HEAD"):
            scope["route"] = path
            if path == "/healthz":
                await reply.json(200, liveness())
            elif path == "/readyz":
                ready, report = await bounded_readiness(
                    self.readiness_probes, PROBE_SECONDS, self.probe_threads
                )
                await reply.json(200 if ready else 503, report)
            elif metrics is not None:
                # Reading every server process's numbers is file work: off the event loop.
                numbers = await asyncio.get_running_loop().run_in_executor(
                    self.probe_threads, metrics.exposition
                )
                await reply.whole(200, metrics.content_type, numbers)
            return
        # After the probes, which answer any Host: the kubelet's name the pod's address.
        if not self.host_allowed(scope):
            await reply.json(400, error_body(400, "The Host header names no host served here."))
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        # A request with neither header has no body (HTTP/1.1): nothing to read before the app.
        if any(name in BODY_HEADERS for name, _ in scope["headers"]):
            try:
                async with asyncio.timeout_at(deadline):
                    body = await self.read_body(scope, receive)
            except BodyTooLarge:
                limit = f"The request body must be at most {self.max_body_bytes} bytes."
                await reply.json(413, error_body(413, limit))
                return
            except TimeoutError:
                await reply.json(408, error_body(408, "The request body did not arrive in time."))
                return
            except ClientGone:
                return
            receive = replay(body, receive)
        if probe:  # another method: refused as the app refuses one, its body read first
            scope["route"] = path
            refused = error_body(405, f"{path} takes GET and HEAD only.")
            await reply.json(405, refused, [(b"allow", b"GET, HEAD")])
            return
        await self.run_app(scope, receive, reply, deadline)

    def may_scrape(self, scope: Scope) -> bool:
        """Whether the client (as the trusted proxies name it) is one METRICS_ALLOW_IPS names:
        to any other, /metrics is a path like any unknown one."""
        if self.scrapers is None:
            return True
        client = scope.get("client")
        try:
            address = ipaddress.ip_address(client[0]) if client else None
        except ValueError:
            return False
        return address is not None and any(address in network for network in self.scrapers)

    def host_allowed(self, scope: Scope) -> bool:
        """Whether the request's Host (without its port) is one of ALLOWED_HOSTS, as Django
        matches them: the name itself, `.example.com` for the domain and its subdomains, `*`
        for any. A request without a Host names the server's address."""
        given = next((v for k, v in scope["headers"] if k == b"host"), None)
        if given is None:
            server = scope.get("server") or ("", None)
            given = str(server[0]).encode()
        verdict = self.host_verdicts.get(given)
        if verdict is None:
            verdict = self.host_matches(given)
            if len(self.host_verdicts) >= MAX_HOST_VERDICTS:  # the values are the client's choice
                self.host_verdicts.clear()
            self.host_verdicts[given] = verdict
        return verdict

    def host_matches(self, given: bytes) -> bool:
        named = given.decode("latin-1").strip().lower()
        # Without its port; an IPv6 address is bracketed, its port after the bracket.
        bracketed = named.startswith("[")
        host = named[: named.find("]") + 1] if bracketed else named.partition(":")[0]
        host = host.removesuffix(".")
        return bool(host) and any(
            pattern == "*"
            or host == pattern
            or (pattern.startswith(".") and (host.endswith(pattern) or host == pattern[1:]))
            for pattern in self.allowed_hosts
        )

    async def read_body(self, scope: Scope, receive: Receive) -> bytes:
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and int(declared) > self.max_body_bytes:
            raise BodyTooLarge
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def run_app(self, scope: Scope, receive: Receive, reply: Reply, deadline: float) -> None:
        # The app runs as a task of its own, so that it can be left at the deadline: one waiting
        # on a thread (a blocking endpoint) cannot be cancelled until that thread returns.
        work = start(self.app(scope, receive, reply.send))
        if not work.done():
            await self.until_done_or_deadline(work, deadline)
        if not work.done() and not reply.started:
            self.abandon(work)
            log.warning("request deadline passed", seconds=self.request_timeout)
            detail = f"The request did not finish within {self.request_timeout:g} s."
            await reply.json(503, error_body(503, detail))
            return
        try:
            await work
        except Exception as error:  # noqa: BLE001 - every failure is answered and logged here
            log_failure(error)
            await reply.json(*answer_for(error))

    @staticmethod
    async def until_done_or_deadline(work: asyncio.Future[None], deadline: float) -> None:
        loop = asyncio.get_running_loop()
        over: asyncio.Future[None] = loop.create_future()  # the work ended, or the deadline came

        def end(*_: object) -> None:
            if not over.done():
                over.set_result(None)

        work.add_done_callback(end)
        timer = loop.call_at(deadline, end)
        try:
            await over
        except asyncio.CancelledError:
            work.cancel()
            raise
        finally:
            timer.cancel()

    def abandon(self, work: asyncio.Future[None]) -> None:
        """Stop awaiting work past its deadline; a thread running it finishes by itself."""
        work.cancel()
        self.abandoned.add(work)
        work.add_done_callback(self.forget)

    def forget(self, work: asyncio.Future[None]) -> None:
        self.abandoned.discard(work)
        if not work.cancelled() and work.exception() is not None:
            log.info("abandoned request ended", error=repr(work.exception()))


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the app the body already read, then what the client sends next."""
    given = False

    async def receive_replayed() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_replayed
