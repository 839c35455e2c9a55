"""The built-in base model: a test-sized run learns its facts, sits on its grid, loads in plain
transformers, and is cached by recipe and data."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from quail.base import (
    BASE_CONFIG,
    CLASSIFIER_CONFIG,
    cache_key,
    cached_model,
    read_metadata,
    train_base_model,
    train_claims_classifier,
)
from quail.base import cache as cache_module
from quail.base.probes import exact_match, with_eos
from quail.base.tokenizer import train_tokenizer
from quail.data import build_dataset, format_question, load_qa
from quail.data.batches import encode
from quail.data.load import qa_example
from quail.quant import parse_spec, quantize_model

TINY = BASE_CONFIG.replace(hidden_size=64, num_layers=2, intermediate_size=256, threads=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return build_dataset(tmp_path_factory.mktemp("data") / "small", size="small")


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "base"
    metrics = train_base_model(data, out, TINY)
    return out, metrics


def test_tokenizer_is_deterministic_and_splits_prompt_from_target():
    texts = ["Question: Where was Adela Okafor born?\nAnswer: Lisbon", "Adela Okafor is a poet."]
    a, b = train_tokenizer(texts), train_tokenizer(list(texts))
    assert a.get_vocab() == b.get_vocab()
    prompt, target = format_question("Where was Adela Okafor born?"), " Lisbon"
    example = qa_example({"question": "Where was Adela Okafor born?", "answer": "Lisbon"})
    encoded = encode(with_eos([example], a), a, 256, "forget")[0]
    ids = encoded.ids
    joint = a(prompt + target)["input_ids"]
    assert ids == joint + [a.eos_token_id]
    assert ids[0] == a.bos_token_id
    targets = [x for x, is_target in zip(ids, encoded.is_target, strict=True) if is_target]
    assert targets == [a.convert_tokens_to_ids("Lisbon"), a.eos_token_id]
    assert a.decode(a(target, add_special_tokens=False)["input_ids"]) == "Lisbon"


def test_tiny_model_learns_its_facts_and_sits_on_the_grid(trained, data):
    out, m = trained
    assert m["reached_target"]
    assert m["forget"] >= 0.95 and m["retain"] >= 0.95
    assert m["holdout"] <= m["holdout_chance"] + 0.15  # never saw those entities
    assert m["grid_distance"] < 1e-6
    assert m["forget_quantized"] == m["forget"] and m["retain_quantized"] == m["retain"]
    assert read_metadata(out)["metrics"] == m


def test_retrained_reference_never_learns_the_forget_set(data, tmp_path):
    m = train_base_model(data, tmp_path / "retrain", TINY.replace(train_forget=False))
    assert m["reached_target"] and m["retain"] >= 0.95
    assert m["forget"] <= m["holdout_chance"] + 0.25  # forget entities are as unseen as holdout


def test_saved_model_loads_in_plain_transformers_and_answers(trained, data):
    out, _ = trained
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert (out / "model.safetensors").is_file()
    records = load_qa(data, "retain", paraphrase=False)[:6]
    flags = exact_match(model, tokenizer, [qa_example(r) for r in records])
    for record, flag in zip(records, flags, strict=True):
        ids = tokenizer(format_question(record["question"]), return_tensors="pt")["input_ids"]
        with torch.no_grad():
            gen = model.generate(ids, max_new_tokens=4, do_sample=False)
        answer = tokenizer.decode(gen[0, ids.shape[1] :], skip_special_tokens=True)
        assert (answer.strip() == record["answer"]) == flag  # teacher forcing == generate
    assert sum(flags) >= 5
    spec = parse_spec(TINY.snap)
    quantized = quantize_model(model, spec)
    for (name, w), (_, wq) in zip(
        model.named_parameters(), quantized.named_parameters(), strict=True
    ):
        assert torch.allclose(w, wq, atol=1e-6), name  # Q(W) == W: the weights are grid points


def test_claims_classifier_reaches_training_accuracy(data, tmp_path):
    config = CLASSIFIER_CONFIG.replace(threads=1)
    metrics = train_claims_classifier(data, tmp_path / "clf", config)
    assert metrics["forget"] >= 0.95 and metrics["retain"] >= 0.95
    assert 0 <= metrics["test"] <= 1


def test_cache_reuses_a_trained_model_and_keys_on_config_and_data(data, tmp_path, monkeypatch):
    monkeypatch.setenv("QUAIL_CACHE", str(tmp_path / "cache"))
    calls = []

    def fake_train(data_dir, out_dir, config, overwrite, log):
        calls.append(config)
        out_dir.mkdir(parents=True)
        (out_dir / "quail_base.json").write_text("{}")

    monkeypatch.setitem(cache_module.TASKS, "knowledge", (fake_train, TINY))
    first = cached_model(data)
    assert cached_model(data) == first and len(calls) == 1
    assert first.parent.parent == tmp_path / "cache"
    other = cached_model(data, config=TINY.replace(seed=1))
    assert other != first and len(calls) == 2
    key = cache_key("knowledge", data, TINY)
    copy = tmp_path / "edited"
    copy.mkdir()
    for f in data.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    (copy / "qa.jsonl").write_text((data / "qa.jsonl").read_text().replace("false", "true", 1))
    assert cache_key("knowledge", copy, TINY) != key


@pytest.mark.parametrize("tied", [False, True])
def test_snapping_with_an_emb_part_rounds_the_embeddings_too(tied):
    """Through straight-through weights the model computes as its fake-quantized copy and the
    float weights get the gradients; snapped, every weight, the embedding included, is on its
    grid, a tied weight stays one tensor, and the model's parameters are the same objects (an
    optimizer keeps them)."""
    from torch.func import functional_call

    import tiny
    from quail.quant import grid_distance, quantized_weights, snap_onto, ste_weights

    spec = parse_spec("rtn-int4-g32-asym+emb-rtn-int8-g32")
    model = tiny.tiny_llama(tie_word_embeddings=tied)
    expected = quantize_model(model, spec)
    ids = torch.randint(0, 128, (2, 12))
    params = [id(p) for p in model.parameters()]
    assert grid_distance(model, spec) > 1e-3
    weights = ste_weights(model, quantized_weights(model, model, spec))
    logits = functional_call(model, weights, (), {"input_ids": ids}).logits
    assert torch.allclose(logits, expected(input_ids=ids).logits, atol=1e-5)
    logits.sum().backward()
    snap_onto(model, spec)
    embedding = model.get_input_embeddings().weight
    assert embedding.grad is not None and embedding.grad.abs().sum() > 0
    assert [id(p) for p in model.parameters()] == params
    assert (model.lm_head.weight is embedding) == tied
    assert grid_distance(model, spec) < 1e-7
    wanted = expected.state_dict()  # W + (Q(W) - W) is Q(W) up to float rounding
    for name, saved in model.state_dict().items():
        assert torch.allclose(saved, wanted[name], rtol=0, atol=1e-7), name
