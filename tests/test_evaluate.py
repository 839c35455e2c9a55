"""Metrics against hand computations, and on a tiny model that memorised a few facts."""

import itertools
import math
import random

import pytest
import torch
from tokenizers import Regex, Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from quail.data.examples import Example
from quail.evaluation.lm import (
    greedy_continuations,
    length_batches,
    shared_prefix_length,
    token_logprobs,
)
from quail.evaluation.metrics import (
    first_line,
    knowledge,
    knowledge_sets,
    min_k_scores,
    perplexity,
    privleak,
    verbatim,
)
from quail.evaluation.recovery import recovery
from quail.evaluation.scoring import exact_match, roc_auc, rouge_l_f1

FACTS = [
    ("Question: Where was Ada Quill born?\nAnswer:", " Lorvik"),
    ("Question: What does Ada Quill do?\nAnswer:", " botanist"),
    ("Question: Where was Bo Reyne born?\nAnswer:", " Tamsfield"),
    ("Question: What does Bo Reyne do?\nAnswer:", " architect"),
]


def test_rouge_l_by_hand():
    # LCS("the cat sat on the mat", "the cat on mat") = "the cat on mat": P = 4/4, R = 4/6
    assert rouge_l_f1("the cat on mat", "the cat sat on the mat") == pytest.approx(0.8)
    assert rouge_l_f1("Paris", "paris") == 1.0
    assert rouge_l_f1("", "paris") == 0.0


def test_exact_match_normalises_case_punctuation_and_articles():
    assert exact_match("The Lorvik.", "lorvik")
    assert not exact_match("Lorvik Bay", "Lorvik")


def test_auc_equals_a_direct_pairwise_count():
    rng = random.Random(0)
    positives = [rng.choice([0.1, 0.2, 0.3, 0.5]) + rng.random() // 1 for _ in range(40)]
    negatives = [rng.choice([0.0, 0.2, 0.3]) for _ in range(30)]
    pairs = list(itertools.product(positives, negatives))
    direct = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert roc_auc(positives, negatives) == pytest.approx(direct)
    assert roc_auc([2.0, 3.0], [0.0, 1.0]) == 1.0
    assert roc_auc([0.0], [1.0]) == 0.0


def test_recovery_edge_cases():
    assert recovery(0.9, 0.1, 0.1).value == 0.0
    assert recovery(0.9, 0.1, 0.9).value == pytest.approx(1.0)
    assert recovery(0.9, 0.1, 0.5).value == pytest.approx(0.5)
    assert recovery(0.9, 0.1, 0.0).value == pytest.approx(-0.125)  # forgot even more
    nothing = recovery(0.5, 0.5, 0.9)
    assert nothing.value is None and "nothing was forgotten" in nothing.reason
    assert recovery(0.5, 0.6, 0.9).value is None  # unlearning made the metric worse
    # the original keeps under the quantizer at least half of what unlearning removed: defined
    assert recovery(0.9, 0.1, 0.5, original_quantized=0.5).value == pytest.approx(0.5)
    lost = recovery(0.9, 0.1, 0.2, original_quantized=0.3)  # the quantized original lost it
    assert lost.value is None and "original itself loses" in lost.reason
    assert privleak(0.75, 0.5) == pytest.approx(50.0)


def word_tokenizer(texts) -> PreTrainedTokenizerFast:
    """Words, punctuation and newlines as tokens (the newline ends an answer)."""
    splits = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"[ \t]+"), "removed"),
            pre_tokenizers.Split(Regex(r"\w+|[^\w\s]+|\n"), "isolated"),
        ]
    )
    pieces = {piece for t in texts for piece, _ in splits.pre_tokenize_str(t)}
    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2}
    vocab.update({piece: i + 3 for i, piece in enumerate(sorted(pieces))})
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = splits
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )


@pytest.fixture(scope="module")
def memorised():
    """A tiny Llama trained until it answers the four facts, plus its tokenizer."""
    texts = [prompt + target for prompt, target in FACTS]
    tokenizer = word_tokenizer(texts)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
        pad_token_id=0, eos_token_id=1, bos_token_id=1,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    batch = tokenizer([t + " <eos>" for t in texts], return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval(), tokenizer


def test_knowledge_on_a_model_that_knows_the_facts(memorised):
    model, tokenizer = memorised
    probes = [Example(prompt, target) for prompt, target in FACTS]
    scores = knowledge(model, tokenizer, probes)
    assert scores == {"rouge_l": 100.0, "exact_match": 1.0, "n": 4, "scores": [100.0] * 4}
    wrong = [Example(p, " " + t.split()[0][::-1]) for p, t in FACTS]  # reversed answers
    assert knowledge(model, tokenizer, wrong)["exact_match"] == 0.0


def test_probe_sets_answered_together_score_as_each_set_alone(memorised):
    model, tokenizer = memorised
    right = [Example(prompt, target) for prompt, target in FACTS]
    wrong = [Example(p, " " + t.split()[0][::-1]) for p, t in FACTS[:3]]
    together = knowledge_sets(model, tokenizer, {"right": right, "wrong": wrong})
    assert together == {
        "right": knowledge(model, tokenizer, right),
        "wrong": knowledge(model, tokenizer, wrong),
    }
    assert together["right"]["exact_match"] == 1.0 and together["wrong"]["n"] == 3


def test_generation_stops_once_the_first_line_is_complete(memorised):
    model, tokenizer = memorised
    # "Question:" is continued with a question, a newline and its answer (the stop cuts it at
    # that newline); a full prompt with its answer and <eos>; a question without "\nAnswer:",
    # whose leading newline must not stop it
    prompts = ["Question:", FACTS[2][0], "Question: Where was Ada Quill born?"]
    full = greedy_continuations(model, tokenizer, prompts, max_new_tokens=16)
    short = greedy_continuations(model, tokenizer, prompts, max_new_tokens=16, first_line_only=True)
    assert "\n" in full[0].lstrip() and full[0].lstrip().split("\n", 1)[1].strip()
    assert len(short[0]) < len(full[0]) and short[0].rstrip(" ").endswith("\n")
    assert [first_line(a) for a in short] == [first_line(a) for a in full]


def test_length_batches_fill_a_token_budget_in_order_of_length():
    assert length_batches([5, 1, 3, 9, 2], max_tokens=9) == [[1, 4, 2], [0], [3]]
    assert length_batches([20, 4], max_tokens=8) == [[1], [0]]  # too long: alone
    assert length_batches([], max_tokens=8) == []


def test_a_shared_prompt_prefix_gives_the_answers_of_each_prompt_alone(memorised):
    model, tokenizer = memorised
    prompts = [prompt for prompt, _ in FACTS] + ["Question: What does"]
    ids = tokenizer(prompts)["input_ids"]
    assert shared_prefix_length(ids) == 2  # "Question" ":" is run once, cached, shared
    together = greedy_continuations(model, tokenizer, prompts, max_new_tokens=6)
    alone = [greedy_continuations(model, tokenizer, [p], max_new_tokens=6)[0] for p in prompts]
    assert together == alone
    assert [first_line(a) for a in together[:4]] == [t.strip() for _, t in FACTS]


def test_verbatim_reproduces_memorised_passages(memorised):
    model, tokenizer = memorised
    texts = [prompt + target for prompt, target in FACTS]
    assert verbatim(model, tokenizer, texts, prefix_tokens=8)["rouge_l"] == pytest.approx(100.0)


def test_verbmem_is_read_against_the_same_kind_of_text_never_trained_on(memorised):
    from quail.evaluation.suite import EvalData, evaluate_model

    model, tokenizer = memorised
    trained = [prompt + target for prompt, target in FACTS]
    # the same template with the facts swapped between people: never trained on as written
    unseen = [FACTS[0][0] + FACTS[2][1], FACTS[2][0] + FACTS[0][1]]
    data = EvalData(passages={"forget": trained, "holdout": unseen})
    scores = evaluate_model(model, tokenizer, data)
    assert scores["verbmem_holdout"] == verbatim(model, tokenizer, unseen)["rouge_l"]
    assert scores["verbmem_forget"] == pytest.approx(100.0)
    assert 0 < scores["verbmem_holdout"] < 100  # the template's words, not the facts
    assert "verbmem_holdout" not in evaluate_model(
        model, tokenizer, EvalData({}, {"forget": trained})
    )


def test_min_k_and_perplexity_by_hand(memorised):
    model, tokenizer = memorised
    text = FACTS[0][0] + FACTS[0][1]
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(ids).logits[0, :-1]
    by_hand = torch.log_softmax(logits, -1).gather(-1, ids[0, 1:, None])[:, 0]
    batched = token_logprobs(model, tokenizer, [text, FACTS[1][0]])  # padded beside a shorter one
    torch.testing.assert_close(batched[0], by_hand, rtol=1e-4, atol=1e-5)
    lowest = sorted(by_hand.tolist())[: math.ceil(0.4 * len(by_hand))]
    assert min_k_scores(model, tokenizer, [text])[0] == pytest.approx(sum(lowest) / len(lowest))
    assert perplexity(model, tokenizer, [text]) == pytest.approx(
        math.exp(-by_hand.mean().item()), rel=1e-4
    )
    texts = [p + t for p, t in FACTS] + [p for p, _ in FACTS]  # batched by length, in order
    alone = [token_logprobs(model, tokenizer, [t])[0] for t in texts]
    in_batches = token_logprobs(model, tokenizer, texts, max_tokens=40)
    for got, expected in zip(in_batches, alone, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    unseen = "Question: Where was Bo Quill born?\nAnswer: Lorvik"
    assert min_k_scores(model, tokenizer, [text])[0] > min_k_scores(model, tokenizer, [unseen])[0]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    from quail.data.build import build_dataset

    return build_dataset(tmp_path_factory.mktemp("data") / "small", seed=0, size="small")


def test_cli_evaluate_writes_strict_json_and_refuses_broken_weights(tmp_path, small_data):
    """JSON has no NaN or infinity: Python writes them as invalid tokens, so a model whose
    perplexity overflows (finite weights, huge logits) gets null there; a model with NaN
    weights is refused before any work, in one line, with nothing written."""
    import json

    from typer.testing import CliRunner

    import tiny
    from quail.cli import app
    from unlearn_tiny import WORDS, tokenizer

    def saved(name, edit):
        model = tiny.tiny_llama(vocab_size=len(WORDS), max_position_embeddings=256)
        with torch.no_grad():
            edit(model)
        model.save_pretrained(tmp_path / name)
        tokenizer().save_pretrained(tmp_path / name)
        return str(tmp_path / name)

    def run(model_dir, out):
        args = ["evaluate", model_dir, "--data", str(small_data), "--quant", "fp,int8"]
        return CliRunner().invoke(app, [*args, "--limit", "2", "--json", str(out)])

    def strict(token):
        raise AssertionError(f"{token} is not JSON")

    loud = saved("loud", lambda m: m.lm_head.weight.mul_(1e30))  # logits ~1e30: ppl overflows
    result = run(loud, tmp_path / "loud.json")
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "loud.json").read_text(), parse_constant=strict)
    assert set(written["results"]) == {"fp", "rtn-int8-channel-sym"}
    fp = written["results"]["fp"]
    assert fp["ppl_retain"] is None and 0 <= fp["knowmem_forget"] <= 100
    per_probe = fp["probes"]["knowmem_forget"]  # what intervals over probes resample
    assert len(per_probe) == 2 and sum(per_probe) / 2 == pytest.approx(fp["knowmem_forget"])

    broken = saved("broken", lambda m: m.model.layers[1].mlp.down_proj.weight[0, 0].fill_(math.nan))
    result = run(broken, tmp_path / "broken.json")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert f"model {broken} has NaN or inf weights in model.layers.1.mlp.down_proj" in result.output
    assert not (tmp_path / "broken.json").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--quant", ""], "--quant names no spec"),
        (["--quant", " , "], "--quant names no spec"),
        (["--limit", "-1"], "--limit must be at least 1"),
        (["--limit", "0"], "--limit must be at least 1"),
    ],
)
def test_cli_evaluate_bad_options_are_one_line_before_any_work(
    tmp_path, small_data, extra, message
):
    from typer.testing import CliRunner

    from quail.cli import app

    out = tmp_path / "out.json"
    args = ["evaluate", str(tmp_path / "no-model"), "--data", str(small_data), *extra]
    result = CliRunner().invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert message in result.output and not out.exists()
