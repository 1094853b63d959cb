"""Moves the user's own dependencies out of the template's through an update across 0.8.0.

Before 0.8.0 the template's dependency lists were in name order, so `uv add` put the user's in
among the template's, and any update that changed a neighbouring line conflicted. Since 0.8.0
the template's lists are in an order of their own, which makes `uv add` append after them, where
no update's change meets the user's lines. For a project made before, `before` takes the user's
lines (a dependency the template never listed) out of pyproject.toml, so that the update sees no
edit of the user's there, and keeps them in the project's git folder; `after` appends them to
the end of their lists, where `uv add` would now put them. Text, not TOML, so that every line
stays as the user wrote it. Standard library only: it runs on the Python that runs Copier.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from project_git import git, kept_copy

PYPROJECT = Path("pyproject.toml")
KEPT = "copier-twelve-factor-dependencies.json"
# The lists the template fills: (table, key).
LISTS = (("project", "dependencies"), ("dependency-groups", "dev"))
# Every dependency any version of the template listed, normalized (tests/test_update.py checks
# that today's are all here).
TEMPLATE_NAMES = frozenset({
    "a2wsgi", "alembic", "celery", "celery-types", "click", "dj-database-url", "django",
    "django-axes", "django-stubs", "fastapi", "flask", "gunicorn", "honcho", "httpx2", "mypy",
    "opentelemetry-exporter-otlp-proto-http", "opentelemetry-instrumentation-asgi",
    "opentelemetry-instrumentation-celery", "opentelemetry-instrumentation-psycopg",
    "opentelemetry-instrumentation-redis", "opentelemetry-sdk", "prometheus-client", "psycopg",
    "pydantic-settings", "pytest", "redis", "ruff", "sentry-sdk", "sqlalchemy", "structlog",
    "types-gunicorn", "uvicorn", "whitenoise",
})  # fmt: skip
ENTRY = re.compile(r'\s+"([A-Za-z0-9][A-Za-z0-9._-]*)')


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def span(lines: list[str], table: str, key: str) -> tuple[int, int] | None:
    """The indexes of a multi-line list's opening line and of its closing bracket."""
    in_table = False
    for index, line in enumerate(lines):
        if line.startswith("["):
            in_table = line.strip() == f"[{table}]"
        elif in_table and re.match(rf"{re.escape(key)}\s*=\s*\[\s*$", line):
            for end in range(index + 1, len(lines)):
                if lines[end].startswith("]"):
                    return index, end
            return None
    return None


def named(lines: list[str]) -> str:
    return ", ".join(re.search(r'"([^"]*)"', line)[1] for line in lines)  # type: ignore[index]


def before() -> None:
    if not PYPROJECT.is_file():
        return
    lines = PYPROJECT.read_text().splitlines(keepends=True)
    users: dict[str, list[str]] = {}
    for table, key in LISTS:
        found = span(lines, table, key)
        if found is None:
            continue
        start, end = found
        inside = lines[start + 1 : end]
        own = [
            line for line in inside
            if (entry := ENTRY.match(line)) and normalized(entry[1]) not in TEMPLATE_NAMES
        ]  # fmt: skip
        if own:
            users[f"{table}.{key}"] = own
            lines[start + 1 : end] = [line for line in inside if line not in own]
    if users:
        PYPROJECT.write_text("".join(lines))
        # Copier diffs the old version against the project's index: staged, the lines are out.
        git("add", str(PYPROJECT))
        kept_copy(KEPT).write_text(json.dumps(users))


def after() -> None:
    kept = kept_copy(KEPT)
    if not kept.is_file():
        return
    users: dict[str, list[str]] = json.loads(kept.read_text())
    lines = PYPROJECT.read_text().splitlines(keepends=True)
    unplaced = []
    for where, own in users.items():
        table, _, key = where.partition(".")
        found = span(lines, table, key)
        if found is None:
            unplaced += own
            continue
        lines[found[1] : found[1]] = own
        print(f"pyproject.toml: {named(own)} moved to the end of {where}, after the template's",
              file=sys.stderr)  # fmt: skip
    if unplaced:
        lines += ["# Your dependencies, whose list the update did not find:\n"]
        lines += [f"# {line.strip()}\n" for line in unplaced]
        print(f"pyproject.toml: {named(unplaced)}: the update removed their list; they are in a"
              " comment at the file's end", file=sys.stderr)  # fmt: skip
    PYPROJECT.write_text("".join(lines))
    # The index as the project's last commit has it, unless the update left a conflict there.
    if not git("ls-files", "--unmerged", "--", str(PYPROJECT)):
        git("reset", "--quiet", "--", str(PYPROJECT))
    kept.unlink()


if __name__ == "__main__":
    {"before": before, "after": after}[sys.argv[1]]()
