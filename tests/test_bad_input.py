"""Bad input and failures on the running web process: always a JSON error, never a crash.

Every error reply is JSON {"error", "detail"} with the X-Request-ID header, and the web's log has
a JSON line with that request id. Bad input is the client's error (a 4xx, never a 5xx), and a
422 never echoes the input back; a known backing-service failure is a 503 and one log line; an
unexpected error is a 500 and a traceback in the log.
"""

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

import pytest

from helpers.probes import with_failing_route
from helpers.processes import Running, app_env, run_process, running_web

# The service's behaviour: the fewest code combinations that meet every pair of answers, the
# Pythons spread over them (conftest.pairwise_over_pythons); install, lint, own tests and probes
# run on every code combination and Python.
pytestmark = pytest.mark.pairwise

JSON = {"Content-Type": "application/json"}
# A body of each endpoint that is valid, and the name of its text field.
VALID = {"/notes": {"text": "a note"}, "/jobs/example": {"message": "hello", "seconds": 0}}
TEXT_FIELD = {"/notes": "text", "/jobs/example": "message"}
DEPTH = 100_000


def body_with(endpoint: str, **raw: bytes) -> bytes:
    """The valid body, some fields as raw JSON text: json.dumps writes none of the bad ones."""
    fields = {name: json.dumps(value).encode() for name, value in VALID[endpoint].items()}
    fields.update(raw)
    return b"{" + b", ".join(b'"%s": %s' % (k.encode(), v) for k, v in fields.items()) + b"}"


def bad_bodies(endpoint: str) -> dict[str, bytes]:
    """Each kind of bad input, by name (also the request id it is sent with)."""
    field = TEXT_FIELD[endpoint]
    valid = json.dumps(VALID[endpoint])
    bodies = {
        # PostgreSQL text cannot hold NUL; a lone surrogate cannot be encoded to UTF-8 at all.
        "nul-byte": body_with(endpoint, **{field: b'"a\\u0000b"'}),
        "lone-surrogate": body_with(endpoint, **{field: b'"a\\ud800b"'}),
        "json-array": f"[{valid}]".encode(),
        "json-string": json.dumps(valid).encode(),
        # Deeper than any recursive parser's stack.
        "nested-100000-deep": b"[" * DEPTH + b"]" * DEPTH,
        "not-json": b"text=a+note",
        "invalid-utf-8": body_with(endpoint, **{field: b'"caf\xe9"'}),
    }
    if endpoint == "/jobs/example":
        # Python's json module reads these; none is a number in 0..60 (1e309 is infinity).
        for number in ("NaN", "Infinity", "1e309"):
            bodies[f"seconds-{number}"] = body_with(endpoint, seconds=number.encode())
    return bodies


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]  # by lower-case name
    body: bytes


def post(url: str, body: bytes, headers: dict[str, str]) -> Reply:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    return reply_of(request)


def get(url: str, headers: dict[str, str] | None = None) -> Reply:
    return reply_of(urllib.request.Request(url, headers=headers or {}))


def reply_of(request: urllib.request.Request) -> Reply:
    """The reply, an HTTP error status too."""
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, body = error.code, error.headers, error.read()
    return Reply(status, {k.lower(): v for k, v in headers.items()}, body)


def error_reply_problems(reply: Reply, request_id: str) -> list[str]:
    """What is wrong with an error reply: not a JSON {"error", "detail"}, or not its request id."""
    problems = []
    try:
        parsed = json.loads(reply.body)
    except ValueError:
        problems.append(f"body not JSON: {reply.body[:120]!r}")
    else:
        if not (isinstance(parsed, dict) and parsed.keys() >= {"error", "detail"}):
            problems.append(f"body not {{error, detail}}: {reply.body[:120]!r}")
    if reply.headers.get("x-request-id") != request_id:
        problems.append(f"X-Request-ID {reply.headers.get('x-request-id')!r}")
    return problems


def log_events(web: Running) -> list[dict]:
    """The JSON lines the (stopped) web process wrote to stdout."""
    events = []
    for line in web.stdout.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def lines_with_id(web: Running, request_id: str) -> list[dict]:
    return [event for event in log_events(web) if event.get("request_id") == request_id]


def keys_in(value: object) -> set[str]:
    """Every key of every object in a parsed JSON value, however deep."""
    if isinstance(value, dict):
        return set(value).union(*(keys_in(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(keys_in(item) for item in value))
    return set()


def echo_problems(reply: Reply) -> list[str]:
    """What is wrong with the answer to a 100 kB text field: not a 422, or the input echoed."""
    found = [] if reply.status == 422 else [f"status {reply.status}"]
    try:
        if "input" in keys_in(json.loads(reply.body)):
            found.append("the input is echoed")
    except ValueError:
        found.append("not JSON")
    if len(reply.body) >= 2000:
        found.append(f"{len(reply.body)} bytes")
    return found


def check_bad_input_is_refused(project: Path, env: dict[str, str], endpoint: str) -> None:
    """Each bad body: a 4xx JSON error with its request id, logged; a 422 does not echo input."""
    too_long = json.dumps({**VALID[endpoint], TEXT_FIELD[endpoint]: "x" * 100_000}).encode()
    with running_web(project, env) as web:
        replies = {
            name: post(web.base_url + endpoint, body, {**JSON, "X-Request-ID": f"bad-{name}"})
            for name, body in bad_bodies(endpoint).items()
        }
        long_reply = post(web.base_url + endpoint, too_long, JSON)
    problems = {}
    for name, reply in replies.items():
        found = [] if 400 <= reply.status < 500 else [f"status {reply.status}"]
        found += error_reply_problems(reply, f"bad-{name}")
        if not lines_with_id(web, f"bad-{name}"):
            found.append("no log line with its request_id")
        problems[name] = found
    problems["100-kB-text-field"] = echo_problems(long_reply)
    report = "\n".join(f"  {name}: {'; '.join(found)}" for name, found in problems.items() if found)
    assert not report, f"bad input to {endpoint} not refused as it should be:\n{report}"


@pytest.mark.combinations(database="postgresql")
def test_bad_input_to_notes_is_a_logged_json_4xx_that_never_echoes_it(
    code_combination, project, service_env
):
    env = app_env(project, service_env)
    # Migrated by the release process, so that only the input can be at fault.
    release = run_process(project, "release", env)
    assert release.returncode == 0, release.stderr
    check_bad_input_is_refused(project, env, "/notes")


@pytest.mark.combinations(worker="celery")
def test_bad_input_to_the_example_job_is_a_logged_json_4xx_that_never_echoes_it(
    code_combination, project, service_env
):
    check_bad_input_is_refused(project, app_env(project, service_env), "/jobs/example")


DOCS = ("/docs", "/redoc", "/openapi.json")


@pytest.mark.combinations(web_framework="fastapi")
def test_fastapi_serves_no_api_docs_by_default(code_combination, project, service_env):
    with running_web(project, app_env(project, service_env)) as web:
        replies = {path: get(web.base_url + path, {"X-Request-ID": "docs"}) for path in DOCS}
    problems = {
        path: ([] if reply.status == 404 else [f"status {reply.status}"])
        + error_reply_problems(reply, "docs")
        for path, reply in replies.items()
    }
    assert all(found == [] for found in problems.values()), f"with API_DOCS unset: {problems}"


@pytest.mark.combinations(web_framework="fastapi")
def test_fastapi_serves_its_openapi_document_with_api_docs_true(
    code_combination, project, service_env
):
    with running_web(project, app_env(project, service_env, API_DOCS="true")) as web:
        reply = get(web.base_url + "/openapi.json")
    assert reply.status == 200, f"/openapi.json answered {reply.status} with API_DOCS=true"
    assert "openapi" in json.loads(reply.body)


def test_an_unexpected_error_is_a_json_500_with_its_request_id_and_a_logged_traceback(
    code_combination, project, service_env
):
    failing = with_failing_route(project, code_combination["web_framework"])
    env = app_env(project, service_env, PYTHONPATH=str(failing))
    with running_web(project, env) as web:
        reply = get(web.base_url + "/fail", {"X-Request-ID": "unexpected"})
    assert reply.status == 500, f"status {reply.status}: {reply.body[:300]!r}"
    assert error_reply_problems(reply, "unexpected") == [], reply
    logged = json.dumps(lines_with_id(web, "unexpected"))
    assert "Traceback" in logged and "RuntimeError" in logged, f"no traceback logged: {logged}"


@pytest.mark.combinations(database="postgresql")
def test_an_unreachable_database_is_a_json_503_and_one_log_line_without_traceback(
    code_combination, project, service_env
):
    closed = {"DATABASE_URL": "postgresql://app:app@127.0.0.1:1/app"}
    with running_web(project, app_env(project, service_env, **closed)) as web:
        reply = get(web.base_url + "/notes", {"X-Request-ID": "db-down"})
    assert reply.status == 503, f"status {reply.status}: {reply.body[:300]!r}"
    assert error_reply_problems(reply, "db-down") == [], reply
    assert "Traceback" not in web.stdout + web.stderr, web.stdout[-3000:]
    # The access line and the one line saying what failed.
    lines = lines_with_id(web, "db-down")
    assert 1 <= len(lines) <= 2, f"{len(lines)} log lines for one request: {lines}"
