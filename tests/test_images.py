"""The image of the code combinations that meet every pair of answers, built from the rendered
Dockerfile unmodified, and run.

Four code combinations (conftest.pairwise_over_pythons, with the salt "images" that compose's
tests share, so that they share the builds): each framework with and without a database and a
worker, each database with and without a worker; every Python's image built once. What else a
Python changes in an image, its install on that Python, the other tests check on every Python.

One build per combination (cached by project), reused by every check of that combination. The
containers run on the host's podman as the Kubernetes manifests run them: read-only, writable
only where the manifests mount an emptyDir, on the host network to reach the real PostgreSQL
and Redis the tests start. Sizes and times are written to bench/results/images.json.
"""

import contextlib
import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import tarfile
import tempfile
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from helpers.app_images import Built, app_image, slug
from helpers.containers import Engine, base_images, engine
from helpers.matrix import IDENTITY, TEMPLATE_ROOT, combination_id
from helpers.probes import slow_requests, with_slow_route
from helpers.processes import SECRET_KEY, app_env, http_get, procfile, worker_env
from helpers.readme import commands, dotenv, shell_blocks
from helpers.servers import free_port
from helpers.tiers import IMAGES
from helpers.worker_faults import not_json_objects, wait_for_result

RESULTS = TEMPLATE_ROOT / "bench" / "results" / "images.json"
MANIFESTS = TEMPLATE_ROOT / "template" / "{% if deploy == 'kubernetes' %}deploy{% endif %}"
GRACE_SECONDS = 10  # SHUTDOWN_GRACE_SECONDS given to the containers; SIGKILL 5 s later
SIZE_BUDGET = 1.3  # the image against its base image plus its virtual environment

pytestmark = pytest.mark.pairwise(IMAGES)


def writable_paths(process: str) -> list[str]:
    """Where the Kubernetes manifest of this Procfile process mounts an emptyDir."""
    names = {"web": "web-deployment", "worker": "worker-deployment", "release": "release-job"}
    (manifest,) = MANIFESTS.rglob(f"*{names[process]}.yaml*")
    return re.findall(r"mountPath:\s*(\S+)", manifest.read_text())


@pytest.fixture
def project(code_combination: dict[str, str], render, sync) -> Path:
    """Rendered with the combination's own slug, as compose's tests render it (one build)."""
    return sync(render({**code_combination, "project_slug": slug(code_combination)}))


@pytest.fixture
def image(code_combination: dict[str, str], project: Path) -> Built:
    """The combination's image on the host's podman, built once per test process."""
    built = app_image(engine(), project, code_combination)
    record(code_combination, build_seconds=round(built.seconds, 1))
    return built


def record(code_combination: dict[str, str], **measured: object) -> None:
    """Merge measurements into bench/results/images.json (test processes share it)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with (RESULTS.parent / ".images.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        results.setdefault(combination_id(code_combination), {}).update(measured)
        RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def env_arguments(variables: dict[str, str]) -> list[str]:
    return [argument for name, value in variables.items() for argument in ("-e", f"{name}={value}")]


def read_only_arguments(process: str) -> list[str]:
    """A read-only root, and a tmpfs only where the process's manifest gives an emptyDir."""
    tmpfs = [argument for path in writable_paths(process) for argument in ("--tmpfs", path)]
    return ["--read-only", "--read-only-tmpfs=false", *tmpfs]


@dataclass
class Container:
    engine: Engine
    name: str

    def podman(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.engine.podman(*args, timeout=timeout)

    def pid1_uid(self) -> int:
        status = self.podman("exec", self.name, "cat", "/proc/1/status")
        found = re.search(r"^Uid:\s+(\d+)", status.stdout, re.M)
        assert found, f"`podman exec` exited {status.returncode}: {status.stderr[-2000:]}"
        return int(found.group(1))

    def healthcheck(self) -> subprocess.CompletedProcess:
        return self.podman("healthcheck", "run", self.name)

    def stop(self) -> tuple[int, float]:
        """`docker stop`, step by step: SIGTERM to the container's process, SIGKILL if it still
        runs 5 s after its grace period. The exit code, and the seconds from the SIGTERM to the
        exit as the engine recorded it. Not the time `podman stop` takes: its start before the
        signal and its clean-up after the exit (unmounting; seconds on a loaded machine) are the
        engine's work, not the service's."""
        pid = int(self.podman("inspect", "--format", "{{.State.Pid}}", self.name).stdout)
        sent = time.time()
        os.kill(pid, signal.SIGTERM)
        try:
            self.podman("wait", self.name, timeout=GRACE_SECONDS + 5)
        except subprocess.TimeoutExpired:
            self.podman("kill", "--signal", "KILL", self.name)
            self.podman("wait", self.name)
        state = self.podman(
            "inspect", "--format", "{{.State.ExitCode}} {{.State.FinishedAt.UnixNano}}", self.name
        )
        code, finished = state.stdout.split()
        return int(code), int(finished) / 1e9 - sent

    def logs(self) -> tuple[list[str], str]:
        """The container's stdout lines and its whole stderr, kept apart."""
        logs = self.podman("logs", self.name)
        return logs.stdout.splitlines(), logs.stderr


@contextlib.contextmanager
def container(
    engine: Engine, image: str, process: str, *options: str, command: list[str] | None = None
) -> Iterator[Container]:
    """A container of the image running a process of the Procfile (web by the image's CMD)."""
    name = f"ctf-{process}-{uuid.uuid4().hex[:12]}"
    started = engine.podman(
        "run", "-d", "--name", name, "--network=host", *read_only_arguments(process), *options,
        image, *(command or []),
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        yield Container(engine, name)
    finally:
        engine.podman("rm", "-f", "-t", "0", name)


def wait_for_healthz(base_url: str, within: float) -> float:
    """Seconds until /healthz answers 200; fails past `within` seconds."""
    start = time.perf_counter()
    while True:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"{base_url}/healthz", timeout=0.5).close()
            return time.perf_counter() - start
        assert time.perf_counter() - start < within, f"/healthz not 200 within {within} s"
        time.sleep(0.02)


def wait_until_in_flight(base_url: str, answered: list[object], count: int, within: float) -> None:
    """Until each of the `count` requests sent is being answered, by the server's own count
    (/metrics, less the request that asks), or answered already (`answered`, as slow_requests
    fills it): however long a loaded machine takes to get them there. Fails past `within`."""
    start = time.perf_counter()
    while True:
        status, text = http_get(f"{base_url}/metrics")
        found = re.search(r"^http_requests_in_flight (\S+)$", str(text), re.M)
        held = int(float(found.group(1))) - 1 if status == 200 and found else 0
        if held + len(answered) >= count:
            return
        assert time.perf_counter() - start < within, (
            f"{held} of {count} requests in flight after {within} s ({len(answered)} answered)"
        )
        time.sleep(0.05)


def slow_route_in_web_only(project: Path, framework: str) -> Path:
    """A test-only /slow route added from outside the image (probes.with_slow_route), in the
    web process only: the HEALTHCHECK's own Python must start as lightly as in production."""
    added = (with_slow_route(project, framework, seconds=2) / "sitecustomize.py").read_text()
    folder = project.parent / f"{project.name}-image-slow-route"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        f"import sys\nif '{IDENTITY['package_name']}.web' in sys.orig_argv:\n"
        + textwrap.indent(added, "    ")
    )
    return folder


def web_arguments(project: Path, service_env: dict[str, str], port: int) -> list[str]:
    variables = app_env(
        project, service_env, PORT=str(port), SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS)
    )
    return env_arguments(variables)


def test_web_container_serves_from_a_read_only_root_as_uid_10001_names_its_commit_and_drains(
    code_combination: dict[str, str], project: Path, image: Built, service_env: dict[str, str]
) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    slow = slow_route_in_web_only(project, code_combination["web_framework"])
    arguments = [*web_arguments(project, service_env, port), "-v", f"{slow}:/slow:ro"]
    start = time.perf_counter()
    with container(engine(), image.reference, "web", *arguments, "-e", "PYTHONPATH=/slow") as web:
        wait_for_healthz(base_url, within=15)
        # From `podman run`, container creation too: recorded for the bench, not judged here.
        healthy_in = time.perf_counter() - start
        assert http_get(f"{base_url}/healthz") == (200, {"status": "ok"})
        assert web.pid1_uid() == 10001
        check = web.healthcheck()
        assert check.returncode == 0, f"HEALTHCHECK: {check.stdout}{check.stderr}"
        # The same check pointed at a port where nothing listens fails: it does probe HTTP.
        command = json.loads(web.podman("inspect", "--format", "{{json .Config.Healthcheck.Test}}",
                                        web.name).stdout)[1:]  # fmt: skip
        missed = web.podman("exec", "-e", "PORT=1", web.name, *command)
        assert missed.returncode != 0, "the HEALTHCHECK passes with no server behind PORT"
        # The commit it was built from, as CI passes it: the release its error reports name.
        release = web.podman("exec", web.name, "printenv", "SENTRY_RELEASE").stdout.strip()
        assert release == image.release

        in_flight, statuses = slow_requests(base_url, 4)
        wait_until_in_flight(base_url, statuses, 4, within=15)
        exit_code, stop_seconds = web.stop()
        for thread in in_flight:
            thread.join(timeout=30)
        stdout, stderr = web.logs()
    record(
        code_combination,
        healthy_seconds=round(healthy_in, 2),
        stop_seconds=round(stop_seconds, 2),
        load_average=round(os.getloadavg()[0], 1),
    )
    assert statuses == [200] * 4, f"in-flight requests at SIGTERM: {statuses}"
    assert exit_code == 0, f"exit code {exit_code} after SIGTERM"
    assert stop_seconds < GRACE_SECONDS, (
        f"exited {stop_seconds:.1f} s after SIGTERM, past its grace period ({GRACE_SECONDS} s)"
    )
    assert stdout, "nothing logged"
    assert not not_json_objects(stdout), (
        f"stdout lines that are not JSON: {not_json_objects(stdout)}"
    )
    assert stderr == "", f"on stderr: {stderr}"


def test_readme_docker_run_line_serves_the_image_with_the_env_file(
    code_combination: dict[str, str], project: Path, image: Built, service_env: dict[str, str],
    tmp_path: Path,
) -> None:  # fmt: skip
    """The README's `docker run` line with the `.env` its "Run it" block makes (a secret of
    the reader's own), where only the backing services' addresses and the port are this
    test's: the service starts, reaches them (/readyz) and serves through its framework."""
    (block,) = shell_blocks(project / "README.md")["Build and run the image"]
    build, run = commands(block)[:2]
    tag = shlex.split(build)[3]
    assert shlex.split(run, comments=True) == [
        "docker", "run", "--rm", "--env-file", ".env", "--network", "host", tag,
    ]  # fmt: skip
    port = free_port()
    dotenv_file = tmp_path / ".env"
    example = dotenv(project / ".env.example")
    secret = {"SECRET_KEY": SECRET_KEY} if "SECRET_KEY" in example else {}
    made = {**example, **secret, **service_env, "PORT": str(port)}
    dotenv_file.write_text("".join(f"{name}={value}\n" for name, value in made.items()))
    with container(engine(), image.reference, "web", "--env-file", str(dotenv_file)) as web:
        base_url = f"http://localhost:{port}"
        try:
            wait_for_healthz(base_url, within=15)
        except AssertionError as missed:
            raise AssertionError(f"{missed}\n{web.logs()}") from None
        assert http_get(f"{base_url}/readyz")[0] == 200
        status, body = http_get(f"{base_url}/no-such-resource")
        assert status == 404 and isinstance(body, dict) and body["error"] == "Not Found"


def image_files(engine: Engine, reference: str) -> dict[str, tarfile.TarInfo]:
    """Every path in the image's file system (no leading slash), from `podman export`."""
    created = engine.podman("create", reference)
    assert created.returncode == 0, created.stderr
    name = created.stdout.strip()
    try:
        with tempfile.TemporaryDirectory(dir="/tmp") as scratch:
            archive = Path(scratch) / "rootfs.tar"
            exported = engine.podman("export", "-o", str(archive), name)
            assert exported.returncode == 0, exported.stderr
            with tarfile.open(archive) as tar:
                return {member.name.lstrip("./"): member for member in tar.getmembers()}
    finally:
        engine.podman("rm", "-f", name)


BUILD_TOOLS = re.compile(r"(^|/)(uv|uvx|gcc|cc|g\+\+|c\+\+|clang|make|ld|as|git)(-[\d.]+)?$")
SECRET_NAMES = re.compile(r"SECRET|PASSWORD|TOKEN|DATABASE_URL|REDIS_URL", re.I)


def test_image_holds_the_virtual_environment_only_within_its_size_budget(
    code_combination: dict[str, str], project: Path, image: Built
) -> None:
    found = engine()
    files = image_files(found, image.reference)
    app = sorted({path.split("/")[1] for path in files if path.startswith("app/") and "/" in path})
    assert app == [".venv"], f"/app holds more than the environment: {app}"
    leaked = [path for path in files if path.rsplit("/", 1)[-1] in (".env", "CANARY", ".git")]
    assert not leaked, f"from the build context: {leaked}"
    package = f"/site-packages/{IDENTITY['package_name']}/"
    assert not [p for p in files if package in p and "test" in p], "the project's tests"
    tools = [p for p in files if BUILD_TOOLS.search(p) and "bin/" in p and files[p].isfile()]
    assert not tools, f"build tools in the image: {tools}"
    # The harness mounts a uv.toml at build time (containers.UV_TOML): its mount point stays,
    # empty, as every `RUN -v` target does; its content must not.
    assert files.get("etc/uv/uv.toml", tarfile.TarInfo()).size == 0, "uv settings baked in"
    config = json.loads(found.podman("image", "inspect", image.reference).stdout)[0]["Config"]
    assert not [e for e in config.get("Env", []) if SECRET_NAMES.search(e.split("=")[0])]

    venv = sum(m.size for p, m in files.items() if p.startswith("app/.venv/") and m.isfile())
    (base,) = {r for r in base_images((project / "Dockerfile").read_text()) if "/python:" in r}
    base_size = found.image_size(base, build=True)
    size = found.image_size(image.reference)
    record(code_combination, image_bytes=size, base_bytes=base_size, venv_bytes=venv)
    assert size <= SIZE_BUDGET * (base_size + venv), (
        f"{size / 1e6:.0f} MB, over {SIZE_BUDGET} x (base {base_size / 1e6:.0f} MB"
        f" + environment {venv / 1e6:.0f} MB)"
    )


# What a release records, by framework: the revision (Alembic), the migrations (Django).
MIGRATIONS_APPLIED = {
    "fastapi": "SELECT version_num FROM alembic_version",
    "flask": "SELECT version_num FROM alembic_version",
    "django": "SELECT count(*) FROM django_migrations",
}


@pytest.mark.combinations(where=lambda c: c["database"] != "none" or c["worker"] != "none")
def test_release_migrates_and_the_worker_runs_a_job_posted_to_web_all_in_containers(
    code_combination: dict[str, str], project: Path, image: Built, service_env: dict[str, str]
) -> None:
    found = engine()
    commands = procfile(project)
    variables = env_arguments(app_env(project, service_env))
    if "release" in commands:
        release = found.podman(
            "run", "--rm", "--network=host", *read_only_arguments("release"), *variables,
            image.reference, *commands["release"], timeout=120,
        )  # fmt: skip
        assert release.returncode == 0, f"release:\n{release.stdout}\n{release.stderr}"
        with psycopg.connect(service_env["DATABASE_URL"]) as connection:
            (applied,) = connection.execute(MIGRATIONS_APPLIED[code_combination["web_framework"]])
        assert applied[0], "release ran but recorded no migration"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with contextlib.ExitStack() as running:
        running.enter_context(
            container(found, image.reference, "web", *web_arguments(project, service_env, port))
        )
        wait_for_healthz(base_url, within=15)
        status, body = http_get(f"{base_url}/readyz")
        assert status == 200, body
        if "worker" not in commands:
            return
        for_worker = env_arguments(worker_env(app_env(project, service_env)))
        worker = running.enter_context(
            container(found, image.reference, "worker", *for_worker, command=commands["worker"])
        )
        message = f"from-the-web-container-{uuid.uuid4().hex[:8]}"
        request = urllib.request.Request(
            f"{base_url}/jobs/example", method="POST",
            data=json.dumps({"message": message, "seconds": 0}).encode(),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
        ran = wait_for_result(service_env["REDIS_URL"], message, timeout=30)
        check = worker.healthcheck()
        exit_code, stop_seconds = worker.stop()
        stdout, stderr = worker.logs()
    assert ran, f"the worker container did not run the job; its output:\n{stdout}\n{stderr}"
    assert check.returncode == 0, f"the worker's HEALTHCHECK: {check.stdout}{check.stderr}"
    assert exit_code == 0 and stop_seconds < GRACE_SECONDS, (exit_code, stop_seconds)
    assert not not_json_objects(stdout), not_json_objects(stdout)
    assert stderr == "", f"the worker wrote on stderr: {stderr}"


@pytest.mark.combinations(
    where=lambda c: c["web_framework"] == "django" and c["database"] != "none"
)
def test_djangos_admin_site_is_served_with_static_files_collected_at_build_from_a_read_only_root(
    project: Path, image: Built, service_env: dict[str, str]
) -> None:
    """The admin site's login page and the stylesheets it links, under the names the build's
    `collectstatic` gave them (a hash of their content), served by the app itself (WhiteNoise)
    from the image's read-only root: nothing is collected or written at run time."""
    found = engine()
    release = found.podman(
        "run", "--rm", "--network=host", *read_only_arguments("release"),
        *env_arguments(app_env(project, service_env)), image.reference,
        *procfile(project)["release"], timeout=120,
    )  # fmt: skip
    assert release.returncode == 0, f"release:\n{release.stdout}\n{release.stderr}"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    arguments = web_arguments(project, service_env, port)
    with container(found, image.reference, "web", *arguments) as web:
        wait_for_healthz(base_url, within=15)
        status, page = http_get(f"{base_url}/admin/login/")
        assert status == 200, page
        stylesheets = re.findall(r'href="(/static/admin/css/[^"]+)"', str(page))
        assert stylesheets, f"the admin page links no stylesheet: {page}"
        for path in stylesheets:
            assert re.search(r"\.[0-9a-f]{12}\.css$", path), f"{path}: not a collected name"
            with urllib.request.urlopen(base_url + path, timeout=10) as response:
                assert response.status == 200, path
                assert response.headers["Content-Type"].startswith("text/css"), path
                assert response.read(), path
        _stdout, stderr = web.logs()
    assert stderr == "", f"on stderr: {stderr}"
