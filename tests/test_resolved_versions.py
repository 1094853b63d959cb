"""The record of what each combination resolved names the packages that moved, and only those."""

import json
from pathlib import Path

from helpers.resolved_versions import changes, read_table, table


def test_a_moved_release_is_one_line_and_a_smaller_run_is_no_change(tmp_path: Path) -> None:
    for name, redis in (("a", "8.1.0"), ("b", "8.2.0"), ("c", "8.2.0")):
        (tmp_path / f"{name}.json").write_text(json.dumps({"redis": redis, "flask": "3.1.2"}))
    resolved, now = table(tmp_path)
    assert resolved == 3
    assert now == {"flask": "3.1.2 (3)", "redis": "8.1.0 (1) 8.2.0 (2)"}
    landed = tmp_path / "landed.txt"
    landed.write_text("# a header\nflask 3.1.2 (48)\nredis 8.1.0 (24)\ncelery 5.6.0 (24)\n")
    assert changes(read_table(landed), now) == ["redis: 8.1.0 -> 8.1.0 8.2.0"]
