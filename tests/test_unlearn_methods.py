"""Methods on a tiny Llama that knows a handful of facts: each does what its loss says."""

import math

import pytest
import torch

import unlearn_tiny as tiny
from quail.data.batches import Batch, collate, encode
from quail.data.examples import Example
from quail.quant import parse_spec, quantize_model, quantized_weights, ste_weights
from quail.unlearning import METHODS, losses, unlearn
from quail.unlearning.config import UnlearnConfig
from quail.unlearning.forward import forward
from quail.unlearning.losses import nll
from quail.unlearning.methods import ODDS_MARGIN, Step, answer_odds
from tiny import tiny_llama

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


@pytest.mark.parametrize("method", ["npo_klr", "quail_hinge"])
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


def test_quail_hinge_starts_at_gamma_times_its_margin_and_quail_npo_runs():
    """At the first step Q(θ) is Q(θ0): the answer's log-probability has not fallen on the
    quantized model yet, so the hinge is γ·m."""
    hinge = run("quail_hinge", steps=2, quant=QUANT, margin=0.5, gamma=2.0)
    assert hinge.curves[0]["hinge"] == pytest.approx(1.0, rel=1e-5)
    npo = run("quail_npo", steps=3, quant=QUANT)
    assert all(math.isfinite(c["loss"]) for c in npo.curves)


@pytest.mark.parametrize("method", ["sure_ga_gdr", "sure_quail"])
def test_sure_masked_rows_do_not_move_even_with_weight_decay(method):
    original = tiny.trained_model()
    result = run(method, steps=5, weight_decay=0.1, sure_percentile=75, quant=QUANT)
    moved_rows = total_rows = 0
    for (name, p0), p1 in zip(original.named_parameters(), result.model.parameters(), strict=True):
        changed = (p1.detach() != p0.detach()).reshape(p0.shape[0], -1).any(dim=1)
        moved_rows += int(changed.sum())
        total_rows += p0.shape[0]
        assert changed.sum() <= math.ceil(0.25 * p0.shape[0]), name
    assert 0 < moved_rows < 0.25 * total_rows + 1


@pytest.mark.parametrize("spec", [QUANT, QUANT + "+emb-int8"])
def test_ste_loss_is_the_quantized_models_loss(spec):
    model = tiny.trained_model()
    forget, _ = tiny.split()
    tok = tiny.tokenizer()
    batch = collate(encode(forget, tok, 256, "forget"), [0, 1, 2, 3], tok.pad_token_id)

    def quantized_nll(name):  # one micro-batch of the four forget examples, in any order
        with torch.no_grad():
            out = forward(quantize_model(model, parse_spec(name)), batch)
            return -nll(out.logits, out.targets).item()

    expected = quantized_nll(spec)
    assert spec == QUANT or expected != pytest.approx(quantized_nll(QUANT), rel=1e-3)
    result = run("ste_ga_gdr", steps=3, quant=spec, model=model)
    assert result.curves[0]["forget"] == pytest.approx(expected, rel=1e-4)
    assert result.curves[-1]["forget"] < result.curves[0]["forget"]


@pytest.mark.parametrize("tied", [False, True])
def test_straight_through_weights_compute_as_the_quantized_model(tied):
    """With an `+emb-` spec the embeddings and lm_head are replaced too, a tied one once."""
    model = tiny_llama(tie_word_embeddings=tied)
    spec = parse_spec("int4-g16+emb-int8")
    parts = quantized_weights(model, model, spec)
    assert parts.pop("model.embed_tokens.weight") == spec.embeddings
    assert parts.pop("lm_head.weight", None) == (None if tied else spec.embeddings)
    assert set(parts.values()) == {spec.linear} and len(parts) == 14  # 7 linears x 2 layers
    ids = torch.randint(0, 128, (2, 12))
    batch = Batch(ids, torch.ones_like(ids), ids, torch.arange(2), torch.zeros(2, dtype=torch.bool))
    expected = forward(quantize_model(model, spec), batch).logits
    got = forward(model, batch, weights=ste_weights(model, quantized_weights(model, model, spec)))
    assert torch.allclose(got.logits, expected, atol=1e-5)
    assert not torch.allclose(forward(model, batch).logits, expected, atol=1e-3)


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


def test_quails_odds_term_reads_the_answers_of_prompted_examples_not_passages():
    """In a batch of one question and one passage the term is the odds hinge over the
    question's answer tokens only; a batch of passages has none."""
    model, tok = tiny.trained_model(), tiny.tokenizer()
    question = Example("ada lives in", " paris")
    passage = Example("", "bo works as a pilot")
    encoded = encode([question, passage], tok, 256, "forget")
    batch = collate(encoded, [0, 1], tok.pad_token_id)
    out = forward(model, batch)

    def step(b):
        return Step(UnlearnConfig(), b, None, lambda b: forward(model, b), None, None)

    on_answer = out.seq == 0
    expected = losses.odds_hinge(out.logits[on_answer], out.targets[on_answer], ODDS_MARGIN)
    assert answer_odds(step(batch))["odds"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert answer_odds(step(batch))["odds"].item() != pytest.approx(
        losses.odds_hinge(out.logits, out.targets, ODDS_MARGIN).item(), rel=1e-3
    )
    passages = collate(encoded, [1, 1], tok.pad_token_id)
    assert answer_odds(step(passages)) == {}
