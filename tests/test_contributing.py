"""CONTRIBUTING.md's worked examples run as written, so they cannot drift from the code.

Every fenced block whose info string starts with `python tested` is run, section by section
(`## ` headings), against a tiny Llama (unlearn_tiny) with `model`, `tokenizer`, `forget` and
`retain` set. The rest of the info string says what the block is:

- nothing: code run in the section's namespace;
- `append=FILE`: code added at the end of FILE, run in that module's namespace;
- `entry=FILE:TABLE`: one or more entries added to TABLE, a dict or a tuple of that module;
- `file=FILE`: a new module.

Every module and table is put back as it was after the test.
"""

import importlib
import re
import sys
import types
from pathlib import Path

import pytest

import unlearn_tiny as tiny
from quail.errors import QuailError

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python tested([^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def sections() -> dict[str, list[tuple[str, str]]]:
    """{heading: [(info, code), ...]} for every `## ` section with tested blocks."""
    text = (ROOT / "CONTRIBUTING.md").read_text()
    out = {}
    for part in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        heading = part.splitlines()[0].strip()
        blocks = [(info.strip(), code) for info, code in FENCE.findall(part)]
        if blocks:
            out[heading] = blocks
    return out


def module_name(path: str) -> str:
    assert path.startswith("src/") and path.endswith(".py"), path
    return path.removeprefix("src/").removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def options(info: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in info.split())


def run_block(info: str, code: str, namespace: dict, undo: list) -> None:
    opts = options(info)
    if "file" in opts:
        path, name = opts["file"], module_name(opts["file"])
        assert not (ROOT / path).exists(), f"{path} exists: the example would overwrite it"
        module = types.ModuleType(name)
        module.__file__ = str(ROOT / path)
        parent, _, child = name.rpartition(".")
        sys.modules[name] = module
        setattr(importlib.import_module(parent), child, module)
        undo.append(lambda: (sys.modules.pop(name, None), delattr(sys.modules[parent], child)))
        exec(compile(code, f"CONTRIBUTING.md, {path}", "exec"), vars(module))
    elif "append" in opts:
        path = opts["append"]
        assert (ROOT / path).exists(), f"{path} does not exist"
        module = importlib.import_module(module_name(path))
        before = dict(vars(module))
        undo.append(lambda m=module, b=before: _reset(m, b))
        exec(compile(code, f"CONTRIBUTING.md, {path}", "exec"), vars(module))
    elif "entry" in opts:
        path, table_name = opts["entry"].split(":")
        source = (ROOT / path).read_text()
        assert re.search(rf"^{table_name}\b[^=\n]*=", source, re.MULTILINE), (
            f"{path} has no table {table_name}"
        )
        module = importlib.import_module(module_name(path))
        table = getattr(module, table_name)
        if isinstance(table, dict):
            before = dict(table)
            undo.append(lambda t=table, b=before: (t.clear(), t.update(b)))
            table.update(eval("{" + code + "}", vars(module)))
        else:
            assert isinstance(table, tuple), f"{table_name} is neither a dict nor a tuple"
            undo.append(lambda m=module, n=table_name, t=table: setattr(m, n, t))
            setattr(module, table_name, table + eval("(" + code + ")", vars(module)))
    else:
        assert not opts, f"unknown block options {info!r}"
        exec(compile(code, "CONTRIBUTING.md", "exec"), namespace)


def _reset(module: types.ModuleType, before: dict) -> None:
    for name in set(vars(module)) - set(before):
        delattr(module, name)
    for name, value in before.items():
        setattr(module, name, value)


def run_section(heading: str) -> dict:
    forget, retain = tiny.split()
    namespace = {
        "model": tiny.trained_model(),
        "tokenizer": tiny.tokenizer(),
        "forget": forget,
        "retain": retain,
    }
    undo = []
    try:
        for info, code in sections()[heading]:
            run_block(info, code, namespace, undo)
        return namespace
    finally:
        for step in reversed(undo):
            step()


def test_every_example_is_tested():
    assert set(sections()) == {"Add a method", "Add a quantizer"}


def test_add_a_method():
    from quail.unlearning import METHODS, losses

    namespace = run_section("Add a method")
    result = namespace["result"]
    terms = result.curves[-1]
    assert {"forget", "retain"} <= set(terms)
    assert all(step["forget"] >= -5.0 - 1e-4 for step in result.curves)  # the cap holds
    before = tiny.mean_nll(tiny.trained_model(), namespace["forget"])
    assert tiny.mean_nll(result.model, namespace["forget"]) > before + 1.0
    assert "capped_ga_gdr" not in METHODS and not hasattr(losses, "capped_ga_loss")


def test_add_a_quantizer():
    from quail.quant import backends, spec

    namespace = run_section("Add a quantizer")
    assert type(namespace["deployed"].model.layers[0].mlp.up_proj).__name__ == "ToyLinear"
    assert "toy" not in backends.BACKENDS and "toy" not in spec.SYMMETRIC_BACKENDS
    assert "quail.quant.backends.toy" not in sys.modules
    with pytest.raises(QuailError, match="unknown quantization spec"):
        spec.parse_spec("toy-int4")
