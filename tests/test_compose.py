"""The rendered compose.yaml brought up for real, as a user runs it: `docker compose` (here
docker-compose on podman's API, compose_runner.py) with PostgreSQL and Redis stand-ins under the
names compose.yaml uses (compose_images.py).

The app image is built by the tests' harness (app_images.py, containers.py) and tagged as
compose's `image:`;
`up` then runs without `--build`: compose would build with the host's podman, whose buildah
cannot build this Dockerfile (../shared/notes/containers.md). Everything else is the project's
compose.yaml as rendered, on code combinations with a database, a worker, both and neither.
Each test's project has its own name and published ports, and is removed whole (containers,
volumes, network) afterwards, failed or not.
"""

import contextlib
import datetime
import ipaddress
import itertools
import json
import re
import shutil
import socket
import subprocess
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis
import yaml

from helpers.app_images import app_image, slug
from helpers.compose_images import ensure_stand_ins
from helpers.compose_runner import ComposeEngine, ComposeProject, compose_project
from helpers.containers import Engine, engine
from helpers.matrix import (
    IDENTITY,
    code_questions,
    combination_id,
    combinations,
    pairwise_over_pythons,
)
from helpers.probes import with_slow_route
from helpers.processes import SECRET_KEY
from helpers.pytest_report import outcomes, reporting_to
from helpers.python_root import in_project
from helpers.readme import block_starting, block_with, commands, shell_blocks
from helpers.sandbox import Sandbox
from helpers.tiers import IMAGES
from helpers.worker_faults import RESULTS

PACKAGE = IDENTITY["package_name"]
# The worker's SHUTDOWN_GRACE_SECONDS in the `down` test (20 by default): a job longer than that
# is cut off by `down`, and a 2 s request finishes. Shorter than the default, so that under load
# the cut-off and the exit stay well inside compose.yaml's 30 s stop_grace_period.
GRACE_SECONDS = 5
JOB_SECONDS = GRACE_SECONDS + 5  # the cut-off job's length
# Room for the job's Redis connection to stall under load (with 5 s, the time limit stopped the
# rerun job once, in a run with cold caches), and the redelivery longer, as the settings require.
TIME_LIMIT_SECONDS = JOB_SECONDS + 20
REDELIVERY_SECONDS = TIME_LIMIT_SECONDS + 5
UP_BOUND = 120
ports = itertools.count(18000, 10)


def param(code_combination: dict[str, str]):
    name = combination_id(code_combination)
    return pytest.param(code_combination, id=name, marks=pytest.mark.xdist_group(name))


# The image tests' combinations (every pair of answers met): their builds are shared. Field
# tests: in the default tier, once each, on the image tests' one (tiers.py).
pytestmark = pytest.mark.pairwise(IMAGES)
COMBINATIONS = [param(c) for c in pairwise_over_pythons(combinations(code_questions()), IMAGES)]
BACKED = [
    param for param in COMBINATIONS if set(param.values[0].values()) & {"postgresql", "celery"}
]


@pytest.fixture(scope="session")
def compose_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeEngine]:
    """podman's Docker API in a network namespace of this test process, the stand-ins made."""
    found: Engine = engine()
    took = ensure_stand_ins(found)
    if took:
        print(f"compose stand-in images made: {took}")
    sandbox = Sandbox()
    compose = ComposeEngine(found, sandbox, tmp_path_factory.mktemp("compose-engine"))
    yield compose
    compose.close()
    sandbox.close()


@pytest.fixture(scope="session")
def podman_compose_engine(compose_engine: ComposeEngine) -> Iterator[ComposeEngine]:
    """An API service for podman-compose, with a store of its own (ComposeEngine), in the same
    network namespace as compose_engine's. A short path: podman's sockets live under it."""
    store = Path(tempfile.mkdtemp(prefix="tf-podman-", dir="/tmp"))
    workdir = store / "engine"
    workdir.mkdir()
    engine = ComposeEngine(compose_engine.engine, compose_engine.sandbox, workdir, store)
    yield engine
    engine.close()
    shutil.rmtree(store, ignore_errors=True)


@pytest.fixture
def image_project(answers: dict[str, str], render, sync, compose_engine: ComposeEngine) -> Path:
    """The combination rendered with a slug of its own, installed, its image built (shared with
    the image tests: app_images.py)."""
    project = sync(render({**answers, "project_slug": slug(answers)}))
    app_image(compose_engine.engine, project, answers)
    return project


def published(**extra: str) -> dict[str, str]:
    """Ports of this test's own, and Flask's SECRET_KEY, which compose.yaml requires."""
    port = next(ports)
    return {
        "HOST_PORT": str(port),
        "DB_HOST_PORT": str(port + 1),
        "REDIS_HOST_PORT": str(port + 2),
        "SECRET_KEY": SECRET_KEY,
        **extra,
    }


def project_name(answers: dict[str, str], what: str) -> str:
    return f"{what}{uuid.uuid4().hex[:6]}-{combination_id(answers).replace('.', '')}"


def http(method: str, url: str, body: dict | None = None) -> tuple[int, object]:
    request = urllib.request.Request(
        url, method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except OSError as error:
        return 0, str(error)
    return status, json.loads(raw or b"null")


def wait_until(sandbox: Sandbox, check: Callable[[], bool], what: str, timeout: float) -> float:
    """Seconds until `check`, run inside the namespace, holds; fails after `timeout`."""
    started = time.monotonic()
    while not sandbox.call(check):
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.2)
    return time.monotonic() - started


def ready(port: str) -> Callable[[], bool]:
    return lambda: http("GET", f"http://127.0.0.1:{port}/readyz")[0] == 200


def job_done(port: str, message: str) -> Callable[[], bool]:
    def done() -> bool:
        with redis.Redis(port=int(port)) as client:
            return message.encode() in client.lrange(RESULTS, 0, -1)

    return done


def queue_state(port: str) -> dict[str, int]:
    """Each Redis key's length (list, hash or sorted set): where the queue's jobs are."""
    lengths = {"list": "llen", "hash": "hlen", "zset": "zcard"}
    with redis.Redis(port=int(port), decode_responses=True) as client:
        return {
            key: getattr(client, lengths[kind])(key)
            for key in client.keys("*")
            if (kind := client.type(key)) in lengths
        }


def worker_state(stack: ComposeProject) -> str:
    """What a late job needs to be told apart: the worker's processes (a pool process stuck, or
    replaced after the time limit), where and how fast the worker finds `redis` (its /etc/hosts
    in the `down` test: fixed_addresses_override), and its own log."""
    name = stack.container("worker")["Name"]
    processes = stack.compose.podman("top", name, "pid", "ppid", "etime", "args", timeout=30)
    started = time.monotonic()
    resolved = stack.compose.podman("exec", name, "getent", "hosts", "redis", timeout=60)
    resolving = (
        f"`getent hosts redis` in the worker: exit {resolved.returncode} in "
        f"{time.monotonic() - started:.1f} s: {resolved.stdout.strip()}{resolved.stderr.strip()}"
    )
    own = [line for line in stack.logs().splitlines() if line.startswith("worker")]
    return "\n".join([processes.stdout.strip(), resolving, *own[-40:]])


def instant(text: str) -> datetime.datetime:
    """A podman timestamp (nanoseconds, Z or an offset) as a datetime."""
    text = text.replace("Z", "+00:00")
    head, _, rest = text.partition(".")
    digits = "".join(itertools.takewhile(str.isdigit, rest))
    return datetime.datetime.fromisoformat(f"{head}.{digits[:6]:0<6}{rest[len(digits) :]}")


def exit_codes(stack: ComposeProject, since: float) -> dict[str, list[int]]:
    """Each service's containers' exit codes since `since` (epoch seconds), from podman's
    events: `down` removes the containers, and their states with them."""
    found = stack.compose.podman(
        "events", "--stream=false", "--since", str(int(since)), "--format", "json",
        "--filter", f"label=com.docker.compose.project={stack.name}", "--filter", "event=died",
    )  # fmt: skip
    codes: dict[str, list[int]] = {}
    for line in found.stdout.splitlines():
        event = json.loads(line)
        service = event["Attributes"]["com.docker.compose.service"]
        codes.setdefault(service, []).append(event.get("ContainerExitCode", 0))
    return codes


def slow_init_override(folder: Path) -> Path:
    """A compose file that gives the database a first start as long as a user's seed data can
    make it: an init script of 6 s, which the postgres image runs on a temporary server that
    listens on its socket only. A health check that asks the socket says healthy then, and what
    waits for it (release) finds no server on the network."""
    (folder / "initdb").mkdir()
    (folder / "initdb" / "seed.sql").write_text("SELECT pg_sleep(6);\n")
    override = folder / "slow-init.yaml"
    mount = f"{folder / 'initdb'}:/docker-entrypoint-initdb.d:ro"
    override.write_text(f"services:\n  db:\n    volumes:\n      - {mount}\n")
    return override


@pytest.mark.full_tier("the README's compose line, and the image tests, run the same images")
@pytest.mark.parametrize("answers", COMBINATIONS)
def test_up_runs_release_before_web_serves_readyz_and_runs_a_posted_job(
    answers: dict[str, str], image_project: Path, compose_engine: ComposeEngine, tmp_path: Path
) -> None:
    """On a fresh volume, a slow first start of the database included (slow_init_override)."""
    sandbox = compose_engine.sandbox
    variables = published()
    if answers["database"] == "postgresql":
        variables["COMPOSE_FILE"] = f"compose.yaml:{slow_init_override(tmp_path)}"
    with compose_project(
        compose_engine, image_project, project_name(answers, "up"), variables
    ) as stack:
        started = time.monotonic()
        stack.succeeds("up", "--detach", timeout=UP_BOUND)
        wait_until(sandbox, ready(variables["HOST_PORT"]), "/readyz 200", timeout=60)
        print(f"{stack.name}: `up` to /readyz 200 in {time.monotonic() - started:.1f} s")

        if answers["database"] == "postgresql":
            release, web = stack.container("release"), stack.container("web")
            assert release["State"]["Status"] == "exited"
            assert release["State"]["ExitCode"] == 0, stack.logs()[-4000:]
            assert instant(release["State"]["FinishedAt"]) <= instant(web["State"]["StartedAt"])
            url = f"postgresql://app:app@127.0.0.1:{variables['DB_HOST_PORT']}/app"

            def migrated() -> bool:
                with psycopg.connect(url) as connection:
                    return connection.execute("SELECT to_regclass('notes')").fetchone()[0]

            assert sandbox.call(migrated), "release ran, but no notes table"

        if answers["worker"] != "none":
            message = f"compose-{uuid.uuid4()}"
            posted = sandbox.call(
                http, "POST", f"http://127.0.0.1:{variables['HOST_PORT']}/jobs/example",
                {"message": message, "seconds": 0},
            )  # fmt: skip
            assert posted[0] in (200, 201, 202), posted
            done = job_done(variables["REDIS_HOST_PORT"], message)
            wait_until(sandbox, done, "the posted job run by the worker container", 30)


def slow_route_override(project: Path, framework: str, folder: Path, worker: bool) -> Path:
    """A compose file that adds a test-only /slow route to web (mounted, never in the image),
    to have a request in flight when `down` comes, and gives the worker a short grace period
    and a short redelivery time (above the job's time limit, as the settings require)."""
    slow = with_slow_route(project, framework, seconds=2)
    override = folder / "slow-route.yaml"
    override.write_text(
        textwrap.dedent(f"""\
        services:
          web:
            environment:
              PYTHONPATH: /slow
            volumes:
              - {slow}:/slow:ro
        """)
        + (
            f'  worker:\n    environment:\n      SHUTDOWN_GRACE_SECONDS: "{GRACE_SECONDS}"\n'
            f'      JOB_TIME_LIMIT_SECONDS: "{TIME_LIMIT_SECONDS}"\n'
            f'      JOB_REDELIVERY_SECONDS: "{REDELIVERY_SECONDS}"\n'
            if worker
            else ""
        )
    )
    return override


@pytest.fixture
def fixed_addresses_override(
    image_project: Path, compose_engine: ComposeEngine, tmp_path: Path
) -> Iterator[Path]:
    """A compose file that gives each service of the project a fixed address on the project's
    network, on a subnet reserved for the test (ComposeEngine.reserved_subnet), and puts the
    other services' names and addresses in its /etc/hosts. The services then reach each other by
    the names compose.yaml uses with no lookup sent to aardvark-dns, which under load answers
    late or not at all (compose_runner.py). For a test whose subject is not the names: the `up`
    test resolves them as compose does."""
    with compose_engine.reserved_subnet() as subnet:
        yield _fixed_addresses(
            compose_services(image_project), subnet, tmp_path / "fixed-addresses.yaml"
        )


def compose_services(project: Path) -> list[str]:
    return sorted(yaml.safe_load((project / "compose.yaml").read_text())["services"])


def _fixed_addresses(
    services: list[str], subnet: ipaddress.IPv4Network, override: Path, network: str | None = None
) -> Path:
    # The subnet's first address is the network's gateway (netavark's).
    addresses = dict(zip(services, list(subnet.hosts())[1 : len(services) + 1], strict=True))
    named = {"name": network} if network else {}
    fixed = {
        "networks": {"default": {**named, "ipam": {"config": [{"subnet": str(subnet)}]}}},
        "services": {
            service: {
                "networks": {"default": {"ipv4_address": str(address)}},
                "extra_hosts": [
                    f"{name}:{addresses[name]}" for name in services if name != service
                ],
            }
            for service, address in addresses.items()
        },
    }
    override.write_text(yaml.safe_dump(fixed))
    return override


@pytest.mark.full_tier("the web process's own SIGTERM test drains a request in flight")
@pytest.mark.parametrize("answers", COMBINATIONS)
def test_down_finishes_an_in_flight_request_exits_0_and_the_next_up_runs_a_cut_off_job(
    answers: dict[str, str],
    image_project: Path,
    compose_engine: ComposeEngine,
    fixed_addresses_override: Path,
    tmp_path: Path,
) -> None:
    """A job longer than the grace period, running at `down`, goes back on the queue; Redis
    keeps it on its volume, and the next `up` runs it. Back on the queue at once when Celery's
    shutdown requeues it; else, when that shutdown hangs and the worker's exit bound cuts it
    short (under load, 1 `down` in about 30), once its redelivery time is over. The services
    find each other at fixed addresses (fixed_addresses_override): under load, a lookup of
    `redis` by the job run again after the next `up` stalled in aardvark-dns until the job's
    time limit, and another stalled the worker's start for 55 s."""
    sandbox = compose_engine.sandbox
    worker = answers["worker"] != "none"
    override = slow_route_override(image_project, answers["web_framework"], tmp_path, worker)
    variables = published(COMPOSE_FILE=f"compose.yaml:{override}:{fixed_addresses_override}")
    message = f"cut-off-{uuid.uuid4()}"
    since = time.time() - 1
    with (
        contextlib.ExitStack() as subnets,
        compose_project(
            compose_engine, image_project, project_name(answers, "down"), variables
        ) as stack,
    ):
        stack.succeeds("up", "--detach", timeout=UP_BOUND)
        wait_until(sandbox, ready(variables["HOST_PORT"]), "/readyz 200", timeout=60)
        if worker:
            queue = redis.Redis(port=int(variables["REDIS_HOST_PORT"]))
            sandbox.call(
                http, "POST", f"http://127.0.0.1:{variables['HOST_PORT']}/jobs/example",
                {"message": message, "seconds": JOB_SECONDS},
            )  # fmt: skip
            wait_until(sandbox, lambda: queue.hlen("unacked") == 1, "the job taken", 30)
        in_flight = sandbox.popen(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
             f"http://127.0.0.1:{variables['HOST_PORT']}/slow"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        with stack.logs_followed(tmp_path / "down.log") as log:
            time.sleep(0.5)  # in the server's hands, for two seconds
            started = time.monotonic()
            stack.succeeds("down", timeout=120)
            print(f"{stack.name}: `down` in {time.monotonic() - started:.1f} s")
        assert in_flight.communicate(timeout=30)[0] == "200", "the in-flight request was cut"
        codes = exit_codes(stack, since)
        assert "web" in codes, f"no exit seen: {codes}"
        assert all(code == 0 for each in codes.values() for code in each), (
            f"{codes}\n{log.read_text()[-6000:]}"
        )

        if worker:
            # The next `up` on a network and host ports of its own: netavark's teardown of the
            # containers `down` stopped can lag. Podman's IPAM kept the web's fixed address
            # past its removal and refused it to the next web (the full runs of stops 44 and
            # 45); with its own network, the next `up` came up but a connection to Redis's
            # published port timed out (stop 45's CI), as when a forwarding rule of the first
            # `up` is left and sends the port to the removed network. The queue is on Redis's
            # volume, which is what this test is about.
            next_network = _fixed_addresses(
                compose_services(image_project),
                subnets.enter_context(compose_engine.reserved_subnet()),
                tmp_path / "next-network.yaml",
                f"{stack.name}_next",
            )
            next_up = published(COMPOSE_FILE=f"compose.yaml:{override}:{next_network}")
            stack.env.update(next_up)
            stack.succeeds("up", "--detach", timeout=UP_BOUND)
            with stack.logs_followed(tmp_path / "next-up.log") as log:
                done = job_done(next_up["REDIS_HOST_PORT"], message)
                # It takes longer than the grace period: done by now, it was never cut off.
                assert not sandbox.call(done), "the job finished before `down`: the test is void"
                after_up = sandbox.call(queue_state, next_up["REDIS_HOST_PORT"])
                try:
                    # Its redelivery time from its first delivery, its own run, and room for the
                    # worker's start and the transport's next look at what is unacknowledged.
                    bound = REDELIVERY_SECONDS + JOB_SECONDS + 15
                    wait_until(sandbox, done, "the cut-off job run after the next up", bound)
                except AssertionError as missed:
                    # What a failure needs to be told apart: the job lost at `down` (in no
                    # key after the next `up`), or kept and not handed out again in time.
                    raise AssertionError(
                        f"{missed}\nRedis after the next `up`: {after_up}\nnow: "
                        f"{sandbox.call(queue_state, next_up['REDIS_HOST_PORT'])}\n"
                        f"{worker_state(stack)}\n{log.read_text()[-6000:]}"
                    ) from None


def published_ports(stack: ComposeProject, services: list[str]) -> dict[str, int]:
    """The host port each service's container publishes."""
    return {
        name: int(binding["HostPort"])
        for name in services
        for bindings in stack.container(name)["NetworkSettings"]["Ports"].values()
        for binding in bindings or []
    }


def reachable(ports: dict[str, int]) -> Callable[[], bool]:
    """Whether each port takes a connection on 127.0.0.1, where the README's URLs point."""

    def check() -> bool:
        try:
            for port in ports.values():
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    return check


@pytest.mark.parametrize("answers", BACKED)
def test_readme_compose_line_starts_the_backing_services_the_host_service_reaches(
    answers: dict[str, str], image_project: Path, compose_engine: ComposeEngine
) -> None:
    """The rendered README's `docker compose up -d db redis`, run as written (the `docker` on
    PATH is compose_runner's), publishes the services where `.env.example` and the README's
    test block point; the README's setup lines, `manage check` and its tests then run on the host
    against them. The test waits for their health checks first, as `up --wait` would: the line
    starts the services and does not wait for them."""
    sandbox = compose_engine.sandbox
    readme = shell_blocks(image_project / "README.md")
    run_it = readme["Run it"]
    up = block_starting(run_it, "docker compose up")
    services = up.split()[4:]
    # The ports and settings a developer has: compose.yaml's defaults, nothing exported.
    with compose_project(compose_engine, image_project, project_name(answers, "dev"), {}) as stack:
        started = sandbox.run(["bash", "-e", "-c", up], cwd=image_project, env=stack.env,
                              timeout=UP_BOUND)  # fmt: skip
        assert started.returncode == 0, started.stderr

        def healthy() -> bool:
            states = [stack.container(name)["State"].get("Health", {}) for name in services]
            return all(state.get("Status") == "healthy" for state in states)

        took = wait_until(sandbox, healthy, f"{services} healthy", timeout=60)
        # Once, a healthy PostgreSQL refused the host's connections to its published port.
        ports = published_ports(stack, services)
        assert set(ports) == set(services), ports
        reached = wait_until(sandbox, reachable(ports), f"{ports} on the host", timeout=30)
        print(
            f"{stack.name}: {services} healthy {took:.1f} s after `up`, reached {reached:.1f} s on"
        )

        def run(script: str, env: dict[str, str] = compose_engine.engine.env) -> str:
            # On the project's Python: in the root where only the root has it (python_root.py).
            command = in_project(["bash", "-e", "-c", script], image_project)
            result = sandbox.run(command, cwd=image_project, env=env, timeout=600)
            assert result.returncode == 0, (
                f"{script}\n--- stdout\n{result.stdout[-4000:]}\n--- stderr\n"
                f"{result.stderr[-4000:]}"
            )
            return result.stdout

        setup = "\n".join(commands(block_with(run_it, "honcho start"))[:-1])
        checked = run(f"{setup}\n{block_with(readme['Admin commands'], 'manage check')}")
        assert "configuration: ok" in checked and "unavailable" not in checked, checked
        (tests,) = readme["Test and lint"]
        # Its outcomes from pytest's report (under /tmp: the Python root reaches it too).
        with tempfile.TemporaryDirectory(prefix="compose-readme-") as reports:
            report = Path(reports) / "pytest.xml"
            tested = run(tests, env=reporting_to(report, compose_engine.engine.env))
            found = outcomes(report)
        assert found.passed and not found.skipped and not found.failed, f"{found}\n{tested}"


@pytest.mark.parametrize("answers", BACKED)
def test_readme_podman_and_moved_ports_lines_publish_the_backing_services_where_they_say(
    answers: dict[str, str], render, podman_compose_engine: ComposeEngine
) -> None:
    """The rendered README's Podman line (podman-compose, the host's podman through the same
    API: CONTAINER_HOST) and its line that moves the published ports, each run as written: the
    services come up on compose's ports, then on the ports the line names, reachable there."""
    compose_engine = podman_compose_engine
    project = render({**answers, "project_slug": slug(answers)})
    sandbox = compose_engine.sandbox
    run_it = shell_blocks(project / "README.md")["Run it"]
    with_podman = block_starting(run_it, "uvx podman-compose up")
    (moved,) = [block for block in run_it if "_HOST_PORT=" in block]
    services = with_podman.split()[4:]
    compose = yaml.safe_load((project / "compose.yaml").read_text())["services"]
    # "127.0.0.1:${DB_HOST_PORT:-5432}:5432": the variable that moves the port, and its default.
    published = {name: re.search(r"\$\{(\w+):-(\d+)\}", compose[name]["ports"][0]).groups()
                 for name in services}  # fmt: skip
    defaults = {name: int(port) for name, (_, port) in published.items()}
    # The sandbox reaches no package index: podman-compose is fetched outside it, once.
    fetched = subprocess.run(["uvx", "podman-compose", "--version"], env=compose_engine.engine.env,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    remote = {"CONTAINER_HOST": f"unix://{compose_engine.socket}", "UV_OFFLINE": "1"}
    with compose_project(compose_engine, project, project_name(answers, "podman"), {}) as stack:
        started = sandbox.run(["bash", "-e", "-c", with_podman], cwd=project,
                              env={**stack.env, **remote}, timeout=UP_BOUND)  # fmt: skip
        assert started.returncode == 0, started.stdout + started.stderr
        assert published_ports(stack, services) == defaults
        wait_until(sandbox, reachable(defaults), f"{services} on {defaults}", timeout=30)
    wanted = {
        name: int(value)
        for name, value in (word.split("=") for word in moved.split() if "=" in word)
    }
    ports = {name: wanted[variable] for name, (variable, _) in published.items()}
    assert set(ports.values()).isdisjoint(defaults.values()), moved
    with compose_project(compose_engine, project, project_name(answers, "moved"), {}) as stack:
        started = sandbox.run(["bash", "-e", "-c", moved], cwd=project, env=stack.env,
                              timeout=UP_BOUND)  # fmt: skip
        assert started.returncode == 0, started.stdout + started.stderr
        assert published_ports(stack, services) == ports
        wait_until(sandbox, reachable(ports), f"{services} on {ports}", timeout=30)
