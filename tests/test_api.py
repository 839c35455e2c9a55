"""The notebook API: every main job is one plain function of the `quail` package."""

import importlib
import pkgutil
import subprocess
import sys
import types

import torch
from transformers import LlamaConfig, LlamaForCausalLM

import quail


def tiny_pair():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2,
    )  # fmt: skip
    original = LlamaForCausalLM(config)
    unlearned = LlamaForCausalLM(config)
    unlearned.load_state_dict(original.state_dict())
    with torch.no_grad():
        unlearned.model.layers[0].mlp.up_proj.weight.add_(0.05)
    return original, unlearned


def test_the_entry_points_stay_plain_functions_once_every_engine_module_is_imported():
    """Importing a subpackage's module names the subpackage on `quail`; the API's names must
    still be the functions afterwards, and the registries reachable by import."""
    for package in ("quail.unlearning", "quail.evaluation", "quail.analysis", "quail.study"):
        for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
            importlib.import_module(f"{package}.{module.name}")
    from quail.evaluation import FORGET_METRICS
    from quail.unlearning.methods import METHODS

    homes = {
        "unlearn": "quail.unlearning.api",
        "evaluate": "quail.evaluation",
        "analyze": "quail.analysis.compare",
        "quantize_model": "quail.quant.model",
        "run": "quail.study",
    }
    for name, home in homes.items():
        function = getattr(quail, name)
        assert isinstance(function, types.FunctionType) and function.__module__ == home, name
    assert "quail" in METHODS and "knowmem_forget" in FORGET_METRICS
    assert set(quail.__all__) <= set(dir(quail))


def test_importing_quail_or_its_command_does_not_import_torch():
    """The functions are imported on first use, so `quail --help` starts without torch."""
    check = "import quail, quail.cli, sys; assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_analyze_and_quantize_model_from_the_top_level():
    original, unlearned = tiny_pair()
    result = quail.analyze(original, unlearned, "int4")
    changed = [layer for layer in result.layers if layer["changed_fraction"]]
    assert [layer["name"] for layer in changed] == ["model.layers.0.mlp.up_proj"]
    assert 0 < result.summary["bucket_overlap"] < 1
    quantized = quail.quantize_model(original, quail.parse_spec("int4"))
    assert not torch.equal(
        quantized.model.layers[0].mlp.up_proj.weight, original.model.layers[0].mlp.up_proj.weight
    )
