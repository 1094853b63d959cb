"""Rendering with Copier, and the steps the template's tests run on each rendered project."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COPIER = [sys.executable, "-m", "copier"]


def run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(command)}` exited {result.returncode} in {cwd}:\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return result


def timed(command: list[str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    run(command, cwd)
    return time.perf_counter() - start


def commit_all(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "--quiet", "--allow-empty", "-m", message], repo)


def snapshot_template(repo: Path) -> Path:
    """The template as it is on disk (tracked and new files), committed in a throwaway repository.

    Copier renders from git, and `copier update` needs a commit to update from and to.
    """
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT)
    for relative in filter(None, listed.stdout.split("\0")):
        if (ROOT / relative).is_file():  # not deleted in the work tree
            (repo / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / relative, repo / relative)
    run(["git", "init", "--quiet"], repo)
    commit_all(repo, "template snapshot")
    return repo


def host_python() -> str:
    """The newest Python the template offers that uv finds on this machine. The tests run 3.14
    and 3.15 in a Debian sid root (tests/helpers/python_root.py); the bench runs on the host."""
    question = yaml.safe_load((ROOT / "copier.yml").read_text())["python_version"]
    offered = [v for v in question["choices"].values() if isinstance(v, str)]
    for version in sorted(offered, key=lambda v: tuple(map(int, v.split("."))), reverse=True):
        if subprocess.run(["uv", "python", "find", version], capture_output=True).returncode == 0:
            return version
    raise RuntimeError(f"uv finds none of the offered Pythons {offered} on this machine")


def minimal_template(repo: Path) -> Path:
    """A template of one question and one templated file, committed: what any copy costs in
    Copier itself (its start, the clone, the answers file), whatever the template."""
    (repo / "template").mkdir(parents=True)
    (repo / "copier.yml").write_text(
        "_subdirectory: template\n_templates_suffix: .jinja\n"
        "project_name:\n  type: str\n  default: Example\n"
    )
    (repo / "template" / "README.md.jinja").write_text("# {{ project_name }}\n")
    answers = "{{ _copier_conf.answers_file }}.jinja"
    (repo / "template" / answers).write_text("{{ _copier_answers|to_nice_yaml }}")
    run(["git", "init", "--quiet"], repo)
    commit_all(repo, "minimal template")
    return repo


def verbatim_template(rendered: Path, repo: Path) -> Path:
    """The files of a rendered project as a template that templates nothing but its answers
    file, committed: what a copy of this many files and folders costs in Copier itself."""
    for path in rendered.rglob("*"):
        relative = path.relative_to(rendered)
        if (
            path.is_file()
            and ".git" not in relative.parts
            and relative.name != ".copier-answers.yml"
        ):
            (repo / "template" / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, repo / "template" / relative)
    (repo / "copier.yml").write_text("_subdirectory: template\n_templates_suffix: .jinja\n")
    answers = "{{ _copier_conf.answers_file }}.jinja"
    (repo / "template" / answers).write_text("{{ _copier_answers|to_nice_yaml }}")
    run(["git", "init", "--quiet"], repo)
    commit_all(repo, "verbatim template")
    return repo


def copy_command(
    template: Path, destination: Path, *extra: str, asks_python: bool = True
) -> list[str]:
    """`copier copy --defaults`; the Python answered with BENCH_PYTHON where one is asked."""
    python = ["--data", f"python_version={os.environ['BENCH_PYTHON']}"] if asks_python else []
    return [
        *COPIER,
        "copy",
        "--defaults",
        "--quiet",
        *python,
        *extra,
        str(template),
        str(destination),
    ]


def update_command(*extra: str) -> list[str]:
    return [*COPIER, "update", "--defaults", "--quiet", *extra]


def committed_project(template: Path, destination: Path, *, ours: bool = True) -> Path:
    """A project rendered, then set up as the after-copy message says (`ours`: the
    template's, with `uv lock`) and committed."""
    run(copy_command(template, destination, asks_python=ours))
    run(["git", "init", "--quiet"], destination)
    if ours:
        run(["uv", "lock", "--quiet"], destination)
    commit_all(destination, "rendered")
    return destination


def timed_update(project: Path, *extra: str) -> float:
    """`copier update` with no change; the project must be left as it was."""
    seconds = timed(update_command(*extra), project)
    changed = run(["git", "status", "--porcelain"], project).stdout
    if changed:
        raise RuntimeError(f"`copier update` with no change left changes:\n{changed}")
    return seconds


def harness_steps(template: Path, destination: Path, framework: str) -> dict[str, float]:
    """Seconds of each step the template's tests take on one combination (tests/conftest.py and
    tests/test_rendered_projects.py): render, install from the lock, lint, the project's tests.
    """
    uv_run = ["uv", "run", "--locked"]
    steps = {
        "render (copier copy)": timed(
            copy_command(template, destination, "--data", f"web_framework={framework}")
        ),
        "uv sync (makes the lock)": timed(["uv", "sync"], destination),
        "ruff check + ruff format --check": timed([*uv_run, "ruff", "check", "."], destination)
        + timed([*uv_run, "ruff", "format", "--check", "."], destination),
        "the project's own pytest -q": timed(
            [*uv_run, "pytest", "-q", "-p", "no:cacheprovider"], destination
        ),
    }
    return {**steps, "total of these steps": sum(steps.values())}


def prepare_environment() -> None:
    """What the template's tests set for the tools they run (tests/conftest.py)."""
    os.environ.pop("VIRTUAL_ENV", None)  # the rendered projects get their own environments
    os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
    for role in ("AUTHOR", "COMMITTER"):
        os.environ.setdefault(f"GIT_{role}_NAME", "Bench")
        os.environ.setdefault(f"GIT_{role}_EMAIL", "bench@example.org")
    if "PYENV_VERSION" not in os.environ and shutil.which("pyenv"):
        # Every installed CPython 3.x.y, so uv finds the Python each rendered project asks for.
        listed = run(["pyenv", "versions", "--bare"]).stdout.split()
        versions = [v for v in listed if v.startswith("3.") and v.replace(".", "").isdigit()]
        if versions:
            os.environ["PYENV_VERSION"] = ":".join(versions)
    os.environ.setdefault("BENCH_PYTHON", host_python())
