"""The CI pipelines: run where this machine can run them, read where it cannot.

Run (pipelines.py says how): the GitHub workflow's `test` job, step by step, and the GitLab
pipeline's `test` job under gitlab-ci-local, each against real PostgreSQL and Redis set up as
the job's services would be. Read: the jobs that build and publish the image, which need a
Docker engine and a registry (GitHub's runner or GitLab's docker:dind) that no test here has.
"""

import json
import re
import shlex
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml

from helpers.commands import assert_succeeds
from helpers.compose_images import ensure_stand_ins
from helpers.containers import canonical, engine
from helpers.matrix import TEMPLATE_ROOT, choice_questions, defaults
from helpers.pipelines import (
    POSTGRES_PORT,
    REDIS_PORT,
    differences_beyond_ci,
    github_workflow,
    gitlab_pipeline,
    gitlab_pipeline_put_in,
    gitlab_postgres_variables,
    gitlab_service_aliases,
    run_github_job_steps,
    run_gitlab_job,
    start_backing_services,
)
from helpers.pytest_report import outcomes, reporting_to
from helpers.python_root import root_pythons
from helpers.sandbox import Sandbox

# A repository path with capitals: registries want the image's path in lowercase.
REPOSITORY = "Acme-Corp/Order-Service"
PINNED = re.compile(r"^\S+:\S+@sha256:[0-9a-f]{64}$")
# No public digest of these is known where this was written (includes/images.jinja).
UNPINNED_PYTHONS = {"3.15"}


@pytest.fixture(scope="session")
def ci_sandbox():
    """A private network holding the jobs' backing services at the ports they publish."""
    box = Sandbox()
    yield box
    box.close()


@pytest.fixture
def rendered(file_combination: dict[str, str], render) -> Path:
    return render(file_combination)


def overlay_image(project: Path) -> str | None:
    path = project / "deploy/kubernetes/overlays/example/kustomization.yaml"
    if not path.exists():
        return None
    (image,) = yaml.safe_load(path.read_text())["images"]
    return image["newName"]


# --- GitHub Actions -------------------------------------------------------------------------


# The workflow varies with these answers only (the test after this one holds it so): its steps
# run on one framework and Python, the lint and tests of the others being the GitLab job's.
@pytest.mark.once  # a field test: on each combination in the full tier
@pytest.mark.combinations(
    web_framework=defaults()["web_framework"], python_version=defaults()["python_version"]
)
def test_github_test_job_steps_pass_in_order_with_the_jobs_env(
    project: Path, ci_sandbox: Sandbox, tmp_path: Path
) -> None:
    job = github_workflow(project)["jobs"]["test"]
    services = job.get("services", {})
    for name, port in (("postgres", POSTGRES_PORT), ("redis", REDIS_PORT)):
        if name in services:
            assert services[name]["ports"] == [f"{port}:{port}"], services[name]
    postgres = services["postgres"]["env"] if "postgres" in services else None
    start_backing_services(ci_sandbox, postgres)
    # The tests' outcomes from pytest's report (pytest_report.py), not its summary's words.
    tested = tmp_path / "pytest.xml"
    results = run_github_job_steps(ci_sandbox, project, job, reporting_to(tested, {}))
    ran = [name for name, _ in results]
    report = "\n".join(
        f"--- {name}: exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        for name, r in results
    )
    print(*ran, sep="\n")  # each step's time, for -s
    assert all(r.returncode == 0 for _, r in results), report
    assert len(ran) == len([step for step in job["steps"] if "run" in step]), report
    tests = outcomes(tested)
    assert tests.passed and not tests.skipped and not tests.failed, f"{tests}\n{report[-3000:]}"


def test_github_postgres_service_is_healthy_only_once_it_takes_connections_over_tcp(
    render, tmp_path: Path
) -> None:
    """The workflow's health command for its postgres service, run as the runner runs it (a
    shell in the service's container; here the stand-in, which starts as the official image
    does) on a first start with a 5 s init script: unhealthy while the image's first-start
    server listens on its socket only, healthy after, when a password login over TCP works."""
    project = render({"ci": "github", "database": "postgresql"})
    service = github_workflow(project)["jobs"]["test"]["services"]["postgres"]
    options = shlex.split(service["options"])
    health = options[options.index("--health-cmd") + 1]
    found = engine()
    ensure_stand_ins(found)
    (tmp_path / "initdb").mkdir()
    (tmp_path / "initdb" / "seed.sql").write_text("SELECT pg_sleep(5);\n")
    name = f"ctf-github-postgres-{uuid.uuid4().hex[:8]}"
    variables = [arg for k, v in service["env"].items() for arg in ("-e", f"{k}={v}")]
    started = found.podman(
        "run", "--detach", "--name", name, *variables,
        "--volume", f"{tmp_path / 'initdb'}:/docker-entrypoint-initdb.d:ro",
        canonical(service["image"]),
    )  # fmt: skip
    assert started.returncode == 0, started.stderr

    def healthy() -> bool:
        return found.podman("exec", name, "sh", "-c", health).returncode == 0

    try:
        deadline = time.monotonic() + 60
        while (
            "running /docker-entrypoint-initdb.d/seed.sql" not in found.podman("logs", name).stdout
        ):
            assert time.monotonic() < deadline, "the init script did not start within 60 s"
            time.sleep(0.2)
        assert not healthy(), f"`{health}` said healthy while the server listens on no network"
        while not healthy():
            assert time.monotonic() < deadline, f"`{health}` not healthy within 60 s"
            time.sleep(0.5)
        login = found.podman(
            "exec", "--env", f"PGPASSWORD={service['env']['POSTGRES_PASSWORD']}", name,
            "psql", "--host=127.0.0.1", f"--username={service['env']['POSTGRES_USER']}",
            f"--dbname={service['env']['POSTGRES_DB']}", "--command=SELECT 1",
        )  # fmt: skip
        assert login.returncode == 0, login.stderr
    finally:
        found.podman("rm", "--force", "--time", "0", name)


@pytest.mark.combinations(ci="github")
def test_github_image_job_builds_once_and_pushes_to_ghcr_only_from_main(rendered: Path) -> None:
    """The one job that may write: packages, for this repository's image. Its steps need
    Docker and a registry, none of which is here, so they are read."""
    workflow = github_workflow(rendered)
    # YAML 1.1 reads the key `on` as True. By hand too, as the template-update workflow starts
    # it: a dispatch is no push, so its image is built and never published.
    assert workflow[True] == {
        "push": {"branches": ["main"]},
        "pull_request": None,
        "workflow_dispatch": None,
    }
    assert workflow["permissions"] == {"contents": "read"}
    jobs = workflow["jobs"]
    writers = {name for name, job in jobs.items() if "packages" in job.get("permissions", {})}
    assert writers == {"image"}
    image = jobs["image"]
    assert image["needs"] == "test", "an image is published only once the tests pass"
    assert image["permissions"] == {"contents": "read", "packages": "write"}
    build, login, push = [step for step in image["steps"] if "run" in step]
    assert "docker build" in build["run"] and "if" not in build, "pull requests build too"
    # The commit, as the release the image's error reports name (test_images builds with it).
    assert '--build-arg "RELEASE=${GITHUB_SHA}"' in build["run"]
    assert 'echo "IMAGE=$image" >> "$GITHUB_ENV"' in build["run"]
    assert login["env"] == {"GITHUB_TOKEN": "${{ secrets.GITHUB_TOKEN }}"}
    assert "docker login ghcr.io" in login["run"] and "--password-stdin" in login["run"]
    assert push["run"] == 'docker push "$IMAGE"'
    for step in (login, push):
        assert step["if"] == "github.event_name == 'push'", "pull requests never push"


@pytest.mark.parametrize("ci", ["github", "gitlab"])
def test_the_image_pushed_is_the_one_the_overlay_and_readme_name(render, ci: str) -> None:
    """The name the pipeline's own shell gives the image, for a repository with capitals, is
    the lowercase one the Kubernetes overlay and the README name."""
    project = render({**defaults(), "ci": ci, "deploy": "kubernetes", "repository": REPOSITORY})
    sha = "0123456789abcdef0123456789abcdef01234567"
    if ci == "github":
        build = github_workflow(project)["jobs"]["image"]["steps"][1]["run"]
        script = build.splitlines()[0] + '\nprintf %s "$image"'
        env = {"GITHUB_REPOSITORY": REPOSITORY, "GITHUB_SHA": sha}
        registry = "ghcr.io"
    else:
        build = gitlab_pipeline(project)["build-image"]["script"][0]
        (tag,) = re.findall(r'--tag "([^"]+)"', build)
        script = f'printf %s "{tag}"'
        # GitLab sets CI_REGISTRY_IMAGE to the project's path in lowercase.
        registry = "registry.gitlab.com"
        env = {"CI_REGISTRY_IMAGE": f"{registry}/{REPOSITORY.lower()}", "CI_COMMIT_SHA": sha}
    named = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout
    expected = f"{registry}/{REPOSITORY.lower()}"
    assert named == f"{expected}:{sha}"
    assert overlay_image(project) == expected
    readme = (project / "README.md").read_text()
    assert f"CI pushes {expected}:<commit SHA>" in readme


@pytest.mark.combinations(ci="github")
def test_github_workflow_depends_only_on_the_database_and_worker_answers(
    file_combination: dict[str, str], render
) -> None:
    """So the steps run above cover every workflow the template renders."""
    baseline = {**defaults(), **{q: file_combination[q] for q in ("database", "worker")}}
    mine = (render(file_combination) / ".github/workflows/ci.yml").read_text()
    assert mine == (render(baseline) / ".github/workflows/ci.yml").read_text()


# --- GitLab CI ------------------------------------------------------------------------------


# gitlab-ci-local's shell executor runs the job in this machine's shell: on the Pythons pyenv
# has here, each code combination on one of them. The job's lines are the same on every Python;
# what a Python changes in the lint and tests they run, the rendered projects' own checks see on
# every version.
@pytest.mark.pairwise
@pytest.mark.combinations(where=lambda c: c["python_version"] not in root_pythons())
def test_gitlab_test_job_passes_under_gitlab_ci_local(
    code_combination: dict[str, str], project: Path, render, ci_sandbox: Sandbox, tmp_path: Path
) -> None:
    gitlab_render = render({**code_combination, "ci": "gitlab", "repository": REPOSITORY})
    assert differences_beyond_ci(project, gitlab_render) == []
    job = gitlab_pipeline(gitlab_render)["test"]
    start_backing_services(ci_sandbox, gitlab_postgres_variables(job))
    with gitlab_pipeline_put_in(project, gitlab_render, ["test"]) as local:
        expected = gitlab_pipeline(gitlab_render)
        expected["test"].pop("services", None)
        assert local == expected, "the copy differs from the rendered file by more than services"
        # The tests' outcomes from pytest's report (pytest_report.py), not its summary's words.
        tested = tmp_path / "pytest.xml"
        result = run_gitlab_job(ci_sandbox, project, "test", gitlab_service_aliases(job), tmp_path,
                                variables=reporting_to(tested, {}))  # fmt: skip
    output = result.stdout + result.stderr
    # gitlab-ci-local's exit status is the job's: it ran every line of its script, and each
    # passed (a line that fails ends the job); the tests' run among them wrote the report.
    assert result.returncode == 0, output[-6000:]
    tests = outcomes(tested)
    assert tests.passed and not tests.skipped and not tests.failed, f"{tests}\n{output[-6000:]}"


@pytest.mark.combinations(ci="gitlab")
def test_gitlab_build_job_builds_once_and_pushes_to_the_registry_only_from_the_default_branch(
    rendered: Path,
) -> None:
    """docker:dind cannot run here, so the job is read; the shell of its push step is run
    for each kind of pipeline, with `docker` a shell function that prints what it would do."""
    pipeline = gitlab_pipeline(rendered)
    job = pipeline["build-image"]
    assert job["stage"] == "build" and pipeline["stages"] == ["test", "build"]
    build, publish = job["script"]
    assert build.startswith("docker build ")
    assert '--tag "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHA"' in build
    assert '--build-arg "RELEASE=$CI_COMMIT_SHA"' in build
    for variable in ("CI_REGISTRY_PASSWORD", "CI_REGISTRY_USER", "CI_REGISTRY"):
        assert f'"${variable}"' in publish, variable
    assert "--password-stdin" in publish
    image = "registry.gitlab.com/acme/order-service:abc123"
    for source, branch, pushes in (
        ("push", "main", True),
        ("merge_request_event", "", False),
        ("push", "", False),  # a tag's pipeline has no branch
    ):
        shell = "docker() { printf 'docker %s\\n' \"$*\"; }\n" + publish
        env = {"CI_PIPELINE_SOURCE": source, "CI_COMMIT_BRANCH": branch,
               "CI_DEFAULT_BRANCH": "main", "CI_REGISTRY": "registry.gitlab.com",
               "CI_REGISTRY_USER": "gitlab-ci-token", "CI_REGISTRY_PASSWORD": "x",
               "CI_REGISTRY_IMAGE": image.split(":")[0], "CI_COMMIT_SHA": "abc123",
               "PATH": "/usr/bin:/bin"}  # fmt: skip
        ran = subprocess.run(["sh", "-ec", shell], env=env, capture_output=True, text=True)
        assert ran.returncode == 0, ran.stderr
        assert (f"docker push {image}" in ran.stdout) == pushes, (source, branch, ran.stdout)
        assert ("docker login registry.gitlab.com" in ran.stdout) == pushes


# --- Dependency updates and pinned images ---------------------------------------------------


def test_renovate_config_matches_its_schema_and_updates_lock_actions_and_digests(
    render,
) -> None:
    """renovate.json is the same file in every combination (it is not a template). Template
    updates are the project's CI's (its template-update workflow or job), not Renovate's copier
    manager's, which would open a second pull request without the template's migrations."""
    rendered = render(defaults())
    assert_succeeds(
        ["check-jsonschema", "--builtin-schema", "vendor.renovate", "renovate.json"], rendered
    )
    config = json.loads((rendered / "renovate.json").read_text())
    assert {"config:recommended", "docker:pinDigests", "helpers:pinGitHubActionDigests"} <= set(
        config["extends"]
    )
    assert config["lockFileMaintenance"]["enabled"] is True  # uv lock --upgrade, weekly
    (python_rule,) = config["packageRules"]
    assert python_rule["matchPackageNames"] == ["python"] and python_rule["enabled"] is False
    assert config["copier"]["enabled"] is False, "two pull requests for each template release"


@pytest.mark.parametrize("python_version", choice_questions()["python_version"])
def test_every_base_image_is_pinned_by_a_digest_where_one_is_recorded(
    render, python_version: str
) -> None:
    rendered = render({**defaults(), "python_version": python_version})
    dockerfile = (rendered / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.MULTILINE))
    images = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    images += [i for i in re.findall(r"--from=(\S+)", dockerfile) if i not in stages]
    assert len(images) == 3, images
    python = f"python:{python_version}-slim-trixie"
    assert images[0].startswith(python) and images[1] == images[0]
    for image in images:
        if python_version in UNPINNED_PYTHONS and image.startswith(python):
            assert image == python, f"a digest that images.jinja does not record: {image}"
        else:
            assert PINNED.match(image), f"not pinned by digest: {image}"


def test_every_python_version_offered_has_a_digest_but_the_unrecorded() -> None:
    """Each Python offered is pinned, but for the versions with no digest known (3.15): their
    tag goes out alone, and the project's Renovate (docker:pinDigests) pins it."""
    text = (TEMPLATE_ROOT / "includes/images.jinja").read_text()
    digests = dict(re.findall(r'"(3\.\d+)": "sha256:([0-9a-f]{64})"', text))
    assert set(digests) == set(choice_questions()["python_version"]) - UNPINNED_PYTHONS
    assert len(set(digests.values())) == len(digests)
    renovate = json.loads((TEMPLATE_ROOT / "template" / "renovate.json").read_text())
    assert "docker:pinDigests" in renovate["extends"]
