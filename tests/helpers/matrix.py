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
import zlib
from pathlib import Path

import jinja2
import yaml

TEMPLATE_ROOT = Path(__file__).resolve().parents[2]
# What a rendered project's own checks read, by the end of a rendered file's name.
CODE_FILES = (".py", ".mako", "pyproject.toml", "Procfile", ".env.example", ".python-version")


# Identity answers other than the defaults, so a name hard-coded in the template shows up.
IDENTITY = {
    "project_name": "Order Service",
    "project_slug": "order-service",
    "package_name": "orders",
    "description": "Takes orders.",
    "author_name": "Ada Lovelace",
    "author_email": "ada@example.org",
}


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


# Where a rendered file's name or text can depend on an answer: its Jinja tags and expressions.
JINJA = re.compile(r"\{%.*?%\}|\{\{.*?\}\}", re.DOTALL)


def code_questions() -> list[str]:
    """The choice questions that the Jinja of some file read by the project's own checks names
    (not its prose: a comment saying "deploy" does not make the `deploy` answer change it)."""
    jinja = [
        " ".join(JINJA.findall(f"{path.relative_to(TEMPLATE_ROOT)}\n{path.read_text()}"))
        for path in (TEMPLATE_ROOT / "template").rglob("*")
        if path.is_file() and re.sub(r"\{%.*?%\}|\.jinja$", "", path.name).endswith(CODE_FILES)
    ]
    return [q for q in choice_questions() if any(re.search(rf"\b{q}\b", t) for t in jinja)]


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


def pairwise_over_pythons(selected: list[dict[str, str]], salt: str) -> list[dict[str, str]]:
    """As few code combinations as meet every pair of answers of the other questions (framework,
    database, worker: four of their eight), each on one Python, the Pythons used evenly and each
    meeting as many answers as it can. Where that leaves a choice (the even or the odd four),
    the salt (the test's name, or the marker's argument) picks it, so that different tests take
    different fours and pair the Pythons differently.

    For the container, fault and README tests, whose subject is the service's behaviour rather
    than its install: every code combination still installs, lints, runs its own tests and the
    twelve-factor probes on every Python (unmarked tests), and every Python meets every one of
    these tests that can run on it.
    """
    pythons = choice_questions()["python_version"]
    turn = zlib.crc32(salt.encode()) % len(pythons)
    order = pythons[turn:] + pythons[:turn]
    by_code: dict[tuple, list[dict[str, str]]] = {}
    for c in selected:
        others = tuple((q, a) for q, a in c.items() if q != "python_version")
        by_code.setdefault(others, []).append(c)
    codes = list(by_code)
    codes = codes[turn % len(codes) :] + codes[: turn % len(codes)]

    def pairs(code: tuple) -> set[tuple]:
        return set(itertools.combinations(code, 2))

    wanted = set().union(*map(pairs, codes))
    covering = next(
        chosen
        for size in range(1, len(codes) + 1)
        for chosen in itertools.combinations(codes, size)
        if set().union(*map(pairs, chosen)) == wanted
    )
    used: dict[str, int] = dict.fromkeys(order, 0)
    met: set[tuple[str, str, str]] = set()  # (Python, question, answer) pairs run so far
    kept = []
    for answers in covering:

        def cost(c: dict[str, str], answers: tuple = answers) -> tuple[int, int, int]:
            python = c["python_version"]
            unmet = sum((python, q, a) not in met for q, a in answers)
            return used[python], -unmet, order.index(python)

        chosen = min(by_code[answers], key=cost)
        used[chosen["python_version"]] += 1
        met.update((chosen["python_version"], q, a) for q, a in answers)
        kept.append(chosen)
    return kept
