"""What the `pairwise` marker promises (conftest.pairwise_over_pythons), on the real matrix: the
fewest code combinations that meet every pair of answers of the other questions, each Python as
often as the others, so that a behaviour test meets every Python and every pair of answers."""

import itertools

import pytest

from helpers.matrix import choice_questions, code_questions, combinations, pairwise_over_pythons
from helpers.tiers import IMAGES

PYTHONS = choice_questions()["python_version"]
OTHERS = [q for q in code_questions() if q != "python_version"]


def pairs(chosen: list[dict[str, str]]) -> set[tuple]:
    return {((q, c[q]), (r, c[r])) for c in chosen for q, r in itertools.combinations(OTHERS, 2)}


@pytest.mark.parametrize("salt", [IMAGES, "a_test_name", "another_test_name"])
def test_every_pair_of_answers_met_by_the_fewest_combinations_each_python_evenly(
    salt: str,
) -> None:
    everything = combinations(code_questions())
    chosen = pairwise_over_pythons(everything, salt)
    assert pairs(chosen) == pairs(everything)
    # No smaller set meets every pair: each pair of two questions' answers needs a combination.
    sizes = sorted(len(choice_questions()[q]) for q in OTHERS)
    assert len(chosen) == sizes[-1] * sizes[-2], chosen
    assert len({tuple(c[q] for q in OTHERS) for c in chosen}) == len(chosen), "a code twice"
    uses = [sum(c["python_version"] == p for c in chosen) for p in PYTHONS]
    assert max(uses) - min(uses) <= 1, dict(zip(PYTHONS, uses, strict=True))


def test_different_salts_take_different_combinations() -> None:
    everything = combinations(code_questions())
    taken = {
        tuple(sorted(tuple(c.values()) for c in pairwise_over_pythons(everything, salt)))
        for salt in (IMAGES, "a_test_name", "another_test_name", "a_fourth_name")
    }
    assert len(taken) > 1


def test_a_filtered_test_meets_the_pythons_evenly_over_the_code_combinations_it_keeps() -> None:
    celery = [c for c in combinations(code_questions()) if c["worker"] == "celery"]
    chosen = pairwise_over_pythons(celery, "a_test_name")
    assert pairs(chosen) == pairs(celery)
    uses = [sum(c["python_version"] == p for c in chosen) for p in PYTHONS]
    # Each Python once before any twice: as many as there are combinations, at most all.
    assert max(uses) - min(uses) <= 1, dict(zip(PYTHONS, uses, strict=True))
    assert sum(use > 0 for use in uses) == min(len(chosen), len(PYTHONS)), uses
