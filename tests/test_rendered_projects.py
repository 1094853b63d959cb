"""Each combination renders a project that installs from its lock on the chosen Python.

Its own lint and tests run as its README gives them: tests/test_readmes.py.
"""

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
