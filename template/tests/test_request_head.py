"""The web process bounds a request's head: its size, its header count and line, its time; and
it answers only the hosts of ALLOWED_HOSTS (the tests': testserver, localhost, 127.0.0.1)."""

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest


@pytest.fixture
def web(shared_web: tuple[subprocess.Popen[str], int]) -> tuple[subprocess.Popen[str], int]:
    """The session's shared web process (conftest.py), with small head limits (HEAD_LIMITS):
    each test opens connections of its own, and none changes what the next one meets."""
    return shared_web


def answer_to(
    port: int, head: bytes, then: bytes = b"", seconds: float = 10
) -> tuple[int, dict[str, str], bytes, int]:
    """Send `head`, then stream `then` in 16 KiB pieces until the service answers: its status,
    headers and body, and how many bytes of `then` it took before answering."""
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as sock:
        sock.sendall(head)
        sent = 0
        sock.setblocking(False)
        received = b""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
                continue
            except BlockingIOError:
                pass
            except ConnectionResetError:
                break
            if sent < len(then):
                try:
                    sent += sock.send(then[sent : sent + 16384])
                except OSError:  # its buffers full, or the connection closed after the answer
                    time.sleep(0.01)
            else:
                time.sleep(0.01)
    assert received, "the service closed the connection without an answer"
    status_line, _, rest = received.partition(b"\r\n")
    header_block, _, body = rest.partition(b"\r\n\r\n")
    headers = dict(line.decode().lower().split(": ", 1) for line in header_block.split(b"\r\n"))
    return int(status_line.split()[1]), headers, body, sent


def assert_json_error(status: int, headers: dict[str, str], body: bytes, expected: int) -> None:
    assert status == expected
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"]
    assert headers["connection"] == "close"
    assert json.loads(body)["detail"]


def rss_kib(process: subprocess.Popen[str]) -> int:
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_head_within_the_limits_is_served(web) -> None:
    _, port = web
    head = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + b"".join(
        f"X-Extra-{n}: {'v' * 200}\r\n".encode() for n in range(15)
    )
    status, _, body, _ = answer_to(port, head + b"Connection: close\r\n\r\n")
    assert status == 200, body


def test_a_header_growing_past_the_limit_is_431_before_the_rest_is_read(web) -> None:
    _, port = web
    # 32 MB of one header, sent as the service reads it: refused once it passes 8 KiB, and
    # answered while most of it is still unsent (the sockets' buffers hold a few MB).
    big = b"a" * 32_000_000
    status, headers, body, sent = answer_to(
        port, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: ", big
    )
    assert_json_error(status, headers, body, 431)
    assert sent < len(big), "answered only once the whole head was sent"


@pytest.mark.parametrize(
    "head",
    [
        b"".join(f"X-{n}: v\r\n".encode() for n in range(21)),
        b"X-Long: " + b"v" * 3000 + b"\r\n",
    ],
    ids=["more headers than allowed", "a header line longer than allowed"],
)
def test_too_many_or_too_long_headers_are_431(web, head: bytes) -> None:
    _, port = web
    status, headers, body, _ = answer_to(
        port, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + head + b"\r\n"
    )
    assert_json_error(status, headers, body, 431)


def test_a_url_longer_than_a_header_line_may_be_is_414(web) -> None:
    _, port = web
    status, headers, body, _ = answer_to(port, b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\n\r\n")
    assert_json_error(status, headers, body, 414)


def test_a_head_never_finished_is_408_within_its_timeout_while_healthz_answers(web) -> None:
    _, port = web
    # HEADER_TIMEOUT_SECONDS is 1; the socket's 10 s is room for a busy machine.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")  # and no more
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as other:
            assert other.status == 200
        answer = slow.recv(65536)
        assert slow.recv(65536) == b"", "the connection was left open"
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_connection_that_sends_nothing_is_closed_within_the_header_timeout(web) -> None:
    _, port = web
    with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
        assert idle.recv(65536) == b""


def test_memory_stays_flat_under_a_stream_of_oversized_heads(web) -> None:
    process, port = web
    answer_to(port, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: ", b"a" * 200_000)
    before = rss_kib(process)
    for _ in range(30):
        status, *_ = answer_to(
            port, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: ", b"a" * 2_000_000
        )
        assert status == 431
    grown = rss_kib(process) - before
    # 30 heads of 2 MB each: kept, they would be 60 MB; refused as they pass 8 KiB, a few
    # pieces of each are ever held.
    assert grown < 16 * 1024, f"memory grew by {grown} KiB"


def get(port: int, path: str, host: str) -> tuple[int, dict[str, str], bytes]:
    head = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    status, headers, body, _ = answer_to(port, head.encode())
    return status, headers, body


@pytest.mark.parametrize("host", ["evil.example", "localhost.evil.example", "127.0.0.2:8000"])
@pytest.mark.parametrize("path", ["/no-such-path", "/notes"])
def test_a_host_not_allowed_is_400_and_no_answer_names_it(web, host: str, path: str) -> None:
    _, port = web
    status, headers, body = get(port, path, host)
    assert status == 400, body
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"]
    assert json.loads(body)["detail"]
    assert "location" not in headers
    assert host.encode() not in body


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.:8000", "127.0.0.1:1234", "testserver"])
def test_an_allowed_host_is_served_with_any_port_or_case(web, host: str) -> None:
    _, port = web
    status, _, body = get(port, "/no-such-path", host)
    assert status == 404, body


def test_the_probes_answer_any_host(web) -> None:
    """A kubelet's probe names the pod's address, which no setting lists."""
    _, port = web
    status, _, body = get(port, "/healthz", "10.1.2.3:8000")
    assert status == 200, body
