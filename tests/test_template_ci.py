"""The template's own CI (.github/workflows/ci.yml): linted as the rendered workflows are, and
its job's `run:` steps executed here in order (workflows.py), for the default tier and for one
shard of the full tier, each made small.

Made small, and kept off what other runs on this machine share, by the machine's environment
the steps start from, not by changing a step:
- PYTEST_ADDOPTS (read by pytest itself) narrows the tests step's pytest to one small file on
  this one test process; its `--shard` then splits that file's tests;
- CONTAINER_CACHE and PYTHON_ROOT_CACHE (read by the tests and by .ci/unmount-caches) name empty
  folders: this machine's container set-up is mounted and in use by other test runs, which the
  unmount step would take away. The narrowed tests use no container and no Python root.
"""

import re
from pathlib import Path

import pytest

from helpers.commands import assert_succeeds
from helpers.matrix import TEMPLATE_ROOT
from helpers.workflows import WORKFLOWS, machine_environment, report, run_steps, workflow

SMALL = "-n 0 tests/test_spread.py"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def test_root_workflows_and_ci_scripts_pass_actionlint_zizmor_and_shellcheck() -> None:
    # actionlint runs shellcheck on every `run:` block, shellcheck being on PATH.
    names = sorted(str(path.relative_to(TEMPLATE_ROOT)) for path in WORKFLOWS.glob("*.yml"))
    assert names == [".github/workflows/ci.yml", ".github/workflows/release.yml"]
    assert_succeeds(["actionlint", "-shellcheck", "shellcheck", *names], TEMPLATE_ROOT)
    assert_succeeds(
        ["zizmor", "--offline", "--min-severity", "low", ".github/workflows"], TEMPLATE_ROOT
    )
    assert_succeeds(
        ["shellcheck", "-x", ".ci/run", ".ci/setup", ".ci/unmount-caches"], TEMPLATE_ROOT
    )


def test_every_action_is_pinned_by_commit_and_only_the_release_job_writes() -> None:
    for name in ("ci.yml", "release.yml"):
        text = (WORKFLOWS / name).read_text()
        for line in re.findall(r"uses: (\S+.*)", text):
            action, _, comment = line.partition(" # ")
            assert PINNED.match(action) and re.match(r"v\d", comment), line
        assert "persist-credentials: false" in text
    ci, release = workflow("ci.yml"), workflow("release.yml")
    assert ci["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in ci["jobs"].values())
    assert release["permissions"] == {}
    assert release["jobs"]["release"]["permissions"] == {"contents": "write"}


def test_ci_runs_both_tiers_on_changes_and_the_full_tier_sharded_nightly() -> None:
    ci = workflow("ci.yml")
    # YAML 1.1 reads the key `on` as True.
    triggers = ci[True]
    assert triggers["push"] == {"branches": ["main"]} and "pull_request" in triggers
    assert [entry["cron"] for entry in triggers["schedule"]] == ["17 4 * * *"]
    job = ci["jobs"]["tests"]
    matrix = job["strategy"]["matrix"]
    assert matrix["tier"] == ["full"] and matrix["include"] == [{"tier": "default"}]
    assert matrix["shard"] == list(range(1, int(job["env"]["SHARDS"]) + 1))
    (tests,) = [step for step in job["steps"] if step.get("name") == "Tests"]
    assert "uv run pytest\n" in tests["run"]
    assert 'uv run pytest --full --shard "$SHARD/$SHARDS"\n' in tests["run"]


@pytest.mark.parametrize(
    "matrix", [{"tier": "full", "shard": "1"}, {"tier": "default", "shard": ""}], ids=str
)
def test_ci_job_steps_pass_in_order_with_the_jobs_env(
    matrix: dict[str, str], tmp_path: Path
) -> None:
    ci = workflow("ci.yml")
    job = ci["jobs"]["tests"]
    context = {f"matrix.{key}": value for key, value in matrix.items()}
    environment = {
        **machine_environment(),
        "PYTEST_ADDOPTS": SMALL,
        "CONTAINER_CACHE": str(tmp_path / "containers"),
        "PYTHON_ROOT_CACHE": str(tmp_path / "pythons"),
    }
    results = run_steps(ci, "tests", TEMPLATE_ROOT, context, environment)
    ran = [name for name, _ in results]
    print(*ran, sep="\n")  # each step's time, for -s
    assert all(r.returncode == 0 for _, r in results), report(results)
    assert len(ran) == len([step for step in job["steps"] if "run" in step]), report(results)
    (tests,) = [r.stdout for name, r in results if name.startswith("Tests ")]
    assert re.search(r"\b[1-9]\d* passed", tests) and "failed" not in tests, report(results)
    # The shard runs a part of the file: the rest is deselected, as --shard reports it.
    assert ("deselected" in tests) == (matrix["tier"] == "full"), report(results)
