"""The questions: bad answers are refused with a message saying what is allowed; renders repeat."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import rendered_files
from matrix import choice_questions

BAD_ANSWERS = [
    ("project_name", "   ", "must not be empty"),
    ("project_slug", "Order Service", "lowercase letters, digits and single hyphens"),
    ("project_slug", "9-lives", "starting with a letter"),
    ("project_slug", "order--service", "single hyphens"),
    ("package_name", "order-service", "must be a Python identifier"),
    ("package_name", "class", "is a Python keyword"),
    ("description", "", "one non-empty line"),
    ("author_name", "", "must not be empty"),
    ("author_email", "ada.example.org", "must look like name@example.com"),
    ("web_framework", "django", "'django' is not in ['fastapi', 'flask']"),
    ("python_version", "3.9", "'3.9' is not in ['3.11', '3.12', '3.13']"),
    ("database", "mysql", "'mysql' is not in ['none', 'postgresql']"),
    ("worker", "rq", "'rq' is not in ['none', 'celery']"),
    ("ci", "jenkins", "'jenkins' is not in ['github', 'gitlab', 'none']"),
    ("deploy", "helm", "'helm' is not in ['none', 'kubernetes']"),
]


def copier_copy(template: Path, destination: Path, *data: str) -> subprocess.CompletedProcess[str]:
    """The copier command line a user types, with answers given as --data."""
    arguments = [arg for answer in data for arg in ("--data", answer)]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "copier",
            "copy",
            "--defaults",
            "--trust",
            "--skip-tasks",
            *arguments,
            str(template),
            str(destination),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("question", "answer", "message"), BAD_ANSWERS, ids=[f"{q}={a!r}" for q, a, _ in BAD_ANSWERS]
)
def test_bad_answer_is_refused_with_what_is_allowed(
    template_repo: Path, tmp_path: Path, question: str, answer: str, message: str
) -> None:
    result = copier_copy(template_repo, tmp_path / "out", f"{question}={answer}")
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert not (tmp_path / "out" / "pyproject.toml").exists()


def test_every_choice_question_has_its_own_bad_answer_test() -> None:
    tested = {question for question, _, _ in BAD_ANSWERS}
    assert set(choice_questions()) <= tested


def test_slug_and_package_are_derived_from_the_name(template_repo: Path, tmp_path: Path) -> None:
    result = copier_copy(template_repo, tmp_path / "out", "project_name=Ünïcode  Order Service!")
    assert result.returncode == 0, result.stderr
    answers = (tmp_path / "out" / ".copier-answers.yml").read_text()
    assert "project_slug: n-code-order-service" in answers
    assert "package_name: n_code_order_service" in answers


def test_same_answers_render_byte_identical_files(template_repo: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for destination in (first, second):
        assert copier_copy(template_repo, destination).returncode == 0
    files = rendered_files(first)
    assert "pyproject.toml" in files
    assert files == rendered_files(second)
