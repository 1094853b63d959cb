"""The questions: bad answers are refused with a message saying what is allowed; renders repeat."""

import re
from pathlib import Path

import pytest
import yaml

from helpers.commands import copier_copy, rendered_files
from helpers.matrix import choice_questions

# A value that is not among a question's choices: Copier refuses it in its own words, which a
# release may change; the refusal must name the question, the answer and every value allowed.
NOT_A_CHOICE = None

# Each bad answer with the beginning of the template's message refusing it (Copier's own for a
# value not among the choices).
BAD_ANSWERS = [
    ("project_name", "   ", "The name must not be empty"),
    ("project_name", "Order\nService", "The name must be one line of text"),
    ("project_name", "Order\tService", "The name must be one line of text, without tabs"),
    (
        "project_slug",
        "Order Service",
        "The slug may hold only lowercase letters, digits and",
    ),
    # Each rule of the slug's on its own: a cluster refuses a name with any of these.
    ("project_slug", "Order-Service", "The slug may hold only lowercase letters, digits and"),
    ("project_slug", "order_service", "The slug may hold only lowercase letters, digits and"),
    ("project_slug", "9-lives", "The slug must start with a letter"),
    ("project_slug", "-order-service", "The slug must start with a letter"),
    ("project_slug", "order--service", "The slug must have single hyphens"),
    ("project_slug", "order-service-", "The slug must have single hyphens"),
    ("project_slug", "a" * 56, "The slug must be at most 55 characters"),
    ("project_slug", "flask", "The slug is a distribution the project depends on"),
    ("project_slug", "pydantic-settings", "The slug is a distribution the project depends on"),
    ("package_name", "order-service", "The package name must be a Python identifier"),
    ("package_name", "Order_service", "The package name must be a Python identifier"),
    ("package_name", "9lives", "The package name must be a Python identifier"),
    ("package_name", "class", "The package name is a Python keyword"),
    ("package_name", "tests", "The package name is a Python keyword or reserved"),
    ("package_name", "email", "The package name is a standard library module"),
    ("package_name", "tomllib", "The package name is a standard library module"),
    ("package_name", "celery", "The package name is a module of a library the project depends"),
    ("package_name", "yaml", "The package name is a module of a library the project depends"),
    ("package_name", "a" * 26, "The package name must be at most 25 characters"),
    ("description", "", "The description must not be empty"),
    ("description", "Takes orders.\nAnd more.", "The description must be one line of text"),
    ("author_name", "", "The author name must not be empty"),
    ("author_name", "Ada\x07Lovelace", "The author name must be one line of text"),
    ("author_email", "ada.example.org", "The email address must look like name@example.com"),
    ("author_email", 'ada"@example.org', "The email address must look like name@example.com"),
    ("web_framework", "pyramid", NOT_A_CHOICE),
    ("python_version", "3.9", NOT_A_CHOICE),
    ("python_version", "3.11", "Python 3.11 is no longer offered"),
    ("database", "mysql", NOT_A_CHOICE),
    ("worker", "rq", NOT_A_CHOICE),
    ("ci", "jenkins", NOT_A_CHOICE),
    ("repository", "order-service", "The repository must be owner/name"),
    ("repository", "acme/orders/api", "The repository must be owner/name"),
    ("repository", "acme/order service", "Each part of the repository may hold only letters"),
    ("repository", "-acme/order-service", "Each part of the repository must start with a"),
    ("deploy", "helm", NOT_A_CHOICE),
]


@pytest.mark.parametrize(
    ("question", "answer", "message"), BAD_ANSWERS, ids=[f"{q}={a!r}" for q, a, _ in BAD_ANSWERS]
)
def test_bad_answer_is_refused_with_what_is_allowed(
    template_repo: Path, tmp_path: Path, question: str, answer: str, message: str
) -> None:
    result = copier_copy(template_repo, tmp_path / "out", f"{question}={answer}")
    assert result.returncode != 0, f"{question}={answer!r} was taken, not refused"
    if message is NOT_A_CHOICE:
        named = [question, answer, *choice_questions()[question]]
        # Each as a word of its own: "3.12" in "python3.12/site-packages" is not named.
        unnamed = [n for n in named if not re.search(rf"(?<![\w.]){re.escape(n)}(?![\w.])",
                                                      result.stderr)]  # fmt: skip
        assert not unnamed, f"{unnamed} not named in:\n{result.stderr}"
    else:  # the template's own validator's message (copier.yml, includes/answers.jinja)
        lines = [line for line in result.stderr.splitlines() if message in line]
        assert lines, result.stderr
        refusal = lines[-1][lines[-1].index(message) :]
        # Whole on one line of 100 characters at most: Copier's prompt shows the first line.
        assert refusal.endswith(".") and len(refusal) <= 100, refusal
    assert not (tmp_path / "out" / "pyproject.toml").exists()


def test_every_choice_question_has_its_own_bad_answer_test() -> None:
    tested = {question for question, _, _ in BAD_ANSWERS}
    assert set(choice_questions()) <= tested


# A name, and the slug and package derived from it: always valid, whatever the name.
DERIVED = [
    ("Café Ünicode Service", "cafe-unicode-service", "cafe_unicode_service"),
    ("Ünïcode  Order Service!", "unicode-order-service", "unicode_order_service"),
    ("Straße Øresund Łódź", "strasse-oresund-lodz", "strasse_oresund_lodz"),
    ("3D Printer API", "service-3d-printer-api", "service_3d_printer_api"),
    ("日本語サービス", "service", "service"),
    ("Email", "email-service", "email_service"),
    ("Flask", "flask-service", "flask_service"),
    ("Celery", "celery-service", "celery_service"),
    ("Order " * 57 + "Service", "-".join(["order"] * 9), "_".join(["order"] * 4)),
]


@pytest.mark.parametrize(
    ("name", "slug", "package"), DERIVED, ids=[name[:24] for name, _, _ in DERIVED]
)
def test_slug_and_package_derived_from_any_name_are_valid(
    template_repo: Path, tmp_path: Path, name: str, slug: str, package: str
) -> None:
    result = copier_copy(template_repo, tmp_path / "out", f"project_name={name}")
    assert result.returncode == 0, result.stderr
    answers = yaml.safe_load((tmp_path / "out" / ".copier-answers.yml").read_text())
    assert (answers["project_slug"], answers["package_name"]) == (slug, package)
    assert (tmp_path / "out" / "src" / package / "__init__.py").is_file()


def test_slug_given_is_the_package_default(template_repo: Path, tmp_path: Path) -> None:
    """A slug typed by hand whose package would shadow a module gets a package that does not."""
    result = copier_copy(template_repo, tmp_path / "out", "project_slug=json")
    assert result.returncode == 0, result.stderr
    answers = yaml.safe_load((tmp_path / "out" / ".copier-answers.yml").read_text())
    assert (answers["project_slug"], answers["package_name"]) == ("json", "json_service")


def test_same_answers_render_byte_identical_files(template_repo: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for destination in (first, second):
        assert copier_copy(template_repo, destination).returncode == 0
    files = rendered_files(first)
    assert "pyproject.toml" in files
    assert files == rendered_files(second)


def test_repository_defaults_from_the_slug_and_takes_gitlab_subgroups(
    template_repo: Path, tmp_path: Path
) -> None:
    """GitHub's repositories are owner/name; GitLab's may sit in subgroups."""
    assert copier_copy(template_repo, tmp_path / "github").returncode == 0
    answers = yaml.safe_load((tmp_path / "github" / ".copier-answers.yml").read_text())
    assert answers["repository"] == f"your-org/{answers['project_slug']}"
    result = copier_copy(
        template_repo, tmp_path / "gitlab", "ci=gitlab", "repository=Acme/Platform/Orders"
    )
    assert result.returncode == 0, result.stderr
    assert "registry.gitlab.com/acme/platform/orders" in (tmp_path / "gitlab/README.md").read_text()
