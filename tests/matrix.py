"""The combinations of the template's choice questions, read from copier.yml itself.

Every question with `choices` is structural: a new one grows the matrix with no change here.
"""

import itertools
from pathlib import Path

import yaml

TEMPLATE_ROOT = Path(__file__).resolve().parent.parent


def load_copier_yml() -> dict:
    return yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())


def choice_questions() -> dict[str, list[str]]:
    """Each choice question with its allowed values, in the order copier.yml gives them."""
    questions = {}
    for name, spec in load_copier_yml().items():
        if name.startswith("_") or not isinstance(spec, dict) or "choices" not in spec:
            continue
        choices = spec["choices"]
        questions[name] = [
            str(v) for v in (choices.values() if isinstance(choices, dict) else choices)
        ]
    return questions


def combination_id(answers: dict[str, str]) -> str:
    """A readable id such as `fastapi-py3.12`: values joined, versions marked as Pythons."""
    return "-".join(
        f"py{value}" if name == "python_version" else value for name, value in answers.items()
    )


def combinations() -> list[dict[str, str]]:
    questions = choice_questions()
    return [
        dict(zip(questions, values, strict=True))
        for values in itertools.product(*questions.values())
    ]
