"""`docker compose` on this machine: Debian's docker-compose 1.29 against podman's Docker API.

The runner: podman-compose 1.6 skips `condition: service_healthy` on podman before 4.6 (Debian
12 has 4.3) and reads `service_completed_successfully` as "stopped", whatever the exit status;
docker-compose checks both, as Docker Compose does, through the API that `podman system
service` serves. What stands in for the rest of a Docker engine:
- the API socket belongs to this test process, and its service runs inside the process's private
  network namespace (sandbox.py): what compose publishes on 127.0.0.1 (the README's fixed ports
  among them) is seen by this test process alone, so parallel tests do not clash. The service
  also gets a mount namespace with a /run/containers/networks of its own: rootful podman keeps
  the state of aardvark-dns (compose's service names) there, one per machine, and one
  aardvark-dns cannot answer in two network namespaces. Everything else goes through the API;
- netavark 1.4 (Debian 12) signals an aardvark-dns that is exiting, its last container gone,
  instead of starting a new one (netavark#956 fixed the race later): a container started in that
  window has no service names, and an `up` right after a `down` hit it under load. Each `up`
  waits out an exiting aardvark-dns first;
- under load, aardvark-dns 1.4 answers some lookups late or not at all: each SIGHUP that
  netavark sends it (a container started or gone on any of its networks) closes and reopens its
  sockets, and a lookup sent meanwhile is lost (5 s, the resolver's timeout, measured here);
  left with no listener, a lookup of `redis` stalls 15-20 s and fails. A test whose subject is
  not the names themselves gives the project fixed addresses, with each service's names in the
  others' /etc/hosts (`reserved_subnet`, test_compose.fixed_addresses_override): no lookup of a
  service's name reaches aardvark-dns;
- podman runs each health check from a systemd timer, and this machine has no systemd: a
  HealthClock thread runs `podman healthcheck run` for each running container of a project at
  the container's own interval, as the timer would. The checks are compose.yaml's and the
  image's, run in the containers;
- a `docker` on PATH hands `docker compose ...` to docker-compose, so that README lines run as
  written.
"""

import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from helpers.containers import Engine, unavailable
from helpers.sandbox import Sandbox

DOCKER_SHIM = """#!/bin/sh
# `docker compose ...` as Docker's CLI plugin takes it, run by docker-compose on podman's API.
if [ "${1:-}" = compose ]; then
  shift
  exec docker-compose "$@"
fi
echo "only \\`docker compose\\` is available here" >&2
exit 2
"""
PROJECT_LABEL = "com.docker.compose.project"
# What a container whose resolver has no compose service names logs (getaddrinfo EAI_AGAIN).
NAME_NOT_RESOLVED = "Temporary failure in name resolution"
# podman's refusal of a fixed address that its IPAM still counts as another container's: seen
# on the `up` right after a `down` that stopped a container serving a request (stops 44 and 45).
# At stop 45 the `down` and `up` once more met it again: the allocation outlived the container,
# so test_compose's down/up test brings its next `up` on a network of its own.
ADDRESS_HELD = "is already allocated to container"
# The subnets a project with fixed addresses takes its /24 from: away from the pools podman
# takes its own from (10.88.0.0/16 for its default network, 10.89.x.0/24 for the others).
FIXED_SUBNETS = ipaddress.IPv4Network("10.200.0.0/13")
# One lock file per subnet of FIXED_SUBNETS, taken by the test process that uses it.
SUBNET_LOCKS = Path("/tmp/copier-twelve-factor-subnets")
# iproute2's ip, in /usr/sbin (on no PATH of a user's shell on some systems).
IP = shutil.which("ip") or "/usr/sbin/ip"
SERVICE = (
    "mkdir -p /run/containers/networks && mount -t tmpfs tmpfs /run/containers/networks && "
    'exec podman "$@" system service --time=0 "$0"'
)


class ComposeEngine:
    """podman's Docker API in a private network namespace, with `docker compose` on PATH."""

    def __init__(
        self, engine: Engine, sandbox: Sandbox, workdir: Path, own_store: Path | None = None
    ) -> None:
        """With `own_store`, the service keeps its containers, volumes and state there, apart
        from every other podman of the machine (the images it reads from the machine's store):
        containers that another service started, whose network namespaces are mounted in that
        service's mount namespace alone, are then not among its own. podman's `start` of a
        container through the libpod API (podman-compose's) synced another service's running
        containers too, and failed on their network namespaces."""
        if not _on_path("docker-compose"):
            unavailable("docker-compose not on PATH (.ci/run installs it with apt)")
        self.engine = engine
        self.sandbox = sandbox
        self.socket = workdir / "podman.sock"
        self.projects: set[str] = set()  # the compose projects run through this engine
        bin_dir = workdir / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        (bin_dir / "docker").write_text(DOCKER_SHIM)
        (bin_dir / "docker").chmod(0o755)
        self.env = {
            **engine.env,
            "PATH": f"{bin_dir}{os.pathsep}{engine.env['PATH']}",
            "DOCKER_HOST": f"unix://{self.socket}",
        }
        self.log = workdir / "podman-service.log"
        with self.log.open("w") as log:
            store = [] if own_store is None else [
                "--root", str(own_store / "root"), "--runroot", str(own_store / "run"),
                "--storage-opt", f"additionalimagestore={engine.graph_root()}",
            ]  # fmt: skip
            self.service = sandbox.popen(
                ["unshare", "--mount", "--propagation=private", "sh", "-c", SERVICE,
                 f"unix://{self.socket}", *store],
                env=engine.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while not _answers(self.socket):
            if self.service.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"podman system service did not start:\n{self.log.read_text()}")
            time.sleep(0.1)

    def dns_settled(self, bound: float = 15) -> None:
        """With none of its projects' containers running, wait until this engine's aardvark-dns,
        which then exits, is gone, so that the next container starts a new one (see the
        module's text). The other test processes' containers share the host's podman, and
        `podman ps` lists them, but not this aardvark-dns: they do not count."""
        listed = json.loads(self.podman("ps", "--format", "json").stdout or "[]")
        if any((c.get("Labels") or {}).get(PROJECT_LABEL) in self.projects for c in listed):
            return  # the running containers keep it, and their names, alive
        network = os.stat(f"/proc/{self.service.pid}/ns/net").st_ino
        # Past the bound it is not exiting (it serves names still held): the `up` goes ahead.
        deadline = time.monotonic() + bound
        while _aardvark_in(network) and time.monotonic() < deadline:
            time.sleep(0.1)

    @contextlib.contextmanager
    def reserved_subnet(self) -> Iterator[ipaddress.IPv4Network]:
        """A /24 of FIXED_SUBNETS that no podman network of this machine holds and no other test
        process has reserved, held until the block ends: the networks' configurations are the
        machine's, whichever network namespace their containers run in, and podman refuses a
        network whose subnet another one holds. A project that goes `down` and comes `up`
        again frees its subnet in between; the reservation, a lock on a file of SUBNET_LOCKS
        that the system drops with its process, keeps it from another test meanwhile."""
        held = self.configured() + [subnet for _, subnet in self.addressed()]
        SUBNET_LOCKS.mkdir(exist_ok=True)
        for subnet in FIXED_SUBNETS.subnets(new_prefix=24):
            if any(other.version == 4 and subnet.overlaps(other) for other in held):
                continue
            with (SUBNET_LOCKS / f"{subnet.network_address}.lock").open("a") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # another test's
                yield subnet
                return
        raise AssertionError(f"every /24 of {FIXED_SUBNETS} is held")

    def configured(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The subnets of the machine's podman networks (their configurations are shared)."""
        listed = self.podman("network", "ls", "--format", "json")
        assert listed.returncode == 0, listed.stderr
        return [
            ipaddress.ip_network(subnet["subnet"])
            for network in json.loads(listed.stdout or "[]")
            for subnet in network.get("subnets") or []
        ]

    def addressed(self) -> list[tuple[str, ipaddress.IPv4Network]]:
        """Each interface of the engine's network namespace with the IPv4 network of each of
        its addresses. A network's bridge can outlive its configuration there (a container whose
        teardown a hard `down` cut short, or the teardowns of a project's containers racing
        netavark 1.4's, which has no lock), and podman refuses a subnet an interface holds:
        "already used on the host"."""
        shown = self.in_namespace(IP, "-j", "-4", "addr", "show")
        return [
            (interface["ifname"], ipaddress.IPv4Network(
                f"{address['local']}/{address['prefixlen']}", strict=False
            ))
            for interface in json.loads(shown or "[]")
            for address in interface.get("addr_info", [])
        ]  # fmt: skip

    def stray_bridges_dropped(self) -> None:
        """Deletes each bridge of the engine's network namespace whose subnet no podman network
        holds any longer: what netavark's teardown left behind (`addressed`). Else a project
        that goes `down` and comes `up` again on its reserved subnet is refused it."""
        bridges = {link["ifname"] for link in json.loads(
            self.in_namespace(IP, "-j", "link", "show", "type", "bridge") or "[]"
        )}  # fmt: skip
        configured = self.configured()
        for name, subnet in self.addressed():
            held = any(other.version == 4 and subnet.overlaps(other) for other in configured)
            if name in bridges and not held:
                print(f"dropping {name}, the bridge of a removed network ({subnet})")
                self.in_namespace(IP, "link", "delete", name)

    def in_namespace(self, *command: str) -> str:
        """The output of a command run in the engine's network namespace."""
        shown = subprocess.run(
            ["nsenter", f"--net=/proc/{self.service.pid}/ns/net", *command],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        return shown.stdout

    def podman(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """podman, through the API: containers, networks and volumes as the service sees them."""
        return self.engine.podman("--remote", "--url", f"unix://{self.socket}", *args,
                                  timeout=timeout)  # fmt: skip

    def close(self) -> None:
        self.service.terminate()
        try:
            self.service.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.service.kill()
            self.service.wait()


def _on_path(tool: str) -> bool:
    return any((Path(d) / tool).exists() for d in os.environ["PATH"].split(os.pathsep) if d)


def _aardvark_in(network: int) -> bool:
    """Whether an aardvark-dns runs in the network namespace whose inode is `network`."""
    for process in Path("/proc").iterdir():
        try:
            named = (process / "comm").read_text().strip() == "aardvark-dns"
            if named and os.stat(process / "ns" / "net").st_ino == network:
                return True
        except OSError:  # gone meanwhile, or not a process
            continue
    return False


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as client:
        try:
            client.connect(str(path))
            client.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return b" 200 " in client.recv(100)
        except OSError:
            return False


class HealthClock(threading.Thread):
    """Runs each running container's health check of one compose project at its interval."""

    def __init__(self, compose: ComposeEngine, project: str) -> None:
        super().__init__(daemon=True)
        self.podman = compose.podman
        self.project = project
        self.stopped = threading.Event()
        self.due: dict[str, float] = {}  # container id -> when its next check runs
        self.intervals: dict[str, float | None] = {}

    def run(self) -> None:
        while not self.stopped.wait(0.25):
            listed = self.podman(
                "ps", "--quiet", "--no-trunc", "--filter", f"label={PROJECT_LABEL}={self.project}"
            )
            for container in listed.stdout.split():
                interval = self.interval(container)
                if interval is None:
                    continue
                # The first check one interval after start, as Docker and podman's timer do.
                due = self.due.setdefault(container, time.monotonic() + interval)
                if time.monotonic() >= due:
                    self.podman("healthcheck", "run", container, timeout=60)
                    self.due[container] = time.monotonic() + interval

    def interval(self, container: str) -> float | None:
        if container not in self.intervals:
            found = self.podman("container", "inspect", container)
            config = json.loads(found.stdout)[0]["Config"] if found.returncode == 0 else {}
            check = config.get("Healthcheck") or {}
            test = check.get("Test") or ["NONE"]
            self.intervals[container] = (
                None if test[0] == "NONE" else (check.get("Interval") or 30e9) / 1e9
            )
        return self.intervals[container]

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=70)


class ComposeProject:
    """One compose project of a rendered project's compose.yaml: its own name and ports."""

    def __init__(
        self, compose: ComposeEngine, directory: Path, name: str, variables: dict[str, str]
    ) -> None:
        self.compose = compose
        self.directory = directory
        self.name = name
        compose.projects.add(name)
        self.env = {**compose.env, "COMPOSE_PROJECT_NAME": name, **variables}

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """`docker compose ARGS` in the project, as a user types it."""
        if args[:1] != ("up",):
            return self.compose_command(*args, timeout=timeout)
        self.compose.dns_settled()
        self.compose.stray_bridges_dropped()
        result = self.compose_command(*args, timeout=timeout)
        held = result.returncode != 0 and ADDRESS_HELD in result.stderr
        if held or (result.returncode != 0 and NAME_NOT_RESOLVED in self.logs()):
            # netavark's races (the module's text), which the wait above narrows but does not
            # close under load: what a user does then, `down` and `up` once more. `down` keeps
            # the volumes, and with them the queue.
            why = "an address still held" if held else "service names unresolved"
            print(f"{self.name}: {why} after `up`: down, and up once more")
            self.compose_command("down", "--timeout", "30", timeout=120)
            self.compose.dns_settled()
            self.compose.stray_bridges_dropped()
            result = self.compose_command(*args, timeout=timeout)
        return result

    def compose_command(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "compose", *args], cwd=self.directory, env=self.env, capture_output=True,
            text=True, timeout=timeout,
        )  # fmt: skip

    def succeeds(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = self.run(*args, timeout=timeout)
        assert result.returncode == 0, (
            f"`docker compose {' '.join(args)}` exited {result.returncode}\n"
            f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}\n"
            f"--- logs\n{self.logs()[-6000:]}"
        )
        return result

    def logs(self) -> str:
        return self.compose_command("logs", "--no-color", "--timestamps", timeout=60).stdout

    @contextlib.contextmanager
    def logs_followed(self, path: Path) -> Iterator[Path]:
        """Every container's output into `path` while in the block, kept after `down`."""
        with path.open("w") as log:
            follower = subprocess.Popen(
                ["docker", "compose", "logs", "--follow", "--no-color", "--timestamps"],
                cwd=self.directory, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            yield path
        finally:
            follower.terminate()
            follower.wait(timeout=30)

    def container(self, service: str) -> dict:
        """`podman container inspect` of the service's one container (stopped ones too)."""
        listed = self.compose.podman(
            "ps", "--all", "--quiet", "--no-trunc",
            "--filter", f"label={PROJECT_LABEL}={self.name}",
            "--filter", f"label=com.docker.compose.service={service}",
        )  # fmt: skip
        (container,) = listed.stdout.split()
        found = self.compose.podman("container", "inspect", container)
        assert found.returncode == 0, found.stderr
        return json.loads(found.stdout)[0]

    def remove_everything(self) -> None:
        """What `down -v` removes, and whatever a failed run left of the project besides."""
        self.run("down", "--volumes", "--remove-orphans", "--timeout", "30", timeout=120)
        podman = self.compose.podman
        label = f"label={PROJECT_LABEL}={self.name}"
        left = podman("ps", "--all", "--quiet", "--filter", label).stdout.split()
        if left:
            podman("rm", "--force", "--volumes", *left)
        volumes = podman("volume", "ls", "--quiet", "--filter", label).stdout.split()
        if volumes:
            podman("volume", "rm", "--force", *volumes)
        networks = podman("network", "ls", "--quiet", "--filter", label).stdout.split()
        if networks:
            podman("network", "rm", "--force", *networks)


@contextlib.contextmanager
def compose_project(
    compose: ComposeEngine, directory: Path, name: str, variables: dict[str, str]
) -> Iterator[ComposeProject]:
    """A project with its health checks running, removed whole on the way out."""
    project = ComposeProject(compose, directory, name, variables)
    clock = HealthClock(compose, name)
    clock.start()
    try:
        yield project
    finally:
        try:
            project.remove_everything()
        finally:
            clock.stop()
