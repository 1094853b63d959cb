"""Load on a running service and what it costs: wrk runs, PostgreSQL sessions, process memory,
and raw HTTP for the request bodies an attacker sends (which http.client would not)."""

import http.client
import json
import select
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

# wrk's summary as one JSON line: its error counts, the responses outside 2xx (wrk itself counts
# only statuses from 400 up), and its whole latency histogram, so that runs can be merged.
WRK_REPORT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non_2xx = 0 end
function response(status, headers, body)
  if status < 200 or status > 299 then non_2xx = non_2xx + 1 end
end
function done(summary, latency, requests)
  local non_2xx = 0
  for _, thread in ipairs(threads) do non_2xx = non_2xx + thread:get("non_2xx") end
  local histogram = {}
  for i = 1, #latency do
    local microseconds, count = latency(i)
    histogram[#histogram + 1] = string.format("[%d,%d]", microseconds, count)
  end
  local e = summary.errors
  io.write(string.format(
    '\\n{"requests":%d,"microseconds":%d,"non_2xx":%d,"socket_errors":%d,"latency":[%s]}\\n',
    summary.requests, summary.duration, non_2xx, e.connect + e.read + e.write + e.timeout,
    table.concat(histogram, ",")))
end
"""


@dataclass
class Load:
    """What one or more wrk runs measured; runs add up with +=."""

    requests: int = 0
    seconds: float = 0.0
    non_2xx: int = 0
    socket_errors: int = 0
    latency_us: Counter[int] = field(default_factory=Counter)

    def __iadd__(self, other: "Load") -> "Load":
        self.requests += other.requests
        self.seconds += other.seconds
        self.non_2xx += other.non_2xx
        self.socket_errors += other.socket_errors
        self.latency_us.update(other.latency_us)
        return self

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors

    def percentile_ms(self, percent: float) -> float:
        total = sum(self.latency_us.values())
        seen = 0
        for microseconds in sorted(self.latency_us):
            seen += self.latency_us[microseconds]
            if seen >= total * percent / 100:
                return microseconds / 1000
        return float("nan")

    def summary(self) -> dict[str, float]:
        return {
            "rps": round(self.requests / self.seconds if self.seconds else 0.0, 1),
            "p50_ms": round(self.percentile_ms(50), 1),
            "p99_ms": round(self.percentile_ms(99), 1),
            "non_2xx": self.non_2xx,
            "socket_errors": self.socket_errors,
        }


def run_wrk(url: str, seconds: int, connections: int, timeout: int = 5) -> Load:
    """GET `url` on `connections` keep-alive connections for `seconds` (wrk's 2 threads).

    A request unanswered after `timeout` seconds counts as a socket error.
    """
    wrk = shutil.which("wrk")
    assert wrk, "wrk is not installed: apt-get install wrk (.ci/run installs it)"
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "report.lua"
        script.write_text(WRK_REPORT)
        ran = subprocess.run(
            [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout}s",
             "-s", str(script), url],
            capture_output=True, text=True, timeout=seconds + timeout + 30,
        )  # fmt: skip
    assert ran.returncode == 0, f"wrk failed: {ran.stderr}"
    report = json.loads(ran.stdout.strip().splitlines()[-1])
    return Load(
        requests=report["requests"],
        seconds=report["microseconds"] / 1e6,
        non_2xx=report["non_2xx"],
        socket_errors=report["socket_errors"],
        latency_us=Counter(dict(report["latency"])),
    )


def logging_to(log: Path, command: list[str]) -> list[str]:
    """`command` with its output appended to `log`: under load, its log lines would fill the pipe
    that running_web reads only once the process ends, and stall the server."""
    return ["sh", "-c", f'exec "$@" >>{shlex.quote(str(log))} 2>&1', "sh", *command]


def database_sessions(server_url: str, database: str, timeout: float = 10) -> int:
    """Sessions ever opened on `database` (pg_stat_database.sessions), read through `server_url`
    (another database, so that reading opens none there).

    A session is counted in the statistics for sure only once it ends (an idle one may hold
    its count back for 10 s), so this first waits for the database to have no client left.
    """
    deadline = time.monotonic() + timeout
    with psycopg.connect(server_url, autocommit=True) as connection:
        while True:
            (clients,) = connection.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = %s AND backend_type = 'client backend'",
                [database],
            ).fetchone()
            if clients == 0:
                break
            assert time.monotonic() < deadline, f"{clients} sessions still open on {database}"
            time.sleep(0.05)
        (sessions,) = connection.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = %s", [database]
        ).fetchone()
    return sessions


def process_tree(root: int) -> list[int]:
    """The process and all its descendants, from /proc."""
    children: defaultdict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        children[int(fields[1])].append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children[pid])
    return tree


def peak_rss_mib(root: int) -> float:
    """Peak resident memory (VmHWM) summed over the process tree, in MiB."""
    kib = 0
    for pid in process_tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        kib += next(
            (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0
        )
    return kib / 1024


def get_status(url: str, timeout: float) -> int | str:
    """The status of a GET, or what went wrong instead."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError as error:
        return repr(error)


def post_json(url: str, body: object) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


# Raw HTTP: a request's head sent first, then as much of its body as the server will take.


def open_post(base_url: str, path: str, headers: dict[str, str]) -> socket.socket:
    """A connection that has sent the head of a POST, with these headers, and no body yet."""
    address = urlsplit(base_url)
    sock = socket.create_connection((address.hostname, address.port), timeout=10)
    head = f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    sock.sendall(f"{head}\r\n".encode())
    return sock


def send_until_answered(sock: socket.socket, pieces: Iterable[bytes], stall: float = 2) -> int:
    """Send the pieces until the server answers, closes, or takes nothing for `stall` seconds.

    The number of bytes sent.
    """
    sock.settimeout(stall)
    sent = 0
    for piece in pieces:
        if select.select([sock], [], [], 0)[0]:  # a reply, or the connection closed
            break
        try:
            sock.sendall(piece)
        except OSError:
            break
        sent += len(piece)
    return sent


def pieces(body: bytes, size: int = 1 << 20) -> Iterator[memoryview]:
    view = memoryview(body)
    return (view[start : start + size] for start in range(0, len(body), size))


def chunked(body: bytes, size: int = 1 << 16) -> Iterator[bytes]:
    """`body` in the chunked transfer coding, the final empty chunk included."""
    for piece in pieces(body, size):
        yield b"%x\r\n" % len(piece) + piece + b"\r\n"
    yield b"0\r\n\r\n"


def json_text_body(size: int) -> bytes:
    """A JSON object {"text": "aaa…"} of exactly `size` bytes."""
    frame = b'{"text": "', b'"}'
    return frame[0] + b"a" * (size - len(frame[0]) - len(frame[1])) + frame[1]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> object:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def read_reply(sock: socket.socket, timeout: float) -> Reply:
    """The response to the request sent on `sock`; OSError if none comes within `timeout`."""
    sock.settimeout(timeout)
    response = http.client.HTTPResponse(sock, method="POST")
    response.begin()
    body = response.read()
    return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
