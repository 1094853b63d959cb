"""Any answer a person can type: refused with a validator's message, or a project that parses.

A bounded, derandomized hypothesis run renders names, descriptions and authors (Unicode, quotes,
backslashes, digits first, very long, nothing left after slugifying) and checks every rendered
file a parser can read; a few nasty fixed examples get the full treatment (lock, install, lint,
import). A last test holds the names the questions refuse against a rendered environment.
"""

import json
import re
import sys
import tempfile
import tomllib
from functools import cache
from pathlib import Path

import copier
import jinja2
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.commands import assert_succeeds, copier_copy, run
from helpers.matrix import TEMPLATE_ROOT, load_copier_yml

# The answers generated here; a refusal of any other question is the template's fault.
FREE_TEXT = ("project_name", "description", "author_name")
# Characters that break one target language or another, and letters to transliterate or not.
NASTY = "'\"\\ #*_`<>|[]{}%$!~&;:,.-0123456789" + "éÜßøłæŒ\u0131\u00d7"
NASTY += "日本語サービス Сервис 😀\u0301\u200b"

MAX_K8S_NAME = 63
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def template_environment() -> jinja2.Environment:
    """A Jinja environment that loads the template's files as Copier does."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_ROOT),
        extensions=["jinja2_ansible_filters.AnsibleCoreFiltersExtension"],
    )


@cache
def macros() -> jinja2.environment.TemplateModule:
    """includes/answers.jinja, as Copier loads it."""
    return template_environment().get_template("includes/answers.jinja").module


def refusals(answers: dict[str, str]) -> dict[str, str]:
    """What the validators of copier.yml say of these answers, the questions not answered at
    their defaults (derived ones rendered from the answers before them), in the order Copier
    asks: {question: message} for each that refuses. The words are the template's own."""
    environment = template_environment()
    context: dict[str, object] = {}
    said = {}
    for name, spec in load_copier_yml().items():
        if name.startswith("_") or not isinstance(spec, dict):
            continue
        default = spec.get("default")
        if name in answers:
            context[name] = answers[name]
        elif isinstance(default, str):
            context[name] = environment.from_string(default).render(context)
        asked = environment.from_string(str(spec.get("when", True))).render(context)
        validator = spec.get("validator")
        if isinstance(validator, str) and asked.strip().lower() not in ("false", ""):
            message = environment.from_string(validator).render(context).strip()
            if message:
                said[name] = message
    return said


def words(text: str) -> str:
    return " ".join(text.split())


def free_text(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[str]:
    return st.text(
        alphabet=st.one_of(st.sampled_from(NASTY), st.characters()),
        min_size=min_size,
        max_size=max_size,
    )


names = st.one_of(
    free_text(),
    st.builds(
        lambda digits, rest: digits + rest,
        st.from_regex(r"[0-9]{1,4}", fullmatch=True),
        free_text(),
    ),
    st.text(alphabet="日本語サービス ", min_size=1, max_size=12),
    free_text(min_size=250, max_size=400),
)


def render_in_process(
    destination: Path, answers: dict[str, str], template: Path
) -> Exception | None:
    """Copier run as a user runs it, in this process (a render takes milliseconds, not a second)."""
    try:
        copier.run_copy(
            str(template),
            str(destination),
            data=answers,
            defaults=True,
            quiet=True,
        )
    except ValueError as error:
        return error
    return None


def kubernetes_names(root: Path) -> list[tuple[str, str]]:
    """(kind, name) of every object, namespace and label value in the deploy manifests."""
    found = []
    for path in sorted((root / "deploy").rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if not document:
                continue
            if "namespace" in document:
                found.append(("Namespace", document["namespace"]))
            metadata = document.get("metadata", {})
            if "name" in metadata:
                found.append((document["kind"], metadata["name"]))
            found += [("label", value) for value in metadata.get("labels", {}).values()]
    return found


def assert_parses(root: Path) -> None:
    """Every rendered file that a parser reads parses, and the Python passes the project's ruff."""
    for path in root.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    tomllib.loads((root / "pyproject.toml").read_text())
    for path in [*root.rglob("*.yaml"), *root.rglob("*.yml")]:
        list(yaml.safe_load_all(path.read_text()))
    for command in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        result = run([sys.executable, "-m", "ruff", *command], root)
        assert result.returncode == 0, result.stdout + result.stderr


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(name=names, description=names, author=free_text(max_size=60))
def test_any_answer_is_refused_with_a_message_or_renders_code_that_parses(
    template_repo: Path, name: str, description: str, author: str
) -> None:
    answers = {
        "project_name": name,
        "description": description,
        "author_name": author,
        "database": "postgresql",
        "worker": "celery",
        "deploy": "kubernetes",
    }
    with tempfile.TemporaryDirectory() as directory:
        destination = Path(directory) / "out"
        error = render_in_process(destination, answers, template_repo)
        if error is not None:
            # The first validator to refuse, by the template's own messages (Copier's words
            # around them are its own to change).
            said = refusals(answers)
            assert said, f"refused, though no validator of copier.yml refuses: {error!r}"
            question, message = next(iter(said.items()))
            assert words(message) in words(str(error)), f"not {question}'s refusal: {error!r}"
            assert question in FREE_TEXT, f"a derived default was refused: {error}"
            assert not (destination / "pyproject.toml").exists()
            return
        assert_parses(destination)
        readme = (destination / "README.md").read_text().splitlines()
        assert readme[0].startswith("# ") and readme[1] == ""
        for kind, value in kubernetes_names(destination):
            assert len(value) <= MAX_K8S_NAME, (kind, value)
            assert DNS_1035_LABEL.match(value), (kind, value)


def slug_is_sound(slug: str) -> bool:
    """What a slug must be, from what it names: a distribution name as packaging normalizes
    it, and SLUG-release a Kubernetes object name (a DNS-1035 label of 63 characters at most),
    not one of the project's own dependencies."""
    return (
        re.sub(r"[-_.]+", "-", slug).lower() == slug
        and bool(DNS_1035_LABEL.match(f"{slug}-release"))
        and bool(DNS_1035_LABEL.match(slug))
        and len(f"{slug}-release") <= MAX_K8S_NAME
        and slug not in macros().LOCKED_DISTRIBUTIONS
    )


slugs = st.one_of(
    # Mostly sound: letters, digits, single hyphens; long ones too.
    st.from_regex(r"[a-z][a-z0-9]{0,12}(-[a-z0-9]{1,12}){0,6}", fullmatch=True),
    # Near misses: the characters of a slug and those a slug must not hold.
    st.text(alphabet="abz09-_.AZ é", max_size=70),
    st.sampled_from(["flask", "celery", "pydantic-settings", "a" * 55, "a" * 56]),
)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(slug=slugs)
def test_the_slug_validator_refuses_exactly_the_slugs_a_cluster_or_an_index_would(
    slug: str,
) -> None:
    """Each rule separately: a widened character class, a lost anchor or bound shows here."""
    problem = macros().slug_problem(slug).strip()
    assert bool(problem) != slug_is_sound(slug), (slug, problem)
    if problem:
        assert "\n" not in problem and problem.endswith(".") and len(problem) <= 100, problem


# Nasty answers given the whole treatment: locked, installed, linted, imported.
NASTY_EXAMPLES = {
    "quotes-backslash-unicode": {
        "project_name": 'Bob\'s "Best" Service \\ Ünïcode',
        "description": 'Says "hi" \\ to `everyone` & *nobody* | # not a heading """',
        "author_name": 'Zoë "Z" O\'Brien \\ Jr.',
    },
    "digits-first": {"project_name": "3D Printer API", "description": "1. Prints things."},
    "all-cjk": {"project_name": "日本語サービス", "description": "日本語の説明です。" * 12},
    "300-characters": {"project_name": "Very Long Service Name " * 13 + "X"},
}
FRAMEWORKS = {
    "fastapi-postgresql-celery": {
        "web_framework": "fastapi",
        "database": "postgresql",
        "worker": "celery",
    },
    "flask": {"web_framework": "flask"},
}


@pytest.mark.once
@pytest.mark.parametrize(
    ("example", "options"),
    [
        ("quotes-backslash-unicode", "fastapi-postgresql-celery"),
        ("quotes-backslash-unicode", "flask"),
        ("digits-first", "flask"),
        ("all-cjk", "fastapi-postgresql-celery"),
        ("300-characters", "fastapi-postgresql-celery"),
    ],
)
def test_nasty_answers_give_a_project_that_installs_lints_and_imports(
    template_repo: Path, tmp_path: Path, example: str, options: str
) -> None:
    answers = {**NASTY_EXAMPLES[example], **FRAMEWORKS[options]}
    destination = tmp_path / "out"
    copied = copier_copy(template_repo, destination, *(f"{k}={v}" for k, v in answers.items()))
    assert copied.returncode == 0, copied.stderr
    package = yaml.safe_load((destination / ".copier-answers.yml").read_text())["package_name"]
    assert_succeeds(["uv", "sync", "--quiet"], destination)
    assert_succeeds(["uv", "run", "--no-sync", "ruff", "check", "."], destination)
    assert_succeeds(["uv", "run", "--no-sync", "ruff", "format", "--check", "."], destination)
    imported = assert_succeeds(
        [
            "uv",
            "run",
            "--no-sync",
            "python",
            "-c",
            f"import json, {package}, {package}.app; print(json.dumps({package}.__doc__))",
        ],
        destination,
    )
    # The docstring is the description, wrapped where it is long.
    description = answers.get("description", "A twelve-factor web service.")
    assert "".join(json.loads(imported.stdout).split()) == "".join(description.split())


# Lists the top-level modules each installed distribution provides, run in a rendered project.
TOP_LEVEL_MODULES = """
import importlib.metadata, json
modules = set()
for distribution in importlib.metadata.distributions():
    for file in distribution.files or ():
        top = file.parts[0]
        if len(file.parts) == 1 and not top.endswith(".py"):
            continue
        modules.add(top.removesuffix(".py").split(".")[0])
print(json.dumps(sorted(modules)))
"""


@pytest.mark.once
@pytest.mark.combinations(database="postgresql", worker="celery")
def test_refused_names_cover_every_locked_distribution_and_module(project: Path) -> None:
    """A new dependency cannot slip past the slug and package validators unnoticed."""
    rules = macros()
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    locked = {
        re.sub(r"[-_.]+", "-", package["name"]).lower()
        for package in tomllib.loads((project / "uv.lock").read_text())["package"]
    } - {pyproject["project"]["name"]}
    assert locked <= set(rules.LOCKED_DISTRIBUTIONS), sorted(
        locked - set(rules.LOCKED_DISTRIBUTIONS)
    )
    listed = assert_succeeds(
        ["uv", "run", "--no-sync", "python", "-c", TOP_LEVEL_MODULES], project
    ).stdout
    own_package = pyproject["tool"]["uv"]["build-backend"]["module-name"]
    modules = {m for m in json.loads(listed) if re.fullmatch(r"[a-z][a-z0-9_]*", m)}
    modules -= {own_package, *rules.STDLIB_MODULES}
    refused = set(rules.LOCKED_IMPORTS) | {d.replace("-", "_") for d in rules.LOCKED_DISTRIBUTIONS}
    assert modules <= refused, sorted(modules - refused)
