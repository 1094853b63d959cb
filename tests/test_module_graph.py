"""The rendered package's imports: no circle among its modules, in every code combination.

A circle is a module that cannot be read without the ones above it: it breaks when an import
moves, and hides which floor a module stands on. Imports inside functions and those for type
checking count too: they are the usual ways a circle is hidden rather than broken.
"""

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

from helpers.matrix import IDENTITY, defaults


def module_names(package: Path) -> dict[str, Path]:
    """Each module of the package by its dotted name (a package by its own)."""
    names = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports_within(package: Path) -> dict[str, set[str]]:
    """For each module, the package's modules it imports, wherever in it the import is."""
    modules = module_names(package)
    graph = {}
    for name, path in modules.items():
        # What a relative import is relative to: the package itself, or the module's package.
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                target = ".".join([*base, *([node.module] if node.module else [])])
                candidates = [target, *(f"{target}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            imported |= {c for c in candidates if c in modules and c != name}
        graph[name] = imported
    return graph


@pytest.mark.combinations(python_version=defaults()["python_version"])
def test_the_rendered_package_has_no_import_circle(
    code_combination: dict[str, str], render
) -> None:
    package = render(code_combination) / "src" / IDENTITY["package_name"]
    graph = imports_within(package)
    assert len(graph) > 10, sorted(graph)  # the package was read
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        raise AssertionError(f"an import circle: {' -> '.join(error.args[1])}") from None
