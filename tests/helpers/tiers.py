"""The suite's two tiers: `uv run pytest` (default) and `uv run pytest --full`.

The full tier runs every test on every combination it is parametrized over. The default tier
runs what a contributor needs while working, in a fraction of the time, and drops no kind of
check, only repetitions of it:
- every test not parametrized over the code combinations (the questions, every rendered
  combination's files and artifacts, the update paths): as in the full tier;
- the project's own install, lint, type check and tests (`@pytest.mark.everywhere`): every code
  combination on every Python, as in the full tier;
- the other checks of a running service (probes, metrics, traces, error reports): every code
  combination at the default Python, and the pairwise set (matrix.pairwise_over_pythons) of
  those on the other Pythons;
- the field tests (`@pytest.mark.pairwise`: images, compose, pipelines, faults, README blocks
  beyond "Test and lint"; and `@pytest.mark.once`, those run on more combinations or
  parameters in the full tier, the update paths among them): once each, on the combination with
  the most backing services among theirs, the salt spreading the frameworks and Pythons over the
  tests (a test over other parameters: one of them, by the salt);
- the field tests marked `@pytest.mark.full_tier(why)`: none. Each is the costliest of its kind
  and has a cheaper kin in the default tier (its `why` names it), and none depends on the
  change at hand more than on time: the oldest releases the bounds allow, a load test, the
  whole compose stack beside the README's compose line, a 20 s pause of Redis's writes.
A regression these repetitions would catch in one combination, the full tier (`.ci/run`, the
template's CI, its nightly run) still catches.
"""

import zlib

import pytest

from helpers.matrix import combination_id, defaults, pairwise_over_pythons

# The salt of the image tests' combinations, which compose's tests share (one build each).
# ("the images", which put them all on one Django build in the default tier, cost more than
# the build it saved: compose's README test then ran Django's whole suite, 207 s against 71.)
IMAGES = "images"

# The names under which a test takes its combination (compose's tests call it `answers`; the
# static checks of every option combination, `file_combination`).
COMBINATION_PARAMETERS = ("code_combination", "answers", "file_combination")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--full",
        action="store_true",
        help="the full tier: every test on every combination (.ci/run and the template's CI)",
    )


def combination_of(item: pytest.Item) -> dict[str, str] | None:
    params = getattr(getattr(item, "callspec", None), "params", {})
    for name in COMBINATION_PARAMETERS:
        value = params.get(name)
        if isinstance(value, dict) and "python_version" in value:
            return value
    return None


def richest(combos: list[dict[str, str]], salt: str) -> dict[str, str]:
    """The combination with the most backing services; the salt picks among the equal."""
    return max(
        combos,
        key=lambda c: (
            sum(value != "none" for value in c.values()),
            -zlib.crc32(f"{salt}:{combination_id(c)}".encode()),
        ),
    )


def default_tier(items: list[pytest.Item]) -> set[pytest.Item]:
    """The items the default tier keeps."""
    default_python = defaults()["python_version"]
    by_test: dict[str, list[tuple[pytest.Item, dict[str, str]]]] = {}
    by_parameters: dict[str, list[pytest.Item]] = {}
    kept = set()
    for item in items:
        combination = combination_of(item)
        if item.get_closest_marker("full_tier"):
            continue
        if item.get_closest_marker("everywhere"):
            kept.add(item)
        elif combination is None:
            if item.get_closest_marker("once") and hasattr(item, "callspec"):
                by_parameters.setdefault(item.nodeid.partition("[")[0], []).append(item)
            else:
                kept.add(item)
        else:
            by_test.setdefault(item.nodeid.partition("[")[0], []).append((item, combination))
    for runs_of_one in by_parameters.values():
        salt = runs_of_one[0].originalname
        kept.add(min(runs_of_one, key=lambda i: zlib.crc32(f"{salt}:{i.nodeid}".encode())))
    for runs in by_test.values():
        combos = list({combination_id(c): c for _, c in runs}.values())
        field = runs[0][0].get_closest_marker("pairwise") or runs[0][0].get_closest_marker("once")
        if field:
            salt = field.args[0] if field.args else runs[0][0].originalname
            chosen = [richest(combos, salt)]
        else:
            others = [c for c in combos if c["python_version"] != default_python]
            chosen = [c for c in combos if c["python_version"] == default_python]
            chosen += pairwise_over_pythons(others, runs[0][0].originalname) if others else []
        kept.update(item for item, c in runs if c in chosen)
    return kept


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("full"):
        return
    kept = default_tier(items)
    dropped = [item for item in items if item not in kept]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item in kept]
