"""Dockerfile, compose, CI and Procfile of every combination: linted, and consistent.

The Procfile is the single list of process types: everything else must start the same
commands, honour PORT, and name only variables the settings read.
"""

import re
import shlex
from pathlib import Path

import pytest
import yaml

from helpers.artifacts import (
    TOOL_VARIABLES,
    ci_env_names,
    compose,
    compose_app_services,
    dockerfile_cmd,
    dockerfile_env_names,
    dockerfile_instructions,
    env_example_names,
)
from helpers.commands import assert_succeeds
from helpers.matrix import IDENTITY
from helpers.processes import procfile

PACKAGE = f"src/{IDENTITY['package_name']}"
# The files each answer promises; every other answer of its question must not render them.
PROMISES = {
    ("web_framework", "django"): [
        f"{PACKAGE}/django_settings.py",
        f"{PACKAGE}/management/commands/check.py",
    ],
    ("database", "postgresql"): [
        f"{PACKAGE}/models.py",
        f"{PACKAGE}/schemas.py",
        f"{PACKAGE}/migrations",
    ],
    ("worker", "celery"): [f"{PACKAGE}/jobs.py", f"{PACKAGE}/worker.py"],
    ("ci", "github"): [".github/workflows/ci.yml", ".github/workflows/template-update.yml"],
    ("ci", "gitlab"): [".gitlab-ci.yml"],
    ("deploy", "kubernetes"): [
        "deploy/kubernetes/base/kustomization.yaml",
        "deploy/kubernetes/overlays/example/kustomization.yaml",
    ],
}
# uv.lock is not among them: the project makes and owns it (its first `uv sync`).
ALWAYS = ["Dockerfile", ".dockerignore", "compose.yaml", "Procfile", ".env.example"]
# A number of 2 to 5 digits standing alone: a port written into a start command.
PORT_NUMBER = re.compile(r"(?<![\w.])\d{2,5}(?![\w.])")


@pytest.fixture
def rendered(file_combination: dict[str, str], render) -> Path:
    return render(file_combination)


def test_each_answer_renders_its_files_and_no_other_answers_files(
    file_combination: dict[str, str], rendered: Path
) -> None:
    for path in ALWAYS:
        assert (rendered / path).is_file(), path
    for (question, answer), paths in PROMISES.items():
        chosen = file_combination[question] == answer
        for path in paths:
            assert (rendered / path).exists() == chosen, f"{path} with {question}={answer}"


def test_dockerfile_passes_hadolint(rendered: Path) -> None:
    assert_succeeds(["hadolint", "--failure-threshold", "info", "Dockerfile"], rendered)


def test_dockerfile_builds_from_the_lock_and_runs_as_non_root(
    file_combination: dict[str, str], rendered: Path
) -> None:
    instructions = dockerfile_instructions(rendered)
    bases = [args for instruction, args in instructions if instruction == "FROM"]
    assert len(bases) >= 2, "not multi-stage"
    for base in bases:
        assert f"python:{file_combination['python_version']}-slim-trixie" in base
    runs = " ".join(args for instruction, args in instructions if instruction == "RUN")
    assert "uv sync --locked --no-dev" in runs
    assert "--mount=type=cache" in runs
    users = [args for instruction, args in instructions if instruction == "USER"]
    assert users, "no USER: the image runs as root"
    # A numeric uid, as Kubernetes' runAsNonRoot needs to check it (with a user name it refuses
    # to start the container); as a number, 0, 00 or 0:0 cannot pass for another user.
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), f"USER {users[-1]}: give the user as a number (uid:gid)"
    assert int(uid) != 0, f"USER {users[-1]}: the image runs as root"
    assert "PYTHONUNBUFFERED" in dockerfile_env_names(rendered)
    healthchecks = [args for instruction, args in instructions if instruction == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and ".image_healthcheck" in healthchecks[0]


def test_dockerignore_keeps_local_config_and_environments_out(rendered: Path) -> None:
    ignored = (rendered / ".dockerignore").read_text().split()
    assert {".env", ".venv", ".git"} <= set(ignored)


def test_dockerfile_compose_and_ci_start_the_procfile_commands(rendered: Path) -> None:
    processes = procfile(rendered)
    assert dockerfile_cmd(rendered) == processes["web"]
    services = compose_app_services(rendered)
    assert set(services) == set(processes), "compose and the Procfile list other processes"
    for name, spec in services.items():
        assert spec["command"] == processes[name], name


def test_no_start_command_hard_codes_a_port(rendered: Path) -> None:
    commands = [*procfile(rendered).values(), dockerfile_cmd(rendered)]
    commands += [spec["command"] for spec in compose_app_services(rendered).values()]
    for command in commands:
        assert not PORT_NUMBER.search(shlex.join(command)), command


def test_compose_gives_web_its_port_and_runs_release_before_web_and_worker(
    file_combination: dict[str, str], rendered: Path
) -> None:
    services = compose(rendered)["services"]
    web = services["web"]
    port = web["environment"]["PORT"]
    assert any(mapping.endswith(f":{port}") for mapping in web["ports"])
    assert ("db" in services) == (file_combination["database"] == "postgresql")
    assert ("redis" in services) == (file_combination["worker"] != "none")
    if "release" in services:
        for process in ("web", "worker"):
            if process in services:
                condition = services[process]["depends_on"]["release"]["condition"]
                assert condition == "service_completed_successfully", process
    for name in ("db", "redis"):
        if name in services:
            assert "healthcheck" in services[name]


def test_every_variable_named_is_one_the_settings_read(file_combination, rendered: Path) -> None:
    settings_names = env_example_names(rendered)  # held equal to Settings by the project's tests
    named = dockerfile_env_names(rendered) | ci_env_names(rendered)
    for spec in compose_app_services(rendered).values():
        named |= set(spec.get("environment", {}))
    unknown = {name for name in named if not TOOL_VARIABLES.fullmatch(name)} - settings_names
    assert unknown == set()
    assert "PORT" in settings_names
    # Flask and Django sign with SECRET_KEY; FastAPI reads none, so it asks for none.
    assert ("SECRET_KEY" in settings_names) == (file_combination["web_framework"] != "fastapi")


@pytest.mark.combinations(ci="github")
def test_github_workflows_pass_actionlint_and_zizmor(rendered: Path) -> None:
    # actionlint runs shellcheck on every `run:` block, shellcheck being on PATH.
    workflows = sorted(str(p.relative_to(rendered)) for p in rendered.glob(".github/workflows/*"))
    assert workflows == [".github/workflows/ci.yml", ".github/workflows/template-update.yml"]
    assert_succeeds(["actionlint", "-shellcheck", "shellcheck", *workflows], rendered)
    assert_succeeds(["zizmor", "--offline", "--min-severity", "low", ".github/workflows"], rendered)


@pytest.mark.combinations(ci="gitlab")
def test_gitlab_ci_matches_its_schema_and_its_scripts_pass_shellcheck(
    rendered: Path, tmp_path: Path
) -> None:
    assert_succeeds(
        ["check-jsonschema", "--builtin-schema", "vendor.gitlab-ci", ".gitlab-ci.yml"], rendered
    )
    jobs = yaml.safe_load((rendered / ".gitlab-ci.yml").read_text())
    for name, job in jobs.items():
        if isinstance(job, dict) and "script" in job:
            script = tmp_path / f"{name}.sh"
            script.write_text("#!/bin/sh\nset -e\n" + "\n".join(job["script"]) + "\n")
            assert_succeeds(["shellcheck", str(script)], rendered)


@pytest.mark.combinations(ci="github")
def test_github_ci_runs_the_checks_and_builds_the_image(
    file_combination: dict[str, str], rendered: Path
) -> None:
    workflow = yaml.safe_load((rendered / ".github/workflows/ci.yml").read_text())
    assert workflow["permissions"] == {"contents": "read"}
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    runs = "\n".join(step.get("run", "") for step in steps)
    for check in ("uv lock --check", "uv sync --locked", "ruff check", "ruff format --check",
                  "mypy", "pytest", "docker build"):  # fmt: skip
        assert check in runs, check
    # Compiled once at install, as in the image; the project itself does not ask every `uv run`.
    assert workflow["jobs"]["test"]["env"]["UV_COMPILE_BYTECODE"] == "1"
    for step in steps:
        if "uses" in step:
            assert re.fullmatch(r"[\w-]+/[\w-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
    services = workflow["jobs"]["test"].get("services", {})
    assert ("postgres" in services) == (file_combination["database"] == "postgresql")
    assert ("redis" in services) == (file_combination["worker"] != "none")


@pytest.mark.combinations(ci="gitlab")
def test_gitlab_ci_runs_the_checks_and_builds_the_image(
    file_combination: dict[str, str], rendered: Path
) -> None:
    jobs = yaml.safe_load((rendered / ".gitlab-ci.yml").read_text())
    scripts = "\n".join(line for job in jobs.values() if isinstance(job, dict)
                        for line in job.get("script", []))  # fmt: skip
    for check in ("uv lock --check", "uv sync --locked", "ruff check", "ruff format --check",
                  "mypy", "pytest", "docker build"):  # fmt: skip
        assert check in scripts, check
    assert jobs["test"]["variables"]["UV_COMPILE_BYTECODE"] == "1"
    services = " ".join(s["name"] for s in jobs["test"].get("services", []))
    assert ("postgres" in services) == (file_combination["database"] == "postgresql")
    assert ("redis" in services) == (file_combination["worker"] != "none")


@pytest.mark.combinations(ci="gitlab")
def test_gitlab_runs_for_merge_requests_the_default_branch_and_tags_once_each(
    rendered: Path,
) -> None:
    text = (rendered / ".gitlab-ci.yml").read_text()
    rules = yaml.safe_load(text)["workflow"]["rules"]
    assert rules == [
        {"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'},
        {"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"},
        {"if": "$CI_COMMIT_TAG"},
    ], "a branch pipeline beside a merge request's runs every change twice"
    header = " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    for promised in ("Every merge request", "the default branch", "every tag"):
        assert promised in header, promised
