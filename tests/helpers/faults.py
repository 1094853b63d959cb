"""Faults to inject into a running service, for the fault-injection tests.

- `request`: one HTTP exchange, timed and bounded, that reports "no answer" instead of raising;
  `probe` repeats it, `wait_for_status` polls until an answer comes.
- `SlowClients`: connections that trickle a request a byte at a time and never finish it.
- `frozen` / `frozen_postgres`: SIGSTOP a process and all it started (a PostgreSQL postmaster and
  every backend), SIGCONT on leaving, whatever happened inside.
- `dedicated_redis`: a Redis server of the test's own, so stopping it disturbs no other test.
- `process_tree`: a process and its descendants, to tell that nothing was restarted.

Every wait here is bounded, and every fault is undone by the context manager that made it.
"""

import contextlib
import http.client
import json
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from helpers.servers import Postgres, RedisServer

# HTTP


@dataclass
class Answer:
    """One HTTP exchange as a client saw it; `status` is None when no answer came in time."""

    status: int | None
    seconds: float  # from before connecting to the end of the body (or to giving up)
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case
    body: object = None  # parsed JSON where it is JSON, else text
    error: str = ""  # why there is no answer

    def __str__(self) -> str:
        outcome = self.status if self.status is not None else f"no answer ({self.error})"
        return f"{outcome} in {self.seconds:.2f} s"


def request(
    base_url: str,
    method: str,
    path: str,
    *,
    json_body: object = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> Answer:
    """Send one request on a new connection; never raises for a network failure.

    `timeout` bounds each socket operation (connect, send, each read): the answers under test
    are small, so it bounds the whole exchange.
    """
    address = urlsplit(base_url)
    sent_headers = dict(headers or {})
    body = None
    if json_body is not None:
        body = json.dumps(json_body).encode()
        sent_headers.setdefault("Content-Type", "application/json")
    start = time.perf_counter()
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=sent_headers)
        response = connection.getresponse()
        raw = response.read()
    except (OSError, http.client.HTTPException) as error:
        return Answer(None, time.perf_counter() - start, error=f"{type(error).__name__}: {error}")
    finally:
        connection.close()
    seconds = time.perf_counter() - start
    try:
        parsed: object = json.loads(raw)
    except ValueError:
        parsed = raw.decode(errors="replace")
    received = {name.lower(): value for name, value in response.getheaders()}
    return Answer(response.status, seconds, received, parsed)


def probe(
    base_url: str, path: str, times: int, gap: float = 0.2, timeout: float = 2.0
) -> list[Answer]:
    """GET `path` `times` times, one after the other, `gap` seconds apart: every answer."""
    answers = []
    for attempt in range(times):
        if attempt:
            time.sleep(gap)
        answers.append(request(base_url, "GET", path, timeout=timeout))
    return answers


def wait_for_status(
    base_url: str, method: str, path: str, status: int, within: float, **kwargs
) -> Answer:
    """Repeat the request until it answers `status` or `within` seconds pass; the last answer."""
    deadline = time.monotonic() + within
    while True:
        answer = request(base_url, method, path, **kwargs)
        if answer.status == status or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def json_error_problems(answer: Answer, status: int, within: float) -> list[str]:
    """What keeps `answer` from being the service's JSON error `status`, answered within
    `within` seconds: {"error": ..., "detail": ...} with an X-Request-ID header. Empty if none."""
    if answer.status is None:
        return [f"no answer within {answer.seconds:.2f} s ({answer.error})"]
    problems = []
    if answer.status != status:
        problems.append(f"status {answer.status}, not {status}: {str(answer.body)[:200]}")
    if answer.seconds > within:
        problems.append(f"answered in {answer.seconds:.2f} s, beyond {within} s")
    if not (isinstance(answer.body, dict) and {"error", "detail"} <= answer.body.keys()):
        problems.append(f"not a JSON error body: {str(answer.body)[:200]}")
    if not answer.headers.get("x-request-id"):
        problems.append("no X-Request-ID header")
    return problems


def seconds_of(answers: list[Answer]) -> list[float | None]:
    """Each answer's seconds, None where none came: for record_property."""
    return [round(a.seconds, 3) if a.status is not None else None for a in answers]


# Slow clients


class SlowClients:
    """Connections that each send a request a byte every `interval` seconds and never finish.

    `header_clients` send the request line, then one header a byte at a time, never ending the
    headers. `body_clients` send complete headers of a POST to `body_path` announcing
    `content_length` bytes (below the default MAX_BODY_BYTES, so it is not refused outright),
    then trickle the body. A server that gives each such connection a thread until the request
    is complete runs out of threads. Use as a context manager; leaving it closes them all.
    """

    def __init__(
        self,
        base_url: str,
        *,
        header_clients: int,
        body_clients: int,
        body_path: str,
        content_length: int = 1_000_000,
        interval: float = 0.5,
    ) -> None:
        address = urlsplit(base_url)
        self.address = (address.hostname, address.port)
        self.host = address.netloc
        self.header_clients = header_clients
        self.body_clients = body_clients
        self.body_path = body_path
        self.content_length = content_length
        self.interval = interval
        self.sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._trickler = threading.Thread(target=self._trickle, daemon=True)

    def waiting(self) -> int:
        """How many the server still holds: it has neither answered nor closed them."""
        events = select.poll()
        for connection in self.sockets:
            events.register(connection, select.POLLIN | select.POLLERR | select.POLLHUP)
        return len(self.sockets) - len(events.poll(0))

    def __enter__(self) -> "SlowClients":
        try:
            for _ in range(self.header_clients):
                self._open(f"GET / HTTP/1.1\r\nHost: {self.host}\r\nX-Slow: ")
            for _ in range(self.body_clients):
                self._open(
                    f"POST {self.body_path} HTTP/1.1\r\nHost: {self.host}\r\n"
                    f"Content-Type: application/json\r\n"
                    f"Content-Length: {self.content_length}\r\n\r\n"
                )
        except BaseException:
            self.close()
            raise
        self._trickler.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _open(self, start: str) -> None:
        connection = socket.create_connection(self.address, timeout=5)
        self.sockets.append(connection)
        connection.sendall(start.encode())

    def _trickle(self) -> None:
        live = list(self.sockets)
        while not self._stop.wait(self.interval):
            for connection in list(live):
                try:
                    connection.send(b"a")
                except OSError:  # the server closed it (refused it, or timed it out)
                    live.remove(connection)

    def close(self) -> None:
        self._stop.set()
        if self._trickler.is_alive():
            self._trickler.join(timeout=5)
        for connection in self.sockets:
            connection.close()


# Processes


def children_by_parent() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended while we looked
            continue
        # The command name, in parentheses, may hold spaces: the fields after it are fixed.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    return children


def process_tree(pid: int) -> set[int]:
    """The process and all its descendants."""
    children = children_by_parent()
    tree, pending = set(), [pid]
    while pending:
        current = pending.pop()
        tree.add(current)
        pending.extend(children.get(current, []))
    return tree


def signal_all(pids, sent: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sent)


@contextlib.contextmanager
def frozen(pid: int, wrapper: int | None = None) -> Iterator[set[int]]:
    """SIGSTOP the process and every descendant, as a hung host or a network black hole looks
    to its clients (connections stay open, nothing answers); SIGCONT to all on leaving.

    The root stops first, so it forks nothing new while its children are listed. `wrapper` is
    the root's parent where that is runuser or su: it stops itself when its child stops, and
    would never reap it, so it is continued too.
    """
    stopped = {pid}
    try:
        os.kill(pid, signal.SIGSTOP)
        # Twice: a child forked just before the root stopped shows up in the second listing.
        for _ in range(2):
            tree = process_tree(pid)
            signal_all(tree - stopped, signal.SIGSTOP)
            stopped |= tree
        yield stopped
    finally:
        signal_all(stopped - {pid}, signal.SIGCONT)
        signal_all([pid], signal.SIGCONT)
        if wrapper is not None:
            signal_all([wrapper], signal.SIGCONT)


def postmaster_pid(server: Postgres) -> int:
    """The postmaster's pid, from the first line of its postmaster.pid (the server runs under
    runuser, so it is not the Popen's pid)."""
    return int((server.directory / "data" / "postmaster.pid").read_text().split()[0])


def frozen_postgres(server: Postgres) -> contextlib.AbstractContextManager[set[int]]:
    """The postmaster and every backend stopped: open connections and new ones both hang."""
    assert server.process is not None, "the server is not running"
    return frozen(postmaster_pid(server), wrapper=server.process.pid)


# Redis


@contextlib.contextmanager
def dedicated_redis() -> Iterator[RedisServer]:
    """A Redis server of the test's own, stopped on leaving if the test has not stopped it:
    stopping or freezing it (`frozen(server.process.pid)`) disturbs no other test."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


def post_path(combination: dict[str, str]) -> str:
    """A POST endpoint of the combination that reads its body; /healthz where there is none
    (it answers GET alone, so a POST takes the app's way: body limit, then a 404 or 405)."""
    if combination["database"] == "postgresql":
        return "/notes"
    if combination["worker"] == "celery":
        return "/jobs/example"
    return "/healthz"
