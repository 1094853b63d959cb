"""`--shard i/n`: run the i-th of n parts of the selected tests, each xdist group whole in one.

The template's CI splits the full tier over n machines with it (.github/workflows/ci.yml). The
tests of one combination carry `xdist_group(<its id>)` (conftest.py): they share one rendered and
installed project, and `--dist loadgroup` keeps them on one test process. A shard takes whole
groups, so that no combination is installed on two machines:
- a test in no group goes to the shard that the CRC-32 of its node id names;
- then the groups, largest first (by their count of tests; equal counts by name), each to the
  shard with the fewest tests so far (equal counts: the lower number).
Every machine that selects the same tests so computes the same parts, with no state shared.

The shards split what would run: the partition is made after every other selection (the
tier, -k, -m), and the tests left to the other shards are reported deselected, as -k's are.
"""

import argparse
import zlib
from collections.abc import Iterator, Sequence

import pytest


def parse_shard(text: str) -> tuple[int, int]:
    """'2/4' as (2, 4): the second of four shards, numbered from 1."""
    index, slash, count = text.partition("/")
    if not (slash and index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise argparse.ArgumentTypeError(f"{text!r} is not i/n with 1 <= i <= n (say 2/4)")
    return int(index), int(count)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--shard",
        type=parse_shard,
        metavar="i/n",
        help="run the i-th of n parts of the selected tests, each xdist group whole in one "
        "(the template's CI splits the full tier with it)",
    )


def group_of(item: pytest.Item) -> str | None:
    """The xdist group of a test, named as pytest-xdist names it for --dist loadgroup."""
    names = {
        str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
        for mark in item.iter_markers("xdist_group")
    }
    return "_".join(sorted(names)) if names else None


def partition(tests: Sequence[tuple[str, str | None]], count: int) -> list[int]:
    """The shard (0 to count - 1) of each test, given as (node id, group or None)."""
    shards = [0] * len(tests)
    sizes = [0] * count
    groups: dict[str, list[int]] = {}
    for position, (nodeid, group) in enumerate(tests):
        if group is None:
            shards[position] = zlib.crc32(nodeid.encode()) % count
            sizes[shards[position]] += 1
        else:
            groups.setdefault(group, []).append(position)
    for group in sorted(groups, key=lambda name: (-len(groups[name]), name)):
        smallest = min(range(count), key=lambda shard: (sizes[shard], shard))
        for position in groups[group]:
            shards[position] = smallest
        sizes[smallest] += len(groups[group])
    return shards


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Iterator[None]:
    # After every other implementation: the tier's, -k's and -m's selections are made.
    yield
    shard = config.getoption("shard")
    if shard is None:
        return
    index, count = shard
    shards = partition([(item.nodeid, group_of(item)) for item in items], count)
    kept = [item for item, s in zip(items, shards, strict=True) if s == index - 1]
    left = [item for item, s in zip(items, shards, strict=True) if s != index - 1]
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept
