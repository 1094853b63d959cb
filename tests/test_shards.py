"""`--shard i/n` (shards.py): the shards of a selection are a partition of it, by whole groups."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from helpers.matrix import TEMPLATE_ROOT
from helpers.shards import partition

# Collected with `--collect-only`, its items written where the variable says (one JSON list of
# [node id, group] per run), so that a shard's tests are read as the shard selected them.
PROBE = """\
import json, os
from helpers.shards import group_of

def pytest_collection_finish(session):
    with open(os.environ["SHARD_PROBE_OUT"], "w") as out:
        json.dump([[item.nodeid, group_of(item)] for item in session.items], out)
"""
# A small selection with groups (the combinations' tests) and tests in none (parametrized by
# other values): collected in about 3 s.
SELECTION = ["tests/test_pipelines.py"]
SHARDS = 3


def collect(tmp_path: Path, name: str, *options: str) -> subprocess.Popen:
    """`pytest --collect-only -q --full SELECTION *options`, as a user runs it, recording."""
    (tmp_path / "shard_probe.py").write_text(PROBE)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(TEMPLATE_ROOT / "tests")]),
        "SHARD_PROBE_OUT": str(tmp_path / f"{name}.json"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0", "-p", "shard_probe",
         "--full", *SELECTION, *options],
        cwd=TEMPLATE_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def test_the_shards_of_a_selection_hold_each_test_once_and_each_group_whole(
    tmp_path: Path,
) -> None:
    runs = {"all": collect(tmp_path, "all")}
    for index in range(1, SHARDS + 1):
        runs[f"{index}"] = collect(tmp_path, f"{index}", "--shard", f"{index}/{SHARDS}")
    for name, run in runs.items():
        output = run.communicate(timeout=120)[0]
        assert run.returncode == 0, f"{name}: exit {run.returncode}\n{output[-3000:]}"
    collected = {
        name: [tuple(test) for test in json.loads((tmp_path / f"{name}.json").read_text())]
        for name in runs
    }
    everything = collected.pop("all")
    assert {group for _, group in everything} - {None}, "the selection has no groups"
    assert None in {group for _, group in everything}, "the selection has no ungrouped tests"
    in_shards = [test for shard in collected.values() for test in shard]
    assert Counter(in_shards) == Counter(everything), "a test in no shard, or in two"
    shard_of_group: dict[str, set[str]] = {}
    for name, tests in collected.items():
        assert tests, f"shard {name} of {SHARDS} is empty"
        for _, group in tests:
            if group is not None:
                shard_of_group.setdefault(group, set()).add(name)
    split = {group: shards for group, shards in shard_of_group.items() if len(shards) > 1}
    assert split == {}, "groups split over shards"


def test_a_shard_out_of_range_is_a_usage_error(tmp_path: Path) -> None:
    runs = {value: collect(tmp_path, "bad", "--shard", value) for value in ("0/3", "4/3", "3")}
    for value, run in runs.items():
        output = run.communicate(timeout=120)[0]
        assert run.returncode == pytest.ExitCode.USAGE_ERROR, (value, output[-3000:])
        assert f"--shard: '{value}' is not i/n" in output, (value, output[-3000:])


def test_partition_keeps_groups_whole_balances_counts_and_is_the_same_on_every_machine() -> None:
    tests = [(f"t.py::ungrouped[{i}]", None) for i in range(40)]
    sizes = [30, 17, 17, 9, 8, 8, 5, 3, 2, 1, 1]
    tests += [(f"t.py::g{g}[{i}]", f"g{g}") for g, size in enumerate(sizes) for i in range(size)]
    for count in (1, 2, 3, 4, 7, 40):
        shards = partition(tests, count)
        assert shards == partition(list(tests), count)
        assert set(shards) <= set(range(count))
        for group in {g for _, g in tests if g}:
            assert len({s for (_, g), s in zip(tests, shards, strict=True) if g == group}) == 1
        loads = Counter(shards)
        ungrouped = Counter(s for (_, g), s in zip(tests, shards, strict=True) if g is None)
        # Largest first to the emptiest (the ungrouped tests placed before): no shard holds more
        # than the average and the largest group, unless its ungrouped tests alone do.
        bound = max(len(tests) / count + max(sizes), max(ungrouped.values()))
        assert max(loads.values()) <= bound, (count, loads)
