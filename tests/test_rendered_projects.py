"""Each combination renders a project that installs from its lock on the chosen Python.

Its own lint and tests run as its README gives them: tests/test_readmes.py.
"""

import os
from pathlib import Path

import pytest
from artifacts import env_example_names
from conftest import IDENTITY, assert_succeeds, run
from matrix import defaults

# The project's own install and tests: every code combination on every Python, in both tiers.
pytestmark = pytest.mark.everywhere


def test_installs_from_its_lock_on_the_chosen_python(combination, project: Path) -> None:
    version = assert_succeeds(
        [
            "uv",
            "run",
            "--locked",
            "python",
            "-c",
            "import sys; print(*sys.version_info[:2], sep='.')",
        ],
        project,
    ).stdout.strip()
    assert version == combination["python_version"]
    assert (project / "src" / IDENTITY["package_name"] / "__init__.py").is_file()


@pytest.mark.combinations(python_version=defaults()["python_version"])
def test_its_tests_pass_without_backing_services_and_skip_theirs_in_one_line(project: Path) -> None:
    """Nothing set: the rest passes, and what needs a service says, in one line, what to set.
    Under CI (`CI` set) the same tests fail instead, so that no pipeline passes with skips."""
    # The backing services' URLs the project reads, in the order its skip line names them.
    needed = [name for name in ("DATABASE_URL", "REDIS_URL") if name in env_example_names(project)]
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "DATABASE_URL", "REDIS_URL")}
    pytest_command = ["uv", "run", "--locked", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
    result = run(pytest_command, project, env=env)
    assert result.returncode == 0, result.stdout[-3000:]
    skips = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    if not needed:
        assert skips == [], skips
        return
    assert skips, result.stdout[-3000:]
    assert all(f"set {', '.join(needed)} to throwaway" in line for line in skips), skips

    under_ci = run(pytest_command, project, env={**env, "CI": "true"})
    assert under_ci.returncode != 0
    assert "CI runs every test" in under_ci.stdout and "SKIPPED" not in under_ci.stdout


def test_uv_run_is_quiet(project: Path) -> None:
    """Bytecode is compiled where the project is installed (the image, CI), not on every run."""
    env = {name: value for name, value in os.environ.items() if name != "UV_COMPILE_BYTECODE"}
    result = assert_succeeds(["uv", "run", "--locked", "python", "-c", "pass"], project, env=env)
    assert "Bytecode compiled" not in result.stderr
