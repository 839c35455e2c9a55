"""quail's modules import one another without a circle, counting the imports written inside
functions: a circle that only a function-level import keeps from failing is still a circle."""

import ast
from graphlib import TopologicalSorter
from pathlib import Path

import quail

PACKAGE = Path(quail.__file__).parent


def module_names() -> dict[str, Path]:
    return {
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(
            ".__init__"
        ): path
        for path in PACKAGE.rglob("*.py")
    }


def imported(path: Path, modules: dict[str, Path]) -> set[str]:
    """The quail modules `path` imports; `from a import b` counts a.b when b is a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
    return found & modules.keys()


def test_no_import_circle():
    modules = module_names()
    graph = {name: imported(path, modules) - {name} for name, path in modules.items()}
    assert "quail.quant.backends" in graph["quail.quant.tensor"]  # the parser sees imports
    tuple(TopologicalSorter(graph).static_order())  # CycleError names the circle
