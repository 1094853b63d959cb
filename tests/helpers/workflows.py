"""The template's own GitHub workflows (.github/workflows/ at its root), run here step by step.

A job's `run:` steps are executed in order, as the runner executes them: by the shell the
workflow names (`shell: bash` is `bash --noprofile --norc -eo pipefail`, none `bash -e`), with
the machine's environment, the variables the runner sets, the job's `env:` and the step's own;
each step's writes to $GITHUB_ENV, $GITHUB_PATH and $GITHUB_OUTPUT reach the steps after it.
Expressions `${{ name }}` take their values from the caller's context (the matrix entry, say);
any other is an error, so a step runs as written or not at all. `uses:` steps are not run: the
checkout is the clone the steps run in, and a cache restored or saved changes what is on the
machine, not what runs.
"""

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from helpers import resolved_versions
from helpers.matrix import TEMPLATE_ROOT

WORKFLOWS = TEMPLATE_ROOT / ".github" / "workflows"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
# As the runner starts each: `shell: bash`, or no shell named (bash -e on Linux).
SHELLS = {
    "bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"],
    None: ["bash", "-e", "-c"],
}
# The conditions a step may carry and still be run here: true in a run nobody cancelled.
TRUE_HERE = {"${{ !cancelled() }}"}


def workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def substitute(text: object, context: dict[str, str]) -> str:
    def value(match: re.Match) -> str:
        if match[1] not in context:
            raise KeyError(f"{match[0]} has no value here; the context has {sorted(context)}")
        return context[match[1]]

    return EXPRESSION.sub(value, str(text))


def read_env_file(path: Path) -> dict[str, str]:
    """NAME=value lines, and NAME<<DELIMITER blocks, as the runner reads $GITHUB_ENV."""
    values: dict[str, str] = {}
    lines = iter(path.read_text().splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block = []
            for body in lines:
                if body == delimiter:
                    break
                block.append(body)
            values[name] = "\n".join(block)
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
    return values


def machine_environment() -> dict[str, str]:
    """This process's environment less what the test run put in it: its virtual environment,
    which `uv run` put first on PATH, and the variables pytest and its plugins pass to their
    own processes (a run started by a step is a run of its own)."""
    venv = os.path.join(sys.prefix, "bin")
    path = [entry for entry in os.environ["PATH"].split(os.pathsep) if entry != venv]
    return {
        **{
            name: value
            for name, value in os.environ.items()
            if not name.startswith("PYTEST_") and name != resolved_versions.DIRECTORY_VARIABLE
        },
        "PATH": os.pathsep.join(path),
    }


def run_steps(
    workflow: dict,
    job: str,
    cwd: Path,
    context: dict[str, str],
    environment: dict[str, str] | None = None,
) -> list[tuple[str, subprocess.CompletedProcess[str]]]:
    """Each `run:` step of the job in order; stops at the first that fails."""
    spec = workflow["jobs"][job]
    defaults = spec.get("defaults", workflow.get("defaults", {}))
    shell = SHELLS[defaults.get("run", {}).get("shell")]
    results = []
    context = dict(context)
    with tempfile.TemporaryDirectory() as files:
        env = {
            **(environment if environment is not None else os.environ),
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(cwd),
            "RUNNER_OS": "Linux",
            "RUNNER_TEMP": files,
        }
        env.update({k: substitute(v, context) for k, v in spec.get("env", {}).items()})
        for number, step in enumerate(spec["steps"]):
            if "run" not in step:
                continue
            condition = step.get("if")
            assert condition is None or condition in TRUE_HERE, f"cannot tell here: {condition}"
            outputs = {
                name: Path(files) / f"{number}.{name.lower()}"
                for name in ("GITHUB_ENV", "GITHUB_PATH", "GITHUB_OUTPUT")
            }
            for path in outputs.values():
                path.write_text("")
            step_env = {
                **env,
                **{k: substitute(v, context) for k, v in step.get("env", {}).items()},
                **{name: str(path) for name, path in outputs.items()},
            }
            started = time.monotonic()
            result = subprocess.run(
                [*shell, substitute(step["run"], context)],
                cwd=cwd, env=step_env, capture_output=True, text=True, timeout=900,
            )  # fmt: skip
            name = step.get("name", step["run"])
            results.append((f"{name} ({time.monotonic() - started:.1f} s)", result))
            if result.returncode != 0:
                break
            env.update(read_env_file(outputs["GITHUB_ENV"]))
            for directory in outputs["GITHUB_PATH"].read_text().splitlines():
                env["PATH"] = f"{directory}{os.pathsep}{env['PATH']}"
            if "id" in step:
                for key, value in read_env_file(outputs["GITHUB_OUTPUT"]).items():
                    context[f"steps.{step['id']}.outputs.{key}"] = value
    return results


def report(results: list[tuple[str, subprocess.CompletedProcess[str]]]) -> str:
    return "\n".join(
        f"--- {name}: exit {r.returncode}\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
        for name, r in results
    )
