"""The READMEs' commands, executed as written, read from the READMEs themselves.

The template's "Try it" runs on this machine's network. The rendered README's blocks run on
every code combination inside a private network (sandbox.py) that holds what
`docker compose up -d db redis` gives a developer: PostgreSQL and Redis at the addresses and
with the credentials compose.yaml publishes. No container engine runs here, so the compose
line itself is not executed; the test holds it to compose.yaml instead.
"""

import ast
import html.parser
import http.cookiejar
import json
import os
import re
import secrets
import shutil
import subprocess
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
import yaml
from psycopg import sql
from psycopg.conninfo import make_conninfo

from helpers import probes
from helpers.compose_images import machine_lock
from helpers.matrix import IDENTITY, TEMPLATE_ROOT, defaults
from helpers.pytest_report import outcomes, reporting_to
from helpers.python_root import in_project
from helpers.readme import (
    answered,
    block_starting,
    block_with,
    commands,
    dotenv,
    in_terminal,
    shell_blocks,
    wait_until,
    worker_ready,
)
from helpers.sandbox import Sandbox

PACKAGE = IDENTITY["package_name"]
# The port of compose's "127.0.0.1:${DB_HOST_PORT:-5432}:5432": the default of the host side.
PUBLISHED = re.compile(r"^127\.0\.0\.1:(?:\$\{\w+:-)?(\d+)\}?:\d+$")
# A word of the README's lines for the user's own backing services that the user fills in.
PLACEHOLDER = re.compile(r"\b[A-Z]+\b")
# honcho gives processes 5 s after Ctrl-C; the rest is its own start and stop.
CTRL_C_BOUND = 10


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox()
    yield box
    box.close()


def published_port(service: dict) -> int:
    (mapping,) = service["ports"]
    match = PUBLISHED.match(mapping)
    assert match, f"not published on 127.0.0.1 only: {mapping}"
    return int(match.group(1))


@pytest.fixture
def compose_services(project: Path, sandbox: Sandbox) -> dict[str, int]:
    """What the README's `docker compose up -d ...` line starts, inside the sandbox."""
    services = yaml.safe_load((project / "compose.yaml").read_text())["services"]
    blocks = shell_blocks(project / "README.md")["Run it"]
    backing = [name for name in ("db", "redis") if name in services]
    if backing:
        up = block_starting(blocks, "docker compose up")
        assert up.split() == ["docker", "compose", "up", "-d", *backing]
    ports = {name: published_port(services[name]) for name in backing}
    sandbox.start_compose_services(ports.get("db", 5432), ports.get("redis", 6379))
    db = services.get("db", {"environment": {"POSTGRES_USER": "app", "POSTGRES_DB": "app"}})
    environment = db["environment"]
    sandbox.reset_compose_services(
        environment["POSTGRES_USER"],
        environment.get("POSTGRES_PASSWORD", ""),
        environment["POSTGRES_DB"],
    )
    return ports


@pytest.fixture
def terminal_env(project: Path, code_combination: dict[str, str]) -> dict[str, str]:
    """A developer's shell, plus a test-only /slow route (sitecustomize) to have in flight."""
    slow = probes.with_slow_route(project, code_combination["web_framework"], seconds=1)
    return {**os.environ, "PYTHONPATH": str(slow)}


def run_in_sandbox(
    sandbox: Sandbox, script: str, project: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    command = in_project(["bash", "-e", "-c", script], project)
    result = sandbox.run(command, cwd=project, env=env, timeout=600)
    assert result.returncode == 0, (
        f"README block failed with {result.returncode}:\n{script}\n"
        f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
    )
    return result


@pytest.mark.pairwise
def test_run_block_serves_and_ctrl_c_loses_no_request_and_no_job(
    code_combination,
    project: Path,
    sandbox: Sandbox,
    compose_services,
    terminal_env,
    tmp_path: Path,
) -> None:
    blocks = shell_blocks(project / "README.md")["Run it"]
    run = block_with(blocks, "honcho start")
    curl = commands(block_with(blocks, "curl"))
    worker = code_combination["worker"] != "none"
    message = f"readme-{uuid.uuid4()}"

    def curl_answers() -> bool:
        result = sandbox.run(["bash", "-c", "\n".join(curl)], timeout=10)
        return result.returncode == 0 and " 200 " in result.stdout.splitlines()[0]

    with in_terminal(sandbox.popen, run, project, terminal_env, tmp_path / "run.log") as shell:
        wait_until(curl_answers, "the README's curl answering 200", timeout=60)
        if worker:
            queue = redis.Redis.from_url(dotenv(project / ".env")["REDIS_URL"])
            # A job longer than the grace period, running when Ctrl-C comes.
            post = f'{{"message": "{message}", "seconds": 6}}'
            sandbox.run(["curl", "-sf", "-H", "Content-Type: application/json", "-d", post,
                         "localhost:8000/jobs/example"], check=True)  # fmt: skip
            wait_until(lambda: sandbox.call(queue.hlen, "unacked") == 1, "job taken", 20)
        in_flight = sandbox.popen(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "localhost:8000/slow"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(0.3)  # the request is in the server's hands, for a second
        shell.ctrl_c(timeout=CTRL_C_BOUND)
        assert in_flight.communicate(timeout=10)[0] == "200", shell.output[-3000:]
        assert "SIGKILL" not in shell.output, f"honcho had to kill:\n{shell.output[-3000:]}"
        assert "Traceback" not in shell.output, shell.output[-3000:]

    if worker:
        assert sandbox.call(queue.hlen, "unacked") == 0, (
            "the job is held for the visibility timeout"
        )
        assert sandbox.call(queue.llen, "celery") == 1, "the job was not put back on the queue"
        # The next `honcho start` (the block's last line) runs it.
        again = commands(run)[-1]
        with in_terminal(
            sandbox.popen, again, project, terminal_env, tmp_path / "again.log"
        ) as shell:
            results = f"{PACKAGE}:example-job:done"
            done = lambda: message.encode() in sandbox.call(queue.lrange, results, 0, -1)  # noqa: E731
            wait_until(done, "the requeued job run by the next worker", timeout=30)
            shell.ctrl_c(timeout=CTRL_C_BOUND)


# An id in an example answer: any other id of its kind matches it.
EXAMPLE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def commands_and_answers(block: str) -> list[tuple[str, str]]:
    """Each command of a block with the `# answer` line under it."""
    lines = block.splitlines()
    return [(line, lines[i + 1].removeprefix("# ")) for i, line in enumerate(lines)
            if not line.startswith("#")]  # fmt: skip


def answers_alike(expected: object, actual: object, command: str) -> bool:
    """The same shape (keys, types, list or not), and the same text where the command gave it;
    numbers and ids may differ."""
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and expected.keys() == actual.keys()
            and all(answers_alike(v, actual[k], command) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and bool(actual) == bool(expected)
            and all(answers_alike(expected[0], item, command) for item in actual[:1])
        )
    if isinstance(expected, str):
        given = f'"{expected}"' in command or f" {expected}" in command
        return isinstance(actual, str) and (actual == expected or not given)
    return type(actual) is type(expected)


@pytest.mark.pairwise
@pytest.mark.combinations(where=lambda c: c["database"] != "none" or c["worker"] != "none")
def test_try_the_api_block_answers_each_command_as_the_line_under_it_says(
    project: Path, sandbox: Sandbox, compose_services, tmp_path: Path
) -> None:
    readme = shell_blocks(project / "README.md")
    (block,) = readme["Try the API"]
    run = block_with(readme["Run it"], "honcho start")
    env = dict(os.environ)
    with in_terminal(sandbox.popen, run, project, env, tmp_path / "run.log") as shell:
        healthz = ["curl", "-sf", "localhost:8000/healthz"]
        wait_until(lambda: sandbox.run(healthz, timeout=10).returncode == 0, "serving", 60)
        for command, answer in commands_and_answers(block):
            # uv on the project's Python (python_root.py); curl as it is.
            shell_line = ["bash", "-c", command]
            if command.startswith("uv "):
                shell_line = in_project(shell_line, project)
            result = sandbox.run(shell_line, cwd=project, env=env, timeout=60)
            assert result.returncode == 0, f"{command}\n{result.stderr}"
            said = result.stdout.strip()
            if answer.startswith(("{", "[")):
                assert answers_alike(json.loads(answer), json.loads(said), command), said
            else:
                assert EXAMPLE_ID.sub("ID", said) == EXAMPLE_ID.sub("ID", answer), said
        procfile = (project / "Procfile").read_text().splitlines()
        if any(line.startswith("worker:") for line in procfile):
            # Stopped while Celery starts its pool, the worker ends in Celery's traceback.
            ready = worker_ready(project)
            wait_until(lambda: shell.said(ready), "the worker ready", 60)
        shell.ctrl_c(timeout=CTRL_C_BOUND)
        assert "Traceback" not in shell.output, shell.output[-3000:]


def setup_lines(project: Path) -> str:
    """The "Run it" block without its last line (the long-running `honcho start`)."""
    run = block_with(shell_blocks(project / "README.md")["Run it"], "honcho start")
    return "\n".join(commands(run)[:-1])


@pytest.mark.pairwise
def test_admin_block_runs_with_the_env_file(
    project: Path, sandbox: Sandbox, compose_services
) -> None:
    admin = shell_blocks(project / "README.md")["Admin commands"]
    result = run_in_sandbox(sandbox, setup_lines(project) + "\n" + admin[0], project, os.environ)
    assert "configuration: ok" in result.stdout
    assert "unavailable" not in result.stdout


@pytest.mark.pairwise
@pytest.mark.combinations(where=lambda c: c["database"] != "none" or c["worker"] != "none")
def test_own_services_lines_in_env_take_the_users_database_and_redis(
    project: Path, sandbox: Sandbox, compose_services
) -> None:
    """The README's lines for a PostgreSQL and Redis the user already runs, its placeholders
    filled in, set in `.env` where it says: the setup and `manage check` then reach them. The
    user's database is another than compose's, which is gone: only the line can name it."""
    blocks = shell_blocks(project / "README.md")
    own = block_with(blocks["Run it"], "HOST:")
    user, password, database = "own_user", "own-secret", "own_database"
    if sandbox.postgres is not None and "DATABASE_URL" in own:
        services = yaml.safe_load((project / "compose.yaml").read_text())["services"]
        composes = services["db"]["environment"]["POSTGRES_DB"]
        sandbox.call(make_own_database, sandbox.postgres.url(), user, password, database, composes)
    values = {"USER": user, "PASSWORD": password, "HOST": "localhost", "DATABASE": database}
    # The placeholders are the values' upper-case words (the names left of "=" stay).
    filled = "\n".join(
        name + "=" + PLACEHOLDER.sub(lambda word: values[word[0]], value)
        for name, value in (line.split("=", 1) for line in commands(own))
    )
    setup = setup_lines(project).splitlines()
    made = next(i for i, line in enumerate(setup) if line.startswith("cp .env.example .env"))
    setup.insert(made + 1, f"cat >> .env <<'END'\n{filled.strip()}\nEND")
    check = block_with(blocks["Admin commands"], "manage check")
    result = run_in_sandbox(sandbox, "\n".join(setup) + "\n" + check, project, os.environ)
    assert "configuration: ok" in result.stdout and "unavailable" not in result.stdout, (
        result.stdout
    )


def make_own_database(server: str, user: str, password: str, database: str, composes: str) -> None:
    """A role and database of the user's own on the server, and compose's database gone."""
    with psycopg.connect(server, autocommit=True) as connection:
        # An earlier test's is gone with its database (reset_compose_services drops them all).
        connection.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(user)))
        connection.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(user), sql.Literal(password)))  # fmt: skip
        connection.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(database), sql.Identifier(user)))  # fmt: skip
        connection.execute(
            sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(composes))
        )


# A column added to the example model, for Django's `makemigrations` to write a migration of.
NOTE_TEXT_FIELD = "    text = models.CharField(max_length=500)\n"
NEW_FIELD = "    done = models.BooleanField(default=False)\n"


def adds_field(migration: str, field: str) -> bool:
    """Whether a Django migration's code has an AddField operation of `field`, however Django
    lays the code out (its quotes, its line breaks)."""
    return any(
        isinstance(node, ast.Call)
        and getattr(node.func, "attr", getattr(node.func, "id", None)) == "AddField"
        and field in [value.value for value in [*node.args, *(k.value for k in node.keywords)]
                      if isinstance(value, ast.Constant)]
        for node in ast.walk(ast.parse(migration))
    )  # fmt: skip


@pytest.mark.pairwise
@pytest.mark.combinations(database="postgresql")
def test_database_block_writes_and_applies_a_migration(
    project: Path, sandbox: Sandbox, compose_services
) -> None:
    (block,) = shell_blocks(project / "README.md")["Database"]
    migrations = project / "src" / PACKAGE / "migrations"
    django = not (migrations / "versions").is_dir()
    # Alembic writes a revision whatever the models; Django's, only for a change to them.
    versions = migrations if django else migrations / "versions"
    models = project / "src" / PACKAGE / "models.py"
    kept = models.read_text()
    if django:
        models.write_text(kept.replace(NOTE_TEXT_FIELD, NOTE_TEXT_FIELD + NEW_FIELD))
    before = set(versions.iterdir())
    try:
        run_in_sandbox(sandbox, setup_lines(project) + "\n" + block, project, os.environ)
        # The new migration; its import may write __pycache__ beside it too.
        (written,) = {p for p in set(versions.iterdir()) - before if p.suffix == ".py"}
        if django:
            assert adds_field(written.read_text(), "done"), written.read_text()
        else:  # the message the README's line gives it, in the revision's docstring
            assert "add a column" in written.read_text()
    finally:
        models.write_text(kept)
        for path in set(versions.iterdir()) - before:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


class LoginPage(html.parser.HTMLParser):
    """The admin site's login page as a browser reads it: its form's hidden fields (the CSRF
    token, where to go next), and the stylesheets it links; whatever the markup's layout."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.hidden: dict[str, str] = {}
        self.stylesheets: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "input" and attributes.get("type") == "hidden" and "name" in attributes:
            self.hidden[attributes["name"]] = attributes.get("value", "")
        if tag == "link" and "stylesheet" in attributes.get("rel", "").split():
            self.stylesheets.append(attributes.get("href", ""))


def admin_site_pages(base: str, username: str, password: str) -> tuple[str, bytes]:
    """Log in to the admin site as a browser does (the login form with its hidden fields, the
    session cookie); the notes' list, and the first stylesheet the login page links."""
    browser = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )

    def page(path: str, form: dict[str, str] | None = None) -> bytes:
        data = urllib.parse.urlencode(form).encode() if form else None
        try:
            return browser.open(base + path, data, timeout=10).read()
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{path}: {error.code}\n{error.read()[:2000]!r}") from None

    login = page("/admin/login/").decode()
    form = LoginPage(login)
    assert form.hidden and form.stylesheets, login[:2000]
    page("/admin/login/", {**form.hidden, "username": username, "password": password})
    return page(f"/admin/{PACKAGE}/note/").decode(), page(form.stylesheets[0])


@pytest.mark.pairwise
@pytest.mark.combinations(web_framework="django", database="postgresql")
def test_run_it_then_the_admin_site_block_serve_the_styled_admin_site_to_the_user_made(
    project: Path, sandbox: Sandbox, compose_services, tmp_path: Path
) -> None:
    """In the README's order: "Run it" up to the start (its `collectstatic` among it), the
    admin site's line, `createsuperuser` answered at a terminal; then the service started by
    the run line serves the admin site, its styles included, to that user."""
    (block,) = shell_blocks(project / "README.md")["The admin site"]
    (create,) = commands(block)
    run_in_sandbox(sandbox, setup_lines(project), project, os.environ)
    password = secrets.token_urlsafe(16)
    # Each prompt answered as it comes, in the order the command asks (the user model's
    # username, its required email, the password twice), whatever its words: they are Django's,
    # and translated. That the user was made, the login below shows.
    answers = ["admin", "admin@example.com", password, password]
    prompts = [("", answer) for answer in answers]
    status, output = answered(sandbox.popen, create, project, dict(os.environ), prompts, 120)
    assert status == 0, output[-3000:]
    assert password not in output, "the password was echoed"

    run = commands(block_with(shell_blocks(project / "README.md")["Run it"], "honcho start"))[-1]
    note = f"on-the-admin-site-{uuid.uuid4()}"
    with in_terminal(sandbox.popen, run, project, dict(os.environ), tmp_path / "run.log") as shell:
        posted = ["curl", "-sf", "-H", "Content-Type: application/json", "-d",
                  f'{{"text": "{note}"}}', "localhost:8000/notes"]  # fmt: skip
        wait_until(lambda: sandbox.run(posted, timeout=10).returncode == 0, "a note posted", 60)
        site = "http://localhost:8000"
        try:
            notes, stylesheet = sandbox.call(admin_site_pages, site, "admin", password)
        except AssertionError as refused:
            raise AssertionError(f"{refused}\n{shell.output[-4000:]}") from None
        assert note in notes, f"not on the admin site's notes:\n{notes[:3000]}\n{shell.output}"
        assert b"{" in stylesheet, "the admin site's stylesheet is not served"
        shell.ctrl_c(timeout=CTRL_C_BOUND)


def leave_a_stray_notes_table(server: str, database: str) -> None:
    """What an earlier run left in the tests' database, of the project under another framework
    (or another project of the same package name): a `notes` table of another shape."""
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    with psycopg.connect(make_conninfo(server, dbname=database), autocommit=True) as connection:
        connection.execute("CREATE TABLE notes (left_by_an_earlier_run integer)")


@pytest.fixture(scope="session")
def mypy_caches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test run's mypy caches so far, shared by its test processes (mypy keeps one per
    Python inside each); read and written under `machine_lock`."""
    base = tmp_path_factory.getbasetemp()
    # pytest-xdist gives each test process a folder of its own in the run's.
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "mypy-caches"


def mypy_cache_for(project: Path, caches: Path) -> Path:
    """The shared cache for the project's mypy plugins: mypy drops a cache made with other
    plugins whole (Django's projects have one more), so one shared by all would be cold for a
    Django project after any other, and for any other after Django's."""
    mypy = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["mypy"]
    return caches / ("+".join(sorted(mypy.get("plugins", []))) or "none") / ".mypy_cache"


@pytest.mark.everywhere
def test_test_and_lint_block_passes_with_nothing_skipped(
    project: Path, sandbox: Sandbox, compose_services, mypy_caches: Path, tmp_path: Path
) -> None:
    """The block as written, with the mypy cache a developer has after checking another
    project: mypy re-checks each file whose hash differs, and takes the rest (the libraries'
    stubs) as they were; a third of the time of a first run. The tests' outcomes come from
    pytest's report (pytest_report.py), not its summary's words."""
    (block,) = shell_blocks(project / "README.md")["Test and lint"]
    # The tests' database is the project's own: two projects' tests share a server safely; and
    # each run makes it anew, whatever an earlier run left in it.
    database = re.search(r"DATABASE_URL=postgresql://\S+/(\w+)", block)
    if database:
        assert database[1] == f"{IDENTITY['package_name']}_test", block
        assert sandbox.postgres is not None
        sandbox.call(leave_a_stray_notes_table, sandbox.postgres.url(), database[1])
    mypy_cache = mypy_cache_for(project, mypy_caches)
    with machine_lock(mypy_cache.parent / "lock"):
        if mypy_cache.is_dir():
            shutil.copytree(mypy_cache, project / ".mypy_cache", dirs_exist_ok=True)
    report = tmp_path / "pytest.xml"
    result = run_in_sandbox(sandbox, block, project, reporting_to(report, dict(os.environ)))
    tests = outcomes(report)
    assert tests.passed and not tests.skipped and not tests.failed, f"{tests}\n{result.stdout}"
    with machine_lock(mypy_cache.parent / "lock"):
        shutil.copytree(project / ".mypy_cache", mypy_cache, dirs_exist_ok=True)


def test_try_it_block_of_the_template_readme(template_repo: Path, tmp_path: Path) -> None:
    """Render from this checkout, install, start the Procfile, and curl it as the README says."""
    try_it = shell_blocks(TEMPLATE_ROOT / "README.md")["Try it on a fresh machine"]
    start = block_with(try_it, "uvx copier copy").replace(
        "gh:org/copier-twelve-factor", str(template_repo)
    )
    curl = block_with(try_it, "curl -i")
    destination = Path(re.search(r"copier copy .* (\S+)$", start, re.MULTILINE).group(1))
    shutil.rmtree(destination, ignore_errors=True)
    try:
        # The project it makes runs on the default Python: the whole script runs on it.
        python = defaults()["python_version"]
        with in_terminal(subprocess.Popen, start, tmp_path, dict(os.environ),
                         tmp_path / "try-it.log", python) as shell:  # fmt: skip

            def answers() -> bool:
                assert shell.process.poll() is None, shell.output[-3000:]
                result = subprocess.run(["bash", "-c", curl], capture_output=True, text=True)
                return result.returncode == 0 and " 200 " in result.stdout.splitlines()[0]

            wait_until(answers, "the Try-it service answering", timeout=120)
            shell.ctrl_c(timeout=CTRL_C_BOUND)
        assert "Traceback" not in shell.output, shell.output[-3000:]
    finally:
        shutil.rmtree(destination, ignore_errors=True)
