"""Fuzzing the running service from its OpenAPI schema: no 5xx, and every error is JSON.

Schemathesis generates requests that fit each operation's schema and requests that do not; a
bounded, derandomized run against the web process with a migrated database must find no 5xx
and no error answer other than JSON {"error", "detail"} with X-Request-ID. FastAPI serves its own
schema (with API_DOCS=true); Flask's and Django's are built from the same pydantic models
(openapi_from_models.py).
"""

import json
import subprocess
import sys
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from helpers.matrix import defaults
from helpers.openapi_from_models import openapi_document
from helpers.processes import app_env, procfile, run_process, running_web

# Examples per operation, by generation mode: about half a minute per framework in all. Fitting
# requests get the most: a rare character (NUL, say) reaches the code behind validation only so.
EXAMPLES = {GenerationMode.POSITIVE: 200, GenerationMode.NEGATIVE: 50}
# Fixed examples (no random seed), nothing kept between runs, no shrinking: every run the same.
FUZZ_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def problem_with(response: schemathesis.Response) -> str | None:
    """Why this answer breaks the rule, if it does: its status and what is wrong."""
    status = response.status_code
    if status >= 500:
        return f"status {status}"
    if status >= 400:
        try:
            body = json.loads(response.content)
        except ValueError:
            return f"status {status}, not JSON"
        if not (isinstance(body, dict) and body.keys() >= {"error", "detail"}):
            return f"status {status}, not {{error, detail}}"
        if "x-request-id" not in response.headers:
            return f"status {status}, no X-Request-ID"
    return None


@dataclass
class Findings:
    sent: Counter[str] = field(default_factory=Counter)  # requests, by operation
    # Each kind of answer that breaks the rule, with the requests that got it (as curl).
    problems: dict[str, list[str]] = field(default_factory=dict)


def fuzz(schema: schemathesis.BaseSchema, base_url: str) -> Findings:
    findings = Findings()
    for result in schema.get_all_operations():
        operation = result.ok()
        # A request that does not fit the schema needs something to break: a body, a parameter.
        breakable = bool(operation.body) or any(operation.iter_parameters())
        for mode in GenerationMode if breakable else [GenerationMode.POSITIVE]:
            fuzz_operation(operation, mode, base_url, findings)
    return findings


def fuzz_operation(
    operation: schemathesis.APIOperation, mode: GenerationMode, base_url: str, findings: Findings
) -> None:
    @settings(FUZZ_SETTINGS, max_examples=EXAMPLES[mode])
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, timeout=15)
        findings.sent[operation.label] += 1
        problem = problem_with(response)
        if problem:
            kind = f"{operation.label} ({mode}): {problem}"
            answer = f"{case.as_curl_command()}\n      -> {response.content[:200]!r}"
            findings.problems.setdefault(kind, []).append(answer)

    send()


def web_logging_to(log: Path, project: Path) -> list[str]:
    """The Procfile's web command with its stdout to a file: a pipe nobody reads while the run
    goes on would fill up and stall the server."""
    return ["sh", "-c", 'exec "$@" >"$0"', str(log), *procfile(project)["web"]]


@pytest.mark.once  # a field test: on each framework in the full tier
@pytest.mark.combinations(
    database="postgresql", worker="celery", python_version=defaults()["python_version"]
)
def test_fuzzed_requests_get_no_5xx_and_only_json_errors(
    code_combination, project: Path, service_env, tmp_path: Path, record_property
) -> None:
    env = app_env(project, service_env, API_DOCS="true")
    release = run_process(project, "release", env)
    assert release.returncode == 0, release.stderr
    log = tmp_path / "web.log"
    with running_web(project, env, web_logging_to(log, project)) as web:
        if code_combination["web_framework"] == "fastapi":
            with urllib.request.urlopen(f"{web.base_url}/openapi.json", timeout=10) as answer:
                document = json.load(answer)
        else:
            document = openapi_document(project)
        findings = fuzz(schemathesis.openapi.from_dict(document), web.base_url)
        checked = schemathesis_cli_checks(document, web.base_url, tmp_path)
    record_property("requests_sent", dict(findings.sent))
    # Not a vacuous pass: each operation with a body was fuzzed.
    assert {"POST /notes", "POST /jobs/example"} <= set(findings.sent), findings.sent
    tracebacks = [line for line in log.read_text().splitlines() if "Traceback" in line]
    report = "".join(
        f"\n{kind}: {len(answers)} times, first:\n    {answers[0]}"
        for kind, answers in findings.problems.items()
    )
    first = tracebacks[0][:2000] if tracebacks else "-"
    assert not findings.problems, (
        f"{report}\n{len(tracebacks)} tracebacks logged; the first: {first}"
    )
    # Schemathesis's own checks, every one (status codes, headers such as a 405's Allow,
    # undeclared methods, content types, schema conformance), as its CLI runs them.
    assert checked.returncode == 0, checked.stdout[-6000:] + checked.stderr[-2000:]


def schemathesis_cli_checks(
    document: dict, base_url: str, folder: Path
) -> subprocess.CompletedProcess[str]:
    """`st run --checks all` against the service, from its OpenAPI document, seeded."""
    (folder / "openapi.json").write_text(json.dumps(document))
    command = [str(Path(sys.executable).parent / "st"), "run", "--checks", "all", "--seed", "1",
               "--max-examples", "30", "--url", base_url, "openapi.json"]  # fmt: skip
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300)
