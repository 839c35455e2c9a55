"""The fidelity metrics (KL divergence, top-1 agreement, perplexity ratio against the same
model at full precision) by hand and on a tiny model."""

import random

import pytest
import torch

import tiny
from quail.evaluation import EvalData, evaluate, fidelity, fp_reference
from quail.evaluation.fidelity import token_sets
from quail.evaluation.metrics import perplexity
from quail.quant import load_quantized, parse_spec
from unlearn_tiny import WORDS, tokenizer

RETAIN = [
    " ".join(random.Random(seed).choices(WORDS[4:], k=12 + seed)) for seed in range(6)
]  # fmt: skip
GENERAL = [" ".join(random.Random(seed).choices(WORDS[4:], k=20)) for seed in range(10, 14)]
DATA = EvalData(passages={"retain": RETAIN, "heldout_general": GENERAL})


@pytest.fixture(scope="module")
def model():
    return tiny.tiny_llama(3, vocab_size=len(WORDS), max_position_embeddings=64)


def _under(model, spec):
    return load_quantized(model, parse_spec(spec), dequantize_once=True)


def test_the_fp_model_against_itself_is_exact(model):
    scores = fidelity(model, fp_reference(model, tokenizer(), DATA))
    assert scores == {
        "kld_retain": 0.0, "top1_retain": 1.0, "ppl_ratio_retain": 1.0,
        "kld_general": 0.0, "top1_general": 1.0, "ppl_ratio_general": 1.0,
    }  # fmt: skip


def test_a_coarser_grid_drifts_further(model):
    reference = fp_reference(model, tokenizer(), DATA)
    fine = fidelity(_under(model, "rtn-int8-g32"), reference)
    coarse = fidelity(_under(model, "rtn-int2-g32"), reference)
    for name in ("retain", "general"):
        assert 0 < fine[f"kld_{name}"] < coarse[f"kld_{name}"]
        assert coarse[f"top1_{name}"] < fine[f"top1_{name}"] <= 1
    assert fine["ppl_ratio_retain"] == pytest.approx(1, abs=0.01)


def test_kl_and_ppl_ratio_by_hand(model):
    """KL against torch's kl_div over every position; the ratio is the two models' own
    perplexities' ratio (batched token_logprobs: another code path), i.e. exp of the mean
    NLL difference."""
    quantized = _under(model, "rtn-int3-g32")
    ids = tokenizer()(RETAIN)["input_ids"]
    with torch.no_grad():
        fp = [torch.log_softmax(model(torch.tensor([t])).logits[0, :-1], -1) for t in ids]
        q = [torch.log_softmax(quantized(torch.tensor([t])).logits[0, :-1], -1) for t in ids]
    fp, q = torch.cat(fp), torch.cat(q)
    by_hand = torch.nn.functional.kl_div(q, fp, log_target=True, reduction="sum") / len(fp)
    top1 = (fp.argmax(-1) == q.argmax(-1)).float().mean()
    scores = fidelity(quantized, fp_reference(model, tokenizer(), DATA))
    assert scores["kld_retain"] == pytest.approx(by_hand.item(), rel=1e-4)
    assert scores["top1_retain"] == pytest.approx(top1.item())
    ratio = perplexity(quantized, tokenizer(), RETAIN) / perplexity(model, tokenizer(), RETAIN)
    assert scores["ppl_ratio_retain"] == pytest.approx(ratio, rel=1e-4)
    assert scores["ppl_ratio_retain"] != pytest.approx(1, abs=1e-3)


def test_token_sets_keep_texts_in_order_up_to_the_budget_and_the_context():
    ids = tokenizer()(RETAIN)["input_ids"]
    sets = token_sets(tokenizer(), DATA.passages, max_tokens=30, context=10)
    assert sets["retain"] == [ids[0][:10], ids[1][:10], ids[2][:10]]
    assert sum(map(len, sets["general"])) == 30
    assert token_sets(tokenizer(), {"retain": RETAIN}, 30, 64).keys() == {"retain"}


def test_evaluate_reports_fidelity_beside_every_quantized_spec(model):
    data = EvalData(passages={"retain": RETAIN})
    results = evaluate(model, data, ["fp", "rtn-int4-g32"], tokenizer())
    assert "kld_retain" not in results["fp"]
    quantized = results["rtn-int4-g32-sym"]
    assert quantized["kld_retain"] > 0 and 0 < quantized["top1_retain"] <= 1
    assert quantized["ppl_retain"] / results["fp"]["ppl_retain"] == pytest.approx(
        quantized["ppl_ratio_retain"], rel=1e-4
    )
    reference = fp_reference(model, tokenizer(), data)
    again = evaluate(model, data, ["rtn-int4-g32"], tokenizer(), reference=reference)
    assert again["rtn-int4-g32-sym"]["kld_retain"] == quantized["kld_retain"]
