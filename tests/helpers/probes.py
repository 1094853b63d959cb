"""Twelve-factor probes: each runs a rendered project and raises AssertionError on a violation.

They take the project and the environment it needs (its secret and backing services), so
the same probe runs on every combination and, in the meta-tests, on a project with a violation
put in on purpose, where it must fail.
"""

import json
import os
import re
import signal
import threading
import time
import urllib.request
from pathlib import Path

from helpers.artifacts import env_example_names
from helpers.processes import Running, Watched, procfile, run_one_off, run_process, running_web
from helpers.servers import free_port
from helpers.worker_faults import runs_jobs

REQUIRED_LOG_KEYS = {"timestamp", "level", "logger", "message"}
BELOW_WARNING = {"debug", "info"}
# A settings switch on an environment name, or a settings file per environment.
ENVIRONMENT_SWITCH = re.compile(
    r"\b(APP_ENV|ENVIRONMENT|FLASK_ENV|DJANGO_SETTINGS_MODULE|SETTINGS_MODULE)\b"
    r"|\b(production|staging|development)\b\s*[\"']?\s*(==|:)"
)
# Django's settings module forced to the one the service has, not read from the environment.
ONE_SETTINGS_MODULE = re.compile(r'os\.environ\["DJANGO_SETTINGS_MODULE"\] = \w+\n')
SETTINGS_PER_ENVIRONMENT = re.compile(r"(settings|config)[_.-]?(prod|production|dev|staging|test)")


def package_of(project: Path) -> str:
    (package,) = [p.name for p in (project / "src").iterdir() if (p / "__init__.py").exists()]
    return package


# III. Config


def probe_missing_or_malformed_config_stops_startup(project: Path, env: dict[str, str]) -> None:
    """Each required variable removed, then bad values: non-zero exit, every culprit named."""
    web = procfile(project)["web"]
    cases = [({k: v for k, v in env.items() if k != name}, [name]) for name in env]
    cases.append(({**env, "PORT": "eighty", "LOG_FORMAT": "xml"}, ["PORT", "LOG_FORMAT"]))
    for variables, culprits in cases:
        port = free_port()
        # Startup fails in well under a second; one still running after 10 s is serving.
        variables = {**variables, "PORT": variables.get("PORT", str(port))}
        result = run_one_off(project, web, variables, timeout=10)
        assert result.returncode != 0, f"the web process started without valid {culprits}"
        assert result.stdout == "", f"it logged before failing: {result.stdout[:300]}"
        assert "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip().count("\n") <= 10, "not one message"
        for culprit in culprits:
            assert culprit in result.stderr, f"{culprit} is not named in: {result.stderr}"


def probe_every_variable_can_come_from_a_file(project: Path, env: dict[str, str]) -> None:
    """Every variable given only as NAME_FILE, each file ending in a newline as editors and
    `echo` leave it: the service takes each value, read back where it shows (it serves on the
    PORT of its file, it logs nothing below the LOG_LEVEL of its file), and is ready."""
    folder = project.parent / f"{project.name}-secrets"
    folder.mkdir(exist_ok=True)
    port = free_port()
    variables = {}
    for name, value in {**env, "PORT": str(port), "LOG_LEVEL": "WARNING"}.items():
        (folder / name).write_text(value + "\n")
        variables[f"{name}_FILE"] = str(folder / name)
    with running_web(project, variables, port=port) as web:
        assert web.get("/readyz")[0] == 200, "not ready with every variable from its file"
        web.get("/no-such-page")
        web.stop()
    # At INFO, its default, it logs its start, and a line for each request.
    below = [line for line in web.stdout.splitlines() if json.loads(line)["level"] in BELOW_WARNING]
    assert not below, f"{len(below)} lines below LOG_LEVEL_FILE's WARNING, as {below[0]}"


def probe_env_example_names_exactly_the_settings(project: Path) -> None:
    package = package_of(project)
    code = f"from {package}.settings import Settings as S; print(*map(str.upper, S.model_fields))"
    read = run_one_off(project, ["python", "-c", code], {})
    assert read.returncode == 0, read.stderr
    assert set(read.stdout.split()) == env_example_names(project)


def probe_no_settings_chosen_by_environment_name(project: Path) -> None:
    for path in project.rglob("*"):
        if ".venv" in path.parts or ".git" in path.parts or not path.is_file():
            continue
        assert not SETTINGS_PER_ENVIRONMENT.search(path.name.lower()), f"{path.name}: per-env file"
        if path.suffix in (".py", ".toml", ".yml", ".yaml", ".cfg", ".ini", ".env", ""):
            text = ONE_SETTINGS_MODULE.sub("", path.read_text(errors="replace"))
            match = ENVIRONMENT_SWITCH.search(text)
            assert not match, f"{path.relative_to(project)}: switches on {match.group(0)!r}"


# VII. Port binding


def listening_on_every_interface(port: int) -> bool:
    """Whether some socket listens on 0.0.0.0 (or ::) at this port, from /proc/net/tcp*."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port and set(address) == {"0"}:
                return True
    return False


def check_binds_port_on_every_interface(web: Running) -> None:
    port = int(web.base_url.rsplit(":", 1)[1])
    assert web.get("/healthz") == (200, {"status": "ok"})
    assert listening_on_every_interface(port), "not bound on 0.0.0.0"


# IX. Disposability

SLOW_ROUTE = {
    "fastapi": """
import asyncio
async def slow():
    await asyncio.sleep(SECONDS)
    return {"slow": "done"}
app.add_api_route("/slow", slow)
""",
    "flask": """
import time
def slow():
    time.sleep(SECONDS)
    return {"slow": "done"}
app.add_url_rule("/slow", "slow", slow)
""",
    # Django's app is its URLconf, named by its settings.
    "django": """
import time
from importlib import import_module
from django.conf import settings
from django.http import JsonResponse
from django.urls import path
def slow(request):
    time.sleep(SECONDS)
    return JsonResponse({"slow": "done"})
import_module(settings.ROOT_URLCONF).urlpatterns.append(path("slow", slow))
""",
}


def with_slow_route(project: Path, framework: str, seconds: float) -> Path:
    """A sitecustomize that wraps the real app factory to add /slow: test-only, never shipped."""
    # A folder per duration: a process started with one keeps its route while another is made.
    folder = project.parent / f"{project.name}-slow-route-{seconds:g}s"
    folder.mkdir(exist_ok=True)
    route = SLOW_ROUTE[framework].replace("SECONDS", str(seconds)).replace("\n", "\n    ")
    (folder / "sitecustomize.py").write_text(
        f"import {package_of(project)}.app as module\n"
        "real_create_app = module.create_app\n"
        "def create_app(settings):\n"
        "    service = real_create_app(settings)\n"
        # The edge in front holds the framework's app; the route is added to that.
        f"    app = service.framework_app{route}\n"
        "    return service\n"
        "module.create_app = create_app\n"
    )
    return folder


# The message quotes SENTRY_DSN, a secret setting: an error report must not (test_error_reports).
FAILING_ROUTE = """
def fail():
    import os
    dsn = os.environ.get("SENTRY_DSN", "")
    raise RuntimeError("an unexpected failure, put in by the test " + dsn)
ADD_ROUTE
"""
ADD_ROUTE = {
    "fastapi": 'app.add_api_route("/fail", fail)',
    "flask": 'app.add_url_rule("/fail", "fail", fail)',
    "django": """
from importlib import import_module
from django.conf import settings
from django.urls import path
import_module(settings.ROOT_URLCONF).urlpatterns.append(path("fail", lambda request: fail()))
""",
}


def with_failing_route(project: Path, framework: str) -> Path:
    """A sitecustomize that wraps the real app factory to add /fail: test-only, never shipped."""
    folder = project.parent / f"{project.name}-failing-route"
    folder.mkdir(exist_ok=True)
    route = FAILING_ROUTE.replace("ADD_ROUTE", ADD_ROUTE[framework]).replace("\n", "\n    ")
    (folder / "sitecustomize.py").write_text(
        f"import {package_of(project)}.app as module\n"
        "real_create_app = module.create_app\n"
        "def create_app(settings):\n"
        "    service = real_create_app(settings)\n"
        # The framework's app, held by the layer in front of it where there is one.
        f"    app = getattr(service, 'framework_app', service){route}\n"
        "    return service\n"
        "module.create_app = create_app\n"
    )
    return folder


def slow_requests(base_url: str, count: int) -> tuple[list[threading.Thread], list[object]]:
    """`count` requests to /slow, started in threads; each one's status (or error) is appended
    to the list as it ends."""
    statuses: list[object] = []

    def request_slow() -> None:
        try:
            with urllib.request.urlopen(f"{base_url}/slow", timeout=30) as response:
                statuses.append(response.status)
        except OSError as error:
            statuses.append(repr(error))

    threads = [threading.Thread(target=request_slow) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, statuses


def probe_sigterm_drains_in_flight_requests(
    project: Path, env: dict[str, str], framework: str, in_flight: int = 8
) -> dict[str, float]:
    """Requests in flight at SIGTERM all complete; new ones are refused; a clean exit in time."""
    grace = 10
    slow = with_slow_route(project, framework, seconds=2)
    variables = {**env, "SHUTDOWN_GRACE_SECONDS": str(grace), "PYTHONPATH": str(slow)}
    with running_web(project, variables) as web:
        threads, statuses = slow_requests(web.base_url, in_flight)
        time.sleep(0.7)  # all of them reach the app and are sleeping in the slow route
        stopped_at = time.monotonic()
        web.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        try:
            urllib.request.urlopen(f"{web.base_url}/healthz", timeout=1).close()
            new_request = "served"
        except OSError:
            new_request = "refused"
        for thread in threads:
            thread.join(timeout=30)
        status = web.stop(timeout=grace + 5)
        exit_seconds = time.monotonic() - stopped_at
    assert statuses == [200] * in_flight, f"in-flight requests: {statuses}"
    assert new_request == "refused", "a new request was served after SIGTERM"
    # 0, or the server re-raising SIGTERM after a clean drain (uvicorn does).
    assert status in (0, -signal.SIGTERM), f"exit status {status}"
    assert exit_seconds < grace, f"took {exit_seconds:.1f} s, beyond the grace period"
    return {"exit_seconds": exit_seconds, "exit_status": status}


# VII, XI and VI on one process


def probe_serves_on_its_port_in_json_lines_writing_no_file(
    project: Path, env: dict[str, str]
) -> float:
    """The Procfile's web command, env only, a random PORT: it serves there, on every
    interface (VII); it logs JSON lines on stdout only, with the request ids (XI); once
    serving, requests change no file in the project, its temp folder or its home (VI).
    Returns the seconds from exec to the first answer on /healthz."""
    scratch = project.parent / f"{project.name}-scratch"
    scratch.mkdir(exist_ok=True)
    variables = {**env, "TMPDIR": str(scratch), "HOME": str(scratch)}
    with running_web(project, variables) as web:
        check_binds_port_on_every_interface(web)
        for path in ("/healthz", "/readyz", "/no-such-page"):
            web.get(path, headers={"X-Request-ID": "probe-42"})
        before = snapshot(project, scratch)
        for _ in range(20):
            web.get("/healthz")
            web.get("/readyz")
        time.sleep(0.2)
        after = snapshot(project, scratch)
    changed = sorted(
        p
        for p in before.keys() | after.keys()
        if before.get(p) != after.get(p) and not is_shared_metrics_memory(Path(p), scratch)
    )
    assert changed == [], f"written while serving: {changed[:10]}"
    check_logs_are_json_lines_on_stdout(web, request_id="probe-42", requests=3)
    return web.started_in


def check_logs_are_json_lines_on_stdout(web: Running, request_id: str, requests: int) -> None:
    """Once `web` has ended: every line it wrote is a JSON object on stdout, and `requests`
    lines or more carry the `request_id` it was sent."""
    assert web.stderr == "", f"written to stderr: {web.stderr[:500]}"
    lines = web.stdout.splitlines()
    assert lines, "nothing logged"
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
        assert event.keys() >= REQUIRED_LOG_KEYS, f"missing keys in {line}"
    events = [json.loads(line) for line in lines]
    carrying = sum(event.get("request_id") == request_id for event in events)
    requested = [event for event in events if "path" in event]  # a request's line
    lacking = [event for event in requested if event.get("request_id") != request_id]
    assert carrying >= requests, (
        f"{carrying} lines carry request_id {request_id!r}, sent with {requests} requests; "
        f"{len(lacking)} of the {len(requested)} request lines lack it, as {lacking[-1:]}"
    )


def is_shared_metrics_memory(path: Path, scratch: Path) -> bool:
    """prometheus_client's memory-mapped numbers, shared by the server's processes in the
    directory the web command makes under TMPDIR at its start and removes at its exit
    (metrics_directory.py): memory with a name, on the tmpfs a platform mounts there, not
    files kept. Each request writes them; their times change only when the kernel has written
    a page back, which under load it does at any moment."""
    return path.parent.parent == scratch and path.parent.name.startswith("metrics-")


def snapshot(*folders: Path) -> dict[str, tuple[int, int]]:
    files = {}
    for folder in folders:
        for root, _dirs, names in os.walk(folder):
            for name in names:
                path = os.path.join(root, name)
                # A link as itself: a venv's python names an interpreter that may live in a root
                # of its own (python_root.py), not on this machine.
                stat = os.stat(path, follow_symlinks=False)
                files[path] = (stat.st_size, stat.st_mtime_ns)
    return files


# V. Build, release, run


def probe_only_release_migrates(project: Path, env: dict[str, str], tables) -> None:
    """Against an empty database (`tables()` lists its tables): starting web and worker
    creates nothing; the release process migrates, and running it again is harmless."""
    with running_web(project, env) as web:
        assert web.get("/readyz")[0] == 200
    if "worker" in procfile(project):
        worker = Watched(project, "worker", env)
        try:
            # Started through and through: it has taken a job off the queue and run it.
            started = runs_jobs(project, env, worker.process, timeout=60)
            assert started, f"the worker ran no job:\n{''.join(worker.lines)}"
        finally:
            worker.stop()
    assert tables() == set(), f"starting the processes created {tables()}"
    for attempt in ("first", "second"):
        release = run_process(project, "release", env)
        assert release.returncode == 0, f"{attempt} release failed:\n{release.stderr}"
    assert tables(), "release created no table"


# XII. Admin processes

ADMIN_ARGUMENTS = {"check": [], "migrate": [], "enqueue-example": ["probe"]}


def admin_commands(project: Path) -> list[str]:
    """The service's admin commands, as its code declares them (not as a library's help text
    lays them out): Django's management commands of its package, a module each, or the click
    group's. `--help` answers with nothing configured, and names each of them."""
    package = package_of(project)
    shown = run_one_off(project, ["python", "-m", f"{package}.manage", "--help"], {})
    assert shown.returncode == 0, shown.stderr
    modules = project / "src" / package / "management" / "commands"
    if modules.is_dir():
        commands = sorted(m.stem.replace("_", "-") for m in modules.glob("[!_]*.py"))
    else:
        code = f"from {package}.manage import cli; print(*cli.commands)"
        listed = run_one_off(project, ["python", "-c", code], {})
        assert listed.returncode == 0, listed.stderr
        commands = listed.stdout.split()
    assert commands, "no admin command"
    # Django's help names a command by its module (`_`), the service's by `-`.
    unnamed = [c for c in commands if not {c, c.replace("-", "_")} & set(shown.stdout.split())]
    assert not unnamed, f"--help does not name {unnamed}:\n{shown.stdout}"
    return commands


def probe_admin_commands_are_one_offs(project: Path, env: dict[str, str], down: dict[str, str]):
    """Each admin command exits 0 in the app's environment, and non-zero with one clear
    message (no traceback) when a backing service is down (`down`: variables pointing nowhere).
    """
    admin = ["python", "-m", f"{package_of(project)}.manage"]
    commands = admin_commands(project)
    assert set(commands) <= set(ADMIN_ARGUMENTS), f"no probe arguments for {commands}"
    for command in commands:
        ran = run_one_off(project, [*admin, command, *ADMIN_ARGUMENTS[command]], env)
        assert ran.returncode == 0, f"{command}: {ran.stdout}{ran.stderr}"
    failed = run_one_off(project, [*admin, "check"], {**env, **down})
    if down:
        assert failed.returncode != 0, "check passed with a backing service down"
        assert "Traceback" not in failed.stderr, failed.stderr
        assert "unavailable" in failed.stdout + failed.stderr
    misconfigured = run_one_off(project, [*admin, "check"], {"LOG_FORMAT": "xml"})
    assert misconfigured.returncode != 0
    assert "Traceback" not in misconfigured.stderr, misconfigured.stderr
    for variable in [*env, "LOG_FORMAT"]:
        assert variable in misconfigured.stderr, f"{variable} not named: {misconfigured.stderr}"
