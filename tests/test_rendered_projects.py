"""Each combination renders a project that installs from its lock on the chosen Python.

Its own lint and tests run as its README gives them: tests/test_readmes.py.
"""

import os
from pathlib import Path

import pytest

from helpers.artifacts import env_example_names
from helpers.commands import assert_succeeds, run
from helpers.matrix import IDENTITY, defaults
from helpers.pytest_report import outcomes


# The project's own install: every code combination on every Python, in both tiers.
@pytest.mark.everywhere
def test_installs_from_its_lock_on_the_chosen_python(code_combination, project: Path) -> None:
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
    assert version == code_combination["python_version"]
    assert (project / "src" / IDENTITY["package_name"] / "__init__.py").is_file()


# Its own tests with backing services run everywhere (test_readmes); without, a field test.
@pytest.mark.once
@pytest.mark.combinations(python_version=defaults()["python_version"])
def test_its_tests_pass_without_backing_services_and_skip_theirs_in_one_line(
    project: Path, tmp_path: Path
) -> None:
    """Nothing set: the rest passes, and what needs a service says, in one line, what to set.
    Under CI (`CI` set) the same tests fail instead, so that no pipeline passes with skips.
    (Each test's outcome and message from pytest's JUnit XML report: pytest_report.py.)"""
    # The backing services' URLs the project reads, in the order its skip line names them.
    needed = [name for name in ("DATABASE_URL", "REDIS_URL") if name in env_example_names(project)]
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "DATABASE_URL", "REDIS_URL")}

    def pytest_command(report: Path) -> list[str]:
        return ["uv", "run", "--locked", "pytest", "-q", "-p", "no:cacheprovider",
                f"--junitxml={report}"]  # fmt: skip

    result = run(pytest_command(tmp_path / "plain.xml"), project, env=env)
    assert result.returncode == 0, result.stdout[-3000:]
    plain = outcomes(tmp_path / "plain.xml")
    assert plain.passed and not plain.failed, plain
    if not needed:
        assert plain.skipped == [], plain
        return
    assert plain.skipped, plain
    said = f"set {', '.join(needed)} to throwaway"
    assert all(said in skip and "\n" not in skip for skip in plain.skipped), plain.skipped

    under_ci = run(pytest_command(tmp_path / "ci.xml"), project, env={**env, "CI": "true"})
    assert under_ci.returncode != 0
    ci = outcomes(tmp_path / "ci.xml")
    assert ci.skipped == [] and ci.failed, ci
    assert all("CI runs every test" in failure for failure in ci.failed), ci.failed


@pytest.mark.everywhere
def test_uv_run_is_quiet(project: Path) -> None:
    """Bytecode is compiled where the project is installed (the image, CI), not on every run:
    `uv run` of an installed project says nothing (with compile-bytecode set, it would announce
    each compiling, in uv's words)."""
    env = {name: value for name, value in os.environ.items() if name != "UV_COMPILE_BYTECODE"}
    result = assert_succeeds(["uv", "run", "--locked", "python", "-c", "pass"], project, env=env)
    assert result.stderr == ""
