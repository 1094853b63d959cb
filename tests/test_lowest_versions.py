"""The oldest end of every range: what the lower bounds promise, installed and checked.

A rendered project's pyproject.toml gives each dependency a lower bound; the design promises it
passes its own checks with the oldest releases those bounds allow, on its Python. Here a copy of
the rendered project (the shared one keeps the newest releases, for the other tests) is
installed with `uv sync --resolution lowest-direct` (each direct dependency at the oldest release
its range allows, the others at the newest that fit), and its README's "Test and lint" block
runs on it against real PostgreSQL and Redis, under CI so that nothing skips. The code
combinations are the pairwise set, the Pythons spread over them: a bound must hold on the
newest Python offered too (a release older than that Python may have no wheel for it, or not
import on it).

And the oldest Copier that copier.yml's `_min_copier_version` allows renders the template, and
renders exactly what the newest does.
"""

import itertools
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from helpers.commands import assert_succeeds, rendered_files
from helpers.matrix import choice_questions, load_copier_yml
from helpers.pytest_report import outcomes, reporting_to
from helpers.python_root import in_project
from helpers.readme import commands, shell_blocks

# What a developer's checkout has beside the rendered files, none of it to be copied: the
# newest releases' environment and lock, and the caches made from them.
NOT_RENDERED = (".venv", "uv.lock", ".mypy_cache", ".pytest_cache", ".ruff_cache", "__pycache__")


def direct_dependencies(project: Path) -> dict[str, Requirement]:
    """The project's own requirements (dependencies and its dev group), by normalized name."""
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    listed = pyproject["project"]["dependencies"] + pyproject["dependency-groups"]["dev"]
    return {canonicalize_name(r.name): r for r in map(Requirement, listed)}


def resolved(project: Path) -> dict[str, str]:
    """Each package's version in the project's lock, by normalized name."""
    lock = tomllib.loads((project / "uv.lock").read_text())
    return {canonicalize_name(p["name"]): p["version"] for p in lock["package"] if "version" in p}


def lower_bound(requirement: Requirement) -> str:
    (bound,) = [s.version for s in requirement.specifier if s.operator == ">="]
    return bound


def resolved_direct(project: Path) -> str:
    """The versions the lock took for the direct dependencies, those above their bound marked
    (another package's range, or no release at the bound for this Python)."""
    versions = resolved(project)
    named = []
    for name, requirement in sorted(direct_dependencies(project).items()):
        version, bound = versions.get(name), lower_bound(requirement)
        at_bound = version is not None and Version(version) == Version(bound)
        named.append(f"{name} {version}" + ("" if at_bound else f" (bound {bound})"))
    return ", ".join(named)


@pytest.mark.full_tier("the same checks on today's releases: 'Test and lint', everywhere")
@pytest.mark.pairwise("lowest")
def test_its_checks_pass_on_the_oldest_releases_its_ranges_allow(
    code_combination: dict[str, str], render, service_env: dict[str, str], tmp_path: Path
) -> None:
    project = tmp_path / "project"
    shutil.copytree(render(code_combination), project, ignore=shutil.ignore_patterns(*NOT_RENDERED))
    report = tmp_path / "pytest-report.xml"
    # UV_RESOLUTION: `uv run` keeps this resolution (else it would re-lock at the newest).
    env = {**os.environ, **service_env, "CI": "true", "UV_RESOLUTION": "lowest-direct"}
    env = reporting_to(report, env)
    assert_succeeds(["uv", "sync", "--resolution", "lowest-direct"], project, env=env)
    lock = (project / "uv.lock").read_bytes()
    versions = f"lowest-direct resolved: {resolved_direct(project)}"

    (block,) = shell_blocks(project / "README.md")["Test and lint"]
    # The block's exports name compose's servers; this test's servers take their place.
    exported = [line for line in commands(block) if line.startswith("export ")]
    assert sorted(line.split()[1].split("=")[0] for line in exported) == sorted(service_env)
    for command in (line for line in commands(block) if line not in exported):
        result = subprocess.run(
            in_project(["bash", "-ec", command], project), cwd=project, env=env,
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        output = result.stdout + result.stderr
        assert result.returncode == 0, (
            f"`{command}` exited {result.returncode}\n{versions}\n{output}"
        )
    ran = outcomes(report)
    assert ran.passed and not ran.skipped and not ran.failed, f"{ran}\n{versions}"
    assert (project / "uv.lock").read_bytes() == lock, "the checks ran on another resolution"


def pairwise_answers() -> list[dict[str, str]]:
    """Few answer sets that meet every pair of answers of every choice question (the Python
    included), every other answer at its default: greedily, each adding the most unmet pairs."""
    questions = choice_questions()
    every = [dict(zip(questions, values, strict=True)) for values in
             itertools.product(*questions.values())]  # fmt: skip

    def pairs(answers: dict[str, str]) -> set[tuple]:
        return set(itertools.combinations(answers.items(), 2))

    unmet = set().union(*map(pairs, every))
    chosen = []
    while unmet:
        best = max(every, key=lambda answers: len(pairs(answers) & unmet))
        chosen.append(best)
        unmet -= pairs(best)
    return chosen


# Renders each (destination, answers) of the JSON list in argv[2] from the template in argv[1],
# as `copier copy --defaults --data ...` does, in one process (a Copier's start-up once).
RENDER_ALL = """
import json, sys, warnings
from copier import run_copy
warnings.simplefilter("ignore")
for destination, answers in json.loads(sys.argv[2]):
    run_copy(sys.argv[1], destination, data=answers, defaults=True, quiet=True)
"""


def test_the_oldest_copier_allowed_renders_what_the_newest_does(
    template_repo: Path, tmp_path: Path
) -> None:
    oldest = load_copier_yml()["_min_copier_version"]
    copiers = {
        "newest": [sys.executable],
        "oldest": ["uv", "tool", "run", "--from", f"copier=={oldest}", "python"],
    }
    answer_sets = pairwise_answers()
    for name, python in copiers.items():
        jobs = [(str(tmp_path / name / str(i)), a) for i, a in enumerate(answer_sets)]
        assert_succeeds([*python, "-c", RENDER_ALL, str(template_repo), json.dumps(jobs)], tmp_path)
    for i, answers in enumerate(answer_sets):
        newest = rendered_files(tmp_path / "newest" / str(i))
        by_oldest = rendered_files(tmp_path / "oldest" / str(i))
        assert by_oldest.keys() == newest.keys(), (answers, by_oldest.keys() ^ newest.keys())
        differing = [path for path in newest if by_oldest[path] != newest[path]]
        assert not differing, (
            f"Copier {oldest} renders these otherwise, with {answers}: {differing}"
        )
