"""The web process in the field: concurrent load on a database endpoint, request bodies over
MAX_BODY_BYTES (declared, chunked, and many at once), and SIGTERM with keep-alive connections.

Load comes from wrk (a Debian package; .ci/run installs it), so the client is not the
bottleneck on a two-core machine.
"""

import contextlib
import http.client
import signal
import threading
import time
import urllib.request
from collections import Counter
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from helpers import load
from helpers.faults import post_path
from helpers.matrix import code_questions, combinations, defaults
from helpers.probes import with_slow_route
from helpers.processes import Running, app_env, procfile, run_process, running_web

# Measured on one Python, the default: the server, not the interpreter, is under test.
PYTHON = defaults()["python_version"]

FRAMEWORKS = ("flask", "fastapi", "django")
# Seconds of load per framework; a bench can run 60. Split in interleaved rounds (wrk counts
# whole seconds) so that whatever else the machine does hits every framework alike.
LOAD_SECONDS = 10
ROUNDS = 5
CONNECTIONS = 32
# The default, set explicitly since the sessions bound below is read from it.
WEB_THREADS = 8
# The default of MAX_BODY_BYTES.
MAX_BODY_BYTES = 1_048_576
ATTACK_BYTES = 50_000_000
ATTACKERS = 6
# Peak resident memory allowed to the web process tree under the attack.
MEMORY_BUDGET_MIB = 512
# An over-limit declared body must be refused within this, without the body being sent.
REFUSED_WITHIN = 2.0
KEEP_ALIVE_CONNECTIONS = 16


def combination_of(**answers: str) -> dict[str, str]:
    """The combination (as the `code_combination` fixture gives it) with these answers."""
    (found,) = [
        c for c in combinations(code_questions()) if all(c[q] == a for q, a in answers.items())
    ]
    return found


# 1. Load on a database endpoint


def serving(project: Path, env: dict[str, str], log: Path) -> AbstractContextManager[Running]:
    """The web process, its logs going to `log`: thousands of lines, more than a pipe holds."""
    return running_web(project, env, load.logging_to(log, procfile(project)["web"]))


@pytest.mark.full_tier("the pool's bound is met by every project's own database tests")
def test_notes_under_32_connections_no_errors_sessions_within_pool_p99_within_2x_flask(
    render, sync, postgres, record_property, tmp_path: Path
) -> None:
    projects, envs = {}, {}
    for framework in FRAMEWORKS:
        answers = combination_of(
            web_framework=framework, database="postgresql", worker="none", python_version=PYTHON
        )
        projects[framework] = sync(render(answers))
        url = postgres.create_database(f"load_{framework}")
        envs[framework] = app_env(
            projects[framework], {"DATABASE_URL": url}, WEB_THREADS=str(WEB_THREADS)
        )
        release = run_process(projects[framework], "release", envs[framework])
        assert release.returncode == 0, release.stderr
    # Counted over the web process's whole life (seeding included), which bounds the load's.
    before = {f: load.database_sessions(postgres.url(), f"load_{f}") for f in FRAMEWORKS}
    measured = {framework: load.Load() for framework in FRAMEWORKS}
    with ExitStack() as stack:
        webs = {
            f: stack.enter_context(serving(projects[f], envs[f], tmp_path / f"{f}.log"))
            for f in FRAMEWORKS
        }
        for web in webs.values():
            for n in range(5):
                assert load.post_json(f"{web.base_url}/notes", {"text": f"note {n}"}) == 201
        for round_ in range(ROUNDS):
            for framework in FRAMEWORKS if round_ % 2 == 0 else FRAMEWORKS[::-1]:
                measured[framework] += load.run_wrk(
                    f"{webs[framework].base_url}/notes", LOAD_SECONDS // ROUNDS, CONNECTIONS
                )
    opened = {
        f: load.database_sessions(postgres.url(), f"load_{f}") - before[f] for f in FRAMEWORKS
    }

    problems = []
    for framework in FRAMEWORKS:
        result = {**measured[framework].summary(), "new_sessions": opened[framework]}
        record_property(f"load_{framework}", result)
        if measured[framework].errors or not measured[framework].requests:
            problems.append(f"{framework}: errors under load: {result}")
        if opened[framework] > WEB_THREADS + 3:
            problems.append(
                f"{framework}: opened {opened[framework]} database sessions, pool is {WEB_THREADS}"
            )
    p99 = {f: measured[f].percentile_ms(99) for f in FRAMEWORKS}
    for framework in FRAMEWORKS[1:]:
        if p99[framework] > 2 * p99["flask"]:
            problems.append(
                f"{framework}'s p99 {p99[framework]} ms is over 2x Flask's {p99['flask']} ms"
            )
    assert not problems, "\n".join(problems)


# 2. The body limit


def refused_as_too_large(reply: load.Reply) -> list[str]:
    """What is wrong with `reply` as a 413 JSON error answer."""
    body = reply.json()
    problems = [] if reply.status == 413 else [f"status {reply.status}: {reply.body[:200]!r}"]
    if not (isinstance(body, dict) and {"error", "detail"} <= body.keys()):
        problems.append(f"not a JSON error body: {reply.body[:200]!r}")
    if "x-request-id" not in reply.headers:
        problems.append("no X-Request-ID")
    return problems


def declared_over_limit(base_url: str, path: str) -> list[str]:
    """Content-Length 50 MB, and only the first 64 KiB sent: the answer comes anyway, quickly."""
    headers = {"Content-Type": "application/json", "Content-Length": str(ATTACK_BYTES)}
    with load.open_post(base_url, path, headers) as sock:
        sock.sendall(load.json_text_body(ATTACK_BYTES)[: 1 << 16])
        started = time.monotonic()
        try:
            reply = load.read_reply(sock, timeout=REFUSED_WITHIN)
        except (OSError, http.client.HTTPException) as error:
            return [f"no answer within {REFUSED_WITHIN} s of 64 KiB of 50 MB: {error!r}"]
        waited = time.monotonic() - started
    late = [f"answered after {waited:.2f} s"] if waited > REFUSED_WITHIN else []
    return late + refused_as_too_large(reply)


def chunked_over_limit(base_url: str, path: str) -> list[str]:
    """A chunked body of twice the limit, sent until the server answers."""
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    with load.open_post(base_url, path, headers) as sock:
        load.send_until_answered(sock, load.chunked(load.json_text_body(2 * MAX_BODY_BYTES)))
        try:
            reply = load.read_reply(sock, timeout=5)
        except (OSError, http.client.HTTPException) as error:
            return [f"no answer to a chunked body of twice the limit: {error!r}"]
    return refused_as_too_large(reply)


def at_the_limit(base_url: str, path: str) -> list[str]:
    """A body of exactly MAX_BODY_BYTES reaches the app (422 or 201 or 405, not 413)."""
    headers = {"Content-Type": "application/json", "Content-Length": str(MAX_BODY_BYTES)}
    with load.open_post(base_url, path, headers) as sock:
        sock.sendall(load.json_text_body(MAX_BODY_BYTES))
        try:
            reply = load.read_reply(sock, timeout=10)
        except (OSError, http.client.HTTPException) as error:
            return [f"no answer to a body at the limit: {error!r}"]
    if reply.status == 413 or reply.status >= 500:
        return [f"a body at the limit got {reply.status}: {reply.body[:200]!r}"]
    return []


@pytest.mark.pairwise
def test_bodies_over_max_body_bytes_get_413_json_unread_and_a_body_at_the_limit_is_served(
    code_combination, project: Path, service_env: dict[str, str]
) -> None:
    path = post_path(code_combination)
    with running_web(project, app_env(project, service_env)) as web:
        problems = {
            "Content-Length 50 MB": declared_over_limit(web.base_url, path),
            "chunked, twice the limit": chunked_over_limit(web.base_url, path),
            "exactly MAX_BODY_BYTES": at_the_limit(web.base_url, path),
        }
    problems = {case: found for case, found in problems.items() if found}
    assert not problems, f"POST {path}: {problems}"


# 3. Memory under the body attack


def attack(
    base_url: str, path: str, body: bytes, together: threading.Barrier, outcomes: list[str]
) -> None:
    """POST `body` until the server answers or closes; what came of it.

    The last byte waits for every attacker to get there, so that a server that buffers
    bodies holds all of them at once, as an attacker would arrange.
    """
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    sent = 0
    try:
        with load.open_post(base_url, path, headers) as sock:
            sent = load.send_until_answered(sock, load.pieces(body[:-1]))
            with contextlib.suppress(threading.BrokenBarrierError):
                together.wait(timeout=30)
            if sent == len(body) - 1:
                sent += load.send_until_answered(sock, [body[-1:]])
            outcome = str(load.read_reply(sock, timeout=30).status)
    except (OSError, http.client.HTTPException) as error:
        outcome = repr(error)
    outcomes.append(f"{outcome} after {sent / 1e6:.0f} MB sent")


@pytest.mark.once  # a field test: on each framework in the full tier
@pytest.mark.combinations(database="postgresql", worker="none", python_version=PYTHON)
def test_six_parallel_50_mb_posts_keep_the_web_under_512_mib_and_healthz_answering(
    code_combination, project: Path, service_env: dict[str, str], record_property
) -> None:
    body = load.json_text_body(ATTACK_BYTES)
    outcomes: list[str] = []
    healthz: list[int | str] = []
    with running_web(project, app_env(project, service_env)) as web:
        root = web.process.pid
        together = threading.Barrier(ATTACKERS)
        attackers = [
            threading.Thread(target=attack, args=(web.base_url, "/notes", body, together, outcomes))
            for _ in range(ATTACKERS)
        ]
        for attacker in attackers:
            attacker.start()
        deadline = time.monotonic() + 60
        while any(a.is_alive() for a in attackers) and time.monotonic() < deadline:
            healthz.append(load.get_status(f"{web.base_url}/healthz", timeout=2))
            time.sleep(0.2)
        for attacker in attackers:
            attacker.join(timeout=max(0, deadline - time.monotonic()))
        healthz.append(load.get_status(f"{web.base_url}/healthz", timeout=2))
        peak = load.peak_rss_mib(root)
    record_property("peak_rss_mib", round(peak))
    record_property("attack_outcomes", outcomes)
    assert not any(a.is_alive() for a in attackers), f"attack unfinished after 60 s: {outcomes}"
    assert peak < MEMORY_BUDGET_MIB, f"peak RSS {peak:.0f} MiB; the posts ended: {outcomes}"
    assert all(status == 200 for status in healthz), f"/healthz during the attack: {healthz}"


# 4. SIGTERM


def get_slow(base_url: str, statuses: list[object]) -> None:
    try:
        with urllib.request.urlopen(f"{base_url}/slow", timeout=30) as response:
            statuses.append(response.status)
    except OSError as error:
        statuses.append(repr(error))


def sigterm_env(project: Path, service_env: dict[str, str], framework: str, slow: float):
    """One web process (no supervisor in between), with a test-only /slow route."""
    return app_env(
        project, service_env, WEB_CONCURRENCY="1", SHUTDOWN_GRACE_SECONDS="10",
        PYTHONPATH=str(with_slow_route(project, framework, seconds=slow)),
    )  # fmt: skip


@pytest.mark.once  # a field test: on each framework in the full tier
@pytest.mark.combinations(database="none", worker="none", python_version=PYTHON)
def test_sigterm_on_one_web_worker_drains_the_request_in_flight_then_exits_0(
    code_combination, project: Path, service_env: dict[str, str]
) -> None:
    env = sigterm_env(project, service_env, code_combination["web_framework"], slow=2)
    statuses: list[object] = []
    with running_web(project, env) as web:
        in_flight = threading.Thread(target=get_slow, args=(web.base_url, statuses))
        in_flight.start()
        time.sleep(0.5)  # the request is in the app, sleeping
        status = web.stop(timeout=15)
        in_flight.join(timeout=15)
    assert statuses == [200], f"the request in flight: {statuses}"
    assert status == 0, f"exit status {status} after a clean drain"


CLEAN_CLOSE = "closed before answering (retryable)"
ANSWERED_AND_CLOSED = "answered with Connection: close"
ALLOWED = (CLEAN_CLOSE, ANSWERED_AND_CLOSED)


def outcome_after_sigterm(connection: http.client.HTTPConnection, sent: str | None) -> str:
    """How a request sent after SIGTERM on a kept-alive connection ended."""
    if sent is not None:
        return sent
    try:
        response = connection.getresponse()
        response.read()
    # Its errno is None: the server closed the connection (FIN), nothing was read from it.
    except http.client.RemoteDisconnected:
        return CLEAN_CLOSE
    except (OSError, http.client.HTTPException) as error:
        return f"{type(error).__name__} (errno {getattr(error, 'errno', None)})"
    if (response.getheader("Connection") or "").lower() == "close":
        return ANSWERED_AND_CLOSED
    return f"answered {response.status}, connection left open"


def send_get(connection: http.client.HTTPConnection, path: str) -> str | None:
    """Send a GET without waiting for its answer; what went wrong, if anything."""
    try:
        connection.request("GET", path)
    except OSError as error:
        return f"{type(error).__name__} on send (errno {error.errno})"
    return None


@pytest.mark.once  # a field test: on each framework in the full tier
@pytest.mark.combinations(database="none", worker="none", python_version=PYTHON)
def test_requests_on_kept_alive_connections_after_sigterm_get_connection_close_or_a_clean_close(
    code_combination, project: Path, service_env: dict[str, str], record_property
) -> None:
    env = sigterm_env(project, service_env, code_combination["web_framework"], slow=3)
    statuses: list[object] = []
    with running_web(project, env) as web:
        address = urlsplit(web.base_url)
        connections = [
            http.client.HTTPConnection(address.hostname, address.port, timeout=10)
            for _ in range(KEEP_ALIVE_CONNECTIONS)
        ]
        for connection in connections:
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            response.read()
            assert response.status == 200 and not response.will_close, "not kept alive"
        in_flight = threading.Thread(target=get_slow, args=(web.base_url, statuses))
        in_flight.start()
        time.sleep(0.5)  # the slow request is in the app; the connections sit idle
        web.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        # One request per connection, spread over the drain (the slow request ends 2.5 s after
        # SIGTERM), all sent before any answer is awaited: each reaches a draining server.
        sent = []
        for n, connection in enumerate(connections):
            time.sleep(max(0.0, signalled + 0.3 + 0.1 * n - time.monotonic()))
            sent.append((round(time.monotonic() - signalled, 1), send_get(connection, "/healthz")))
        outcomes = [
            (after, outcome_after_sigterm(connection, failed))
            for connection, (after, failed) in zip(connections, sent, strict=True)
        ]
        for connection in connections:
            connection.close()
        in_flight.join(timeout=15)
        # Waited for, not stop()ped: stop() would send a second SIGTERM, a case of its own.
        status = web.process.wait(timeout=15)
    tally = Counter(outcome for _after, outcome in outcomes)
    record_property("after_sigterm", {**tally, "exit_status": status})
    assert statuses == [200], f"the request in flight at SIGTERM: {statuses}"
    wrong = [(after, outcome) for after, outcome in outcomes if outcome not in ALLOWED]
    assert not wrong, f"(seconds after SIGTERM, outcome): {wrong}; all: {dict(tally)}"
