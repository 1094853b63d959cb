"""What `spread_pythons` promises (conftest.spread_over_pythons), on the real matrix: each code
combination once, each Python as often as the others, and each Python's combinations as unlike
as they can be, so that a behaviour test meets every Python and every answer beside it."""

import pytest
from conftest import spread_over_pythons
from matrix import choice_questions, code_questions, combinations

PYTHONS = choice_questions()["python_version"]
OTHERS = [q for q in code_questions() if q != "python_version"]


@pytest.mark.parametrize("salt", ["images", "a_test_name", "another_test_name"])
def test_each_code_combination_once_each_python_evenly_and_meeting_every_answer(
    salt: str,
) -> None:
    everything = combinations(code_questions())
    chosen = spread_over_pythons(everything, salt)
    codes = [tuple(c[q] for q in OTHERS) for c in chosen]
    assert sorted(codes) == sorted({tuple(c[q] for q in OTHERS) for c in everything})
    uses = [sum(c["python_version"] == p for c in chosen) for p in PYTHONS]
    assert max(uses) - min(uses) <= 1, dict(zip(PYTHONS, uses, strict=True))
    # As many answers of each other question as a Python's share of combinations can hold.
    for python in PYTHONS:
        mine = [c for c in chosen if c["python_version"] == python]
        for question in OTHERS:
            answers = {c[question] for c in mine}
            assert len(answers) == min(len(mine), len(choice_questions()[question])), (
                python, question, mine,
            )  # fmt: skip


def test_a_filtered_test_meets_every_python_once_per_code_combination_it_keeps() -> None:
    celery = [c for c in combinations(code_questions()) if c["worker"] == "celery"]
    chosen = spread_over_pythons(celery, "a_test_name")
    assert sorted(c["python_version"] for c in chosen) == sorted(PYTHONS[: len(chosen)])
