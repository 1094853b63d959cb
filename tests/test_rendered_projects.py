"""Each combination renders a project that installs from its lock and passes its own checks."""

import os
from pathlib import Path

from conftest import IDENTITY, assert_succeeds


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


def test_passes_ruff_check(project: Path) -> None:
    assert_succeeds(["uv", "run", "--locked", "ruff", "check", "."], project)


def test_is_formatted(project: Path) -> None:
    assert_succeeds(["uv", "run", "--locked", "ruff", "format", "--check", "."], project)


def test_passes_mypy(project: Path) -> None:
    assert_succeeds(["uv", "run", "--locked", "mypy"], project)


def test_uv_run_is_quiet(project: Path) -> None:
    """Bytecode is compiled where the project is installed (the image, CI), not on every run."""
    env = {name: value for name, value in os.environ.items() if name != "UV_COMPILE_BYTECODE"}
    result = assert_succeeds(["uv", "run", "--locked", "python", "-c", "pass"], project, env=env)
    assert "Bytecode compiled" not in result.stderr


def test_passes_its_own_tests(project: Path, service_env: dict[str, str]) -> None:
    result = assert_succeeds(
        ["uv", "run", "--locked", "pytest", "-q", "-p", "no:cacheprovider"],
        project,
        env={**os.environ, **service_env},
    )
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout
