"""The combinations of the template's choice questions, read from copier.yml itself.

Every question with `choices` is structural: a new one grows the matrix with no change here.
Two matrices come out of it:
- every combination, for the checks of what is rendered (files, artifacts), which are cheap;
- the combinations of the questions that the project's own checks can see (installing, linting,
  testing and running it), every other question at its default. A question that no Python
  source, pyproject.toml, Procfile or .env.example of the template mentions (the CI service,
  say) cannot change their outcome, so it does not multiply the expensive checks.
"""

import itertools
import re
from pathlib import Path

import jinja2
import yaml

TEMPLATE_ROOT = Path(__file__).resolve().parent.parent
# What a rendered project's own checks read, by the end of a rendered file's name.
CODE_FILES = (".py", ".mako", "pyproject.toml", "Procfile", ".env.example", ".python-version")


def load_copier_yml() -> dict:
    return yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())


def choice_questions() -> dict[str, list[str]]:
    """Each choice question with its allowed values, in the order copier.yml gives them."""
    questions = {}
    for name, spec in load_copier_yml().items():
        if name.startswith("_") or not isinstance(spec, dict) or "choices" not in spec:
            continue
        choices = spec["choices"]
        values = choices.values() if isinstance(choices, dict) else choices
        # A choice with a validator of its own is one no longer offered (Copier disables it).
        questions[name] = [str(v) for v in values if not isinstance(v, dict)]
    return questions


def defaults() -> dict[str, str]:
    """Each choice question's default for a new project (where it is a template, as rendered
    with no earlier answers)."""
    spec = load_copier_yml()
    return {
        name: jinja2.Environment().from_string(str(spec[name]["default"])).render()
        for name in choice_questions()
    }


def code_questions() -> list[str]:
    """The choice questions that some file read by the project's own checks mentions."""
    texts = [
        f"{path.relative_to(TEMPLATE_ROOT)}\n{path.read_text()}"
        for path in (TEMPLATE_ROOT / "template").rglob("*")
        if path.is_file() and re.sub(r"\{%.*?%\}|\.jinja$", "", path.name).endswith(CODE_FILES)
    ]
    return [q for q in choice_questions() if any(re.search(rf"\b{q}\b", t) for t in texts)]


def combination_id(answers: dict[str, str]) -> str:
    """A readable id such as `fastapi-py3.12-none-none-github`: the values, in question order."""
    return "-".join(
        f"py{value}" if name == "python_version" else value for name, value in answers.items()
    )


def combinations(varying: list[str] | None = None) -> list[dict[str, str]]:
    """Every combination of the `varying` questions (all by default), the others at default."""
    questions = choice_questions()
    varying = list(questions) if varying is None else varying
    fixed = defaults()
    return [
        {q: (dict(zip(varying, values, strict=True)).get(q, fixed[q])) for q in questions}
        for values in itertools.product(*(questions[q] for q in varying))
    ]
