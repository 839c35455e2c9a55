"""quail's modules import one another without a circle, counting the imports written inside
functions: a circle that only a function-level import keeps from failing is still a circle."""

import ast
import subprocess
import sys
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


# The study's own code, and the country task it runs (quail.study.sources): nothing else may
# reach the task, however indirectly.
STUDY_SIDE = ("quail.cli", "quail.countries", "quail.study")


def test_no_engine_imports_the_country_task():
    modules = module_names()
    graph = {name: imported(path, modules) for name, path in modules.items()}
    engines = [n for n in modules if not any(n == s or n.startswith(f"{s}.") for s in STUDY_SIDE)]
    assert {"quail.unlearning.loop", "quail.evaluation", "quail.base.cache"} <= set(engines)
    assert "quail.countries" in graph["quail.study.sources"]  # the task is seen where it is
    for engine in engines:
        reached, todo = set(), [engine]
        while todo:
            for name in graph[todo.pop()] - reached:
                reached.add(name)
                todo.append(name)
        task = sorted(n for n in reached if n.startswith("quail.countries"))
        assert not task, f"{engine} imports {task[0]}"


def test_the_model_zoo_finds_its_cache_without_transformers():
    """`quail models` lists and locates packaged models without importing transformers."""
    check = (
        "import quail.zoo, sys; quail.zoo.cache_root(); assert 'transformers' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
