"""The notebook API: every main job is one call on the `quail` package."""

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


def test_entry_points_are_calls_and_subpackages_stay_reachable():
    import quail.evaluate
    import quail.unlearn

    assert callable(quail.unlearn) and "quail" in quail.unlearn.METHODS
    assert callable(quail.evaluate) and quail.evaluate.FORGET_METRICS
    assert callable(quail.analyze) and callable(quail.run) and callable(quail.quantize_model)


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
