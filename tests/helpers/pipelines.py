"""Run a rendered project's CI pipelines here, as far as this machine allows.

GitHub Actions cannot run here (its actions come from GitHub), so a job's `run:` steps are
executed in order by bash, as the runner runs them, with the job's `env:` and the variables the
runner sets. Its service containers are stood in for by the sandbox's PostgreSQL and Redis,
made with the service's own user, password and database, on the port it publishes.

GitLab CI runs under gitlab-ci-local (npm) on the host shell. A job's `services:` make it start
containers on a network of their own, which no engine here provides; so it is given a copy of
the file without the run job's `services:`, and the sandbox stands in for them instead: their
aliases resolve to its loopback (a hosts file in a mount namespace of the job's own), with the
user, password and database their `variables:` name. The job's own variables stay as written.

The job runs in the installed project of its code combination, rendered with the default CI
answer, with the GitLab render's pipeline file put in for the run and taken out after it: the
two renders differ in their CI files, README and answers only (checked first), so the project
is installed once, and its caches shared, rather than installed again for the pipeline.
"""

import copy
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
import yaml

from helpers.commands import assert_succeeds, rendered_files
from helpers.matrix import TEMPLATE_ROOT
from helpers.python_root import in_project
from helpers.sandbox import Sandbox

GITLAB_CI_LOCAL = TEMPLATE_ROOT / "node_modules" / ".bin" / "gitlab-ci-local"
# The file gitlab-ci-local reads: the rendered one, less the run jobs' `services:`.
LOCAL_PIPELINE = ".gitlab-ci.local.yml"
POSTGRES_PORT, REDIS_PORT = 5432, 6379


def github_workflow(project: Path) -> dict:
    return yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text())


def gitlab_pipeline(project: Path) -> dict:
    return yaml.safe_load((project / ".gitlab-ci.yml").read_text())


def start_backing_services(sandbox: Sandbox, postgres: dict | None) -> None:
    """The sandbox's servers as fresh service containers have them: PostgreSQL (when the job
    has one) with the user, password and database its environment names, Redis empty."""
    sandbox.start_compose_services(POSTGRES_PORT, REDIS_PORT)
    if postgres is not None:
        user = postgres.get("POSTGRES_USER", "postgres")
        sandbox.reset_compose_services(
            user, postgres.get("POSTGRES_PASSWORD", ""), postgres.get("POSTGRES_DB", user)
        )
    else:
        with redis.Redis(port=REDIS_PORT) as client:
            sandbox.call(client.flushall)


class OnHost:
    """Runs as Sandbox.run does, on the host's network: for jobs that reach the package index."""

    def run(self, command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, capture_output=True, text=True, **kwargs)  # type: ignore


def github_runner_env(
    project: Path, job: dict, env_file: Path, output_file: Path
) -> dict[str, str]:
    """What a step sees on GitHub's runner: the machine's environment, the variables the runner
    sets that these steps may read, and the job's `env:`."""
    return {
        **os.environ,
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(project),
        "GITHUB_ENV": str(env_file),
        "GITHUB_OUTPUT": str(output_file),
        "RUNNER_OS": "Linux",
        **{name: str(value) for name, value in job.get("env", {}).items()},
    }


def run_github_job_steps(
    sandbox: Sandbox | OnHost,
    project: Path,
    job: dict,
    extra_env: dict[str, str] | None = None,
    through: str | None = None,
) -> list[tuple[str, subprocess.CompletedProcess[str]]]:
    """Each `run:` step of the job in order, as `bash -e` in the checkout, as the runner runs a
    step with no `shell:`; stops at the first that fails, or after the step named `through`.
    `uses:` steps are not run: checkout is the project itself, and setup-uv's uv is the one on
    PATH. `extra_env`: the test's own variables on top of the runner's and the job's (a report
    pytest writes, say)."""
    results = []
    with (
        tempfile.NamedTemporaryFile("w", suffix=".env") as env_file,
        tempfile.NamedTemporaryFile("w", suffix=".output") as output_file,
    ):
        runner = github_runner_env(project, job, Path(env_file.name), Path(output_file.name))
        for step in job["steps"]:
            if "run" not in step:
                continue
            started = time.monotonic()
            # The step's own `env:`, but the test's values win (a token it stands in for).
            step_env = {name: str(value) for name, value in step.get("env", {}).items()}
            result = sandbox.run(
                in_project(["bash", "-e", "-c", step["run"]], project),
                cwd=project, env={**runner, **step_env, **(extra_env or {})}, timeout=600,
            )  # fmt: skip
            name = f"{step.get('name', step['run'])} ({time.monotonic() - started:.1f} s)"
            results.append((name, result))
            if result.returncode != 0 or (through is not None and step.get("name") == through):
                break
    return results


def gitlab_postgres_variables(job: dict) -> dict | None:
    """The `variables:` of the job's PostgreSQL service, or None when it has none."""
    for service in job.get("services", []):
        if isinstance(service, dict) and service["name"].startswith("postgres"):
            return service.get("variables", {})
    return None


def gitlab_service_aliases(job: dict) -> list[str]:
    """The host names the job's services answer to."""
    aliases = []
    for service in job.get("services", []):
        name = service["name"] if isinstance(service, dict) else service
        alias = service.get("alias") if isinstance(service, dict) else None
        aliases.append(alias or name.split(":")[0].split("/")[-1])
    return aliases


# What a render with another CI answer may differ in; everything else is the same code.
CI_FILES = {
    ".gitlab-ci.yml",
    ".github/workflows/ci.yml",
    ".github/workflows/template-update.yml",
    "README.md",
    ".copier-answers.yml",
}


def differences_beyond_ci(project: Path, other_render: Path) -> list[str]:
    """The files of `other_render`, other than CI_FILES, that the project lacks or has changed."""
    return [
        relative
        for relative, content in rendered_files(other_render).items()
        if relative not in CI_FILES
        and (not (project / relative).is_file() or (project / relative).read_bytes() != content)
    ]


@contextmanager
def gitlab_pipeline_put_in(project: Path, gitlab_render: Path, jobs: list[str]) -> Iterator[dict]:
    """The project with the GitLab render's pipeline, and a copy of it less the `services:` of
    the jobs to run for gitlab-ci-local, committed in a git repository on the default branch
    (gitlab-ci-local reads a job's files from git); all of it removed afterwards."""
    pipeline = yaml.safe_load((gitlab_render / ".gitlab-ci.yml").read_text())
    local = copy.deepcopy(pipeline)
    for name in jobs:
        local[name].pop("services", None)
    added = [project / ".gitlab-ci.yml", project / LOCAL_PIPELINE]
    made = [project / ".git", project / ".gitlab-ci-local", project / ".uv-cache"]
    assert not any(path.exists() for path in added + made), "the project is not as rendered"
    try:
        shutil.copyfile(gitlab_render / ".gitlab-ci.yml", added[0])
        added[1].write_text(yaml.safe_dump(local, sort_keys=False))
        assert_succeeds(["git", "init", "--quiet", "--initial-branch=main"], project)
        (project / ".git" / "info" / "exclude").write_text(".gitlab-ci-local/\n.uv-cache/\n")
        assert_succeeds(["git", "add", "-A"], project)
        assert_succeeds(["git", "commit", "--quiet", "-m", "pipeline run"], project)
        yield local
    finally:
        for path in added:
            path.unlink(missing_ok=True)
        for path in made:
            shutil.rmtree(path, ignore_errors=True)


def run_gitlab_job(
    sandbox: Sandbox,
    project: Path,
    job_name: str,
    aliases: list[str],
    tmp_path: Path,
    variables: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`gitlab-ci-local --force-shell-executor JOB` in the sandbox, the services' aliases
    resolving to its loopback as a runner's service network resolves them; `variables`, the
    test's own, given to the job as CI/CD variables are (`--variable`)."""
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost {' '.join(aliases)}\n::1 localhost\n")
    given = " ".join(
        f"--variable {shlex.quote(f'{name}={value}')}" for name, value in (variables or {}).items()
    )
    script = (
        f'mount --bind "{hosts}" /etc/hosts && exec "{GITLAB_CI_LOCAL}" '
        f'--force-shell-executor --file {LOCAL_PIPELINE} --home "{tmp_path}" --no-color '
        f'{given} "{job_name}"'
    )
    return sandbox.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        cwd=project,
        timeout=900,
    )
