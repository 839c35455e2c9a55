"""Methods on a tiny Llama that knows a handful of facts: each does what its loss says."""

import math

import pytest
import torch

import unlearn_tiny as tiny
from quail.data.batches import collate, encode
from quail.quant import parse_spec, quantize_model
from quail.unlearn import METHODS, unlearn
from quail.unlearn.forward import forward
from quail.unlearn.losses import nll

QUANT = "rtn-int4-g16"


def run(method, steps=8, lr=3e-3, model=None, **overrides):
    forget, retain = tiny.split()
    config = {
        "method": method,
        "steps": steps,
        "lr": lr,
        "batch_size": 4,
        "progress": False,
        **overrides,
    }
    model = model if model is not None else tiny.trained_model()
    return unlearn(model, forget, retain, config, tokenizer=tiny.tokenizer())


def test_ga_raises_forget_nll():
    forget, _ = tiny.split()
    before = tiny.mean_nll(tiny.trained_model(), forget)
    after = tiny.mean_nll(run("ga").model, forget)
    assert after > before + 1.0


def test_gdr_holds_retain_nll_where_ga_alone_loses_it():
    _, retain = tiny.split()
    start = tiny.mean_nll(tiny.trained_model(), retain)
    ga = tiny.mean_nll(run("ga", steps=12).model, retain)
    ga_gdr = tiny.mean_nll(run("ga_gdr", steps=12).model, retain)
    assert ga_gdr < ga
    assert ga_gdr < start + 0.5 * (ga - start)


def test_klr_is_zero_at_start():
    first = run("ga_klr", steps=1).curves[0]
    assert first["retain"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("cache", ["full", "topk", "live"])
def test_npo_starts_at_its_closed_form(cache):
    beta = 0.1
    first = run("npo", steps=1, beta=beta, cache=cache).curves[0]
    assert first["forget"] == pytest.approx(2 / beta * math.log(2), rel=1e-5)


@pytest.mark.parametrize("method", ["npo_klr", "quail"])
def test_cache_modes_give_the_same_run(method):
    curves = {}
    for cache in ("full", "live"):
        result = run(method, steps=3, cache=cache, quant=QUANT)
        assert result.cache == cache
        curves[cache] = [c["loss"] for c in result.curves]
    assert curves["full"] == pytest.approx(curves["live"], rel=1e-4)


def test_topk_klr_with_small_k_runs_and_starts_at_zero():
    result = run("ga_klr", steps=2, cache="topk", cache_topk=3)
    assert result.cache == "topk"
    assert result.curves[0]["retain"] == pytest.approx(0.0, abs=1e-6)


def test_quail_hinge_starts_at_its_calibrated_margin():
    result = run("quail", steps=2, quant=QUANT, margin=None, distance="l2", hinge_on="fp")
    margins = result.margins
    assert margins.perturbation > 0
    assert margins.logits == pytest.approx(margins.perturbation)  # margin_multiple = 1
    assert result.curves[0]["hinge"] == pytest.approx(margins.logits, rel=1e-4)  # d = 0 at start


def test_quail_fixed_margin_and_quantized_hinge_with_layer_margins_run():
    fixed = run("quail", steps=2, margin=0.5, distance="l2", hinge_on="fp")
    assert fixed.curves[0]["hinge"] == pytest.approx(0.5, rel=1e-5)
    quant = run("quail_npo", steps=3, quant=QUANT, margin=None, layer_margins=True)
    assert len(quant.margins.layers) == 2
    assert all(math.isfinite(c["loss"]) for c in quant.curves)


def test_sure_masked_rows_do_not_move_even_with_weight_decay():
    original = tiny.trained_model()
    result = run("sure_ga_gdr", steps=5, weight_decay=0.1, sure_percentile=75)
    moved_rows = total_rows = 0
    for (name, p0), p1 in zip(original.named_parameters(), result.model.parameters(), strict=True):
        changed = (p1.detach() != p0.detach()).reshape(p0.shape[0], -1).any(dim=1)
        moved_rows += int(changed.sum())
        total_rows += p0.shape[0]
        assert changed.sum() <= math.ceil(0.25 * p0.shape[0]), name
    assert 0 < moved_rows < 0.25 * total_rows + 1


def test_ste_loss_is_the_quantized_models_loss():
    model = tiny.trained_model()
    quantized = quantize_model(model, parse_spec(QUANT))
    forget, _ = tiny.split()
    tok = tiny.tokenizer()
    encoded = encode(forget, tok, 256, "forget")
    # one micro-batch of all four forget examples, in whatever order: the mean NLL is the same
    with torch.no_grad():
        out = forward(quantized, collate(encoded, [0, 1, 2, 3], tok.pad_token_id))
        expected = -nll(out.logits, out.targets).item()
    result = run("ste_ga_gdr", steps=3, quant=QUANT, model=model)
    assert result.curves[0]["forget"] == pytest.approx(expected, rel=1e-4)
    assert result.curves[-1]["forget"] < result.curves[0]["forget"]


def test_every_registered_method_runs():
    for name in METHODS:
        result = run(name, steps=1, quant=QUANT)
        assert math.isfinite(result.curves[0]["loss"]), name


def test_bf16_storage_options_save_bf16(tmp_path):
    forget, retain = tiny.split()
    for dtype in ("bf16", "bf16_pure"):
        result = unlearn(
            tiny.trained_model(),
            forget,
            retain,
            {"method": "ga_gdr", "steps": 2, "lr": 1e-3, "dtype": dtype, "progress": False},
            tokenizer=tiny.tokenizer(),
            out=tmp_path / dtype,
        )
        assert next(result.model.parameters()).dtype == torch.bfloat16


def test_lora_trains_adapters_and_saves_merged_weights(tmp_path):
    pytest.importorskip("peft")
    forget, retain = tiny.split()
    result = unlearn(
        tiny.trained_model(),
        forget,
        retain,
        {
            "method": "npo_klr",
            "steps": 3,
            "lr": 1e-2,
            "lora_r": 4,
            "cache": "live",
            "progress": False,
        },
        tokenizer=tiny.tokenizer(),
        out=tmp_path / "lora",
    )
    names = [n for n, _ in result.model.named_parameters()]
    assert not any("lora" in n for n in names)
    assert result.curves[0]["retain"] == pytest.approx(0.0, abs=1e-6)
    assert tiny.mean_nll(result.model, forget) > tiny.mean_nll(tiny.trained_model(), forget)


def test_margin_from_quantize_is_zero_on_grid_weights_and_noise_is_not():
    spec = parse_spec(QUANT)
    on_grid = quantize_model(tiny.trained_model(), spec)
    calibrated = {"quant": QUANT, "margin": None, "distance": "l2", "model": on_grid}
    quantize = run("quail", steps=1, margin_from="quantize", **calibrated)
    assert quantize.margins.perturbation == pytest.approx(0.0, abs=1e-6)
    noise = run("quail", steps=1, margin_from="noise", **calibrated)
    assert noise.margins.perturbation > 0.01
