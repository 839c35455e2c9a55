"""Train the built-in models from scratch: the fact-knowing LM and the claims classifier.

Both are Llama causal LMs fine-tuned from random weights by the unlearning loop's `finetune`
(a fine-tune is a method too) on Examples whose targets end in EOS, stopped as soon as the
exact-match accuracy on their training probes reaches the target, then optionally snapped onto
a quantization grid: trained on through it with `finetune_ste` (straight-through weights) until
the quantized model passes too, then rounded onto it. The folders they write load in plain
transformers.
"""

import contextlib
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from quail.base import probes
from quail.base.config import BASE_CONFIG, CLASSIFIER_CONFIG, BaseConfig
from quail.base.tokenizer import train_tokenizer
from quail.data import load_claims, load_passages, load_qa
from quail.data.examples import Example
from quail.data.load import (
    claim_example,
    format_claim,
    load_claim_sets,
    load_unlearning_sets,
    qa_example,
    question_format,
)
from quail.data.render import QUESTION_FORMAT, format_question
from quail.io import atomic_dir, atomic_write_json, check_output_dir
from quail.quant import grid_distance, parse_spec, quantize_model, snap_onto
from quail.unlearning.config import make_config
from quail.unlearning.loop import train

METADATA = "quail_base.json"
MAX_LENGTH = 256  # the built model's positions


def build_model(tokenizer, config: BaseConfig) -> LlamaForCausalLM:
    """A Llama with tied embeddings (as SmolLM2), sized by `config`, seeded."""
    torch.manual_seed(config.seed)
    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=MAX_LENGTH,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(llama)


def fit(
    model,
    tokenizer,
    examples: list[Example],
    config: BaseConfig,
    lr: float,
    max_epochs: int,
    passing: Callable[[torch.nn.Module, int], bool],
    grid: str | None = None,
) -> int:
    """Up to `max_epochs` passes of the unlearning loop's fine-tune over `examples` (on `grid`'s
    straight-through weights where given), asking `passing(model, epoch)` every `eval_every`
    epochs; stops when it says so. Returns the epochs run."""
    per_epoch = math.ceil(len(examples) / config.batch_size)
    settings = {
        "method": "finetune_ste" if grid else "finetune", "quant": grid, "lr": lr,
        "steps": max_epochs * per_epoch, "batch_size": config.batch_size,
        "warmup_steps": config.warmup_steps, "weight_decay": 0.0, "max_length": MAX_LENGTH,
        "seed": config.seed, "check_every": config.eval_every * per_epoch, "progress": False,
    }  # fmt: skip
    result = train(
        model,
        tokenizer,
        probes.with_eos(examples, tokenizer),
        None,
        make_config(settings),
        until=lambda m, step: passing(m, math.ceil(step / per_epoch)),
    )
    return math.ceil(len(result.curves) / per_epoch)


def _train_and_snap(model, tokenizer, examples, probe_sets, config, log) -> dict:
    """Phase 1 until the probes pass, phase 2 (straight-through on the grid) until they pass
    again with quantized weights. Returns epochs and timings."""

    def passing(grid=None) -> Callable[[torch.nn.Module, int], bool]:
        """Whether every probe set passes, the model judged quantized on `grid` where given."""

        def check(m, epoch: int) -> bool:
            judged = quantize_model(m, grid) if grid else m
            scores = {
                k: probes.accuracy(probes.exact_match(judged, tokenizer, v))
                for k, v in probe_sets.items()
            }
            m.train()  # exact_match left it in eval mode; the loop goes on training it
            log(f"epoch {epoch}: " + ", ".join(f"{k} {s:.3f}" for k, s in scores.items()))
            return min(scores.values()) >= config.target_accuracy

        return check

    t0 = time.perf_counter()
    epochs = fit(model, tokenizer, examples, config, config.lr, config.max_epochs, passing())
    out = {"epochs": epochs, "train_seconds": round(time.perf_counter() - t0, 1)}
    if config.snap:
        spec = parse_spec(config.snap)
        t1 = time.perf_counter()
        out["snap_epochs"] = fit(
            model,
            tokenizer,
            examples,
            config,
            config.snap_lr,
            config.snap_max_epochs,
            passing(spec),
            config.snap,
        )
        snap_onto(model, spec)
        out["snap_seconds"] = round(time.perf_counter() - t1, 1)
        out["snap_grid"] = spec.name
        out["grid_distance"] = grid_distance(model, spec)
    return out


def _save(out_dir, model, tokenizer, task: str, config: BaseConfig, metrics, overwrite) -> None:
    """A plain Hugging Face folder, plus quail_base.json with the recipe and the measurements."""
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    metadata = {"task": task, "config": config.to_dict(), "metrics": metrics}
    with atomic_dir(out_dir, overwrite) as tmp:
        tokenizer.save_pretrained(tmp)
        model.save_pretrained(tmp, safe_serialization=True)
        atomic_write_json(tmp / METADATA, metadata)


@contextlib.contextmanager
def _session(config: BaseConfig, out_dir, overwrite: bool):
    """Check the output first (fail before training, not after), seed, and use
    `config.threads` for the duration only."""
    check_output_dir(out_dir, overwrite)
    previous = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train_base_model(
    data_dir,
    out_dir,
    config: BaseConfig = BASE_CONFIG,
    overwrite: bool = False,
    log: Callable[[str], None] = lambda s: None,
) -> dict:
    """Train the fact-knowing LM on the forget and retain entities; return measured accuracies.

    Accuracies are exact match of greedy answers: on the trained question forms (forget,
    retain), on held-out paraphrases, and on holdout entities beside their chance level.
    """
    with _session(config, out_dir, overwrite):
        model, tokenizer, metrics = _knowledge(data_dir, config, log)
        _save(out_dir, model, tokenizer, "knowledge", config, metrics, overwrite)
    return metrics


def train_claims_classifier(
    data_dir,
    out_dir,
    config: BaseConfig = CLASSIFIER_CONFIG,
    overwrite: bool = False,
    log: Callable[[str], None] = lambda s: None,
) -> dict:
    """Train the claims classifier (label word after `Label:`); return train and test accuracy."""
    with _session(config, out_dir, overwrite):
        model, tokenizer, metrics = _claims(data_dir, config, log)
        _save(out_dir, model, tokenizer, "claims", config, metrics, overwrite)
    return metrics


def _knowledge(data_dir, config: BaseConfig, log):
    template = question_format(data_dir)
    qa = {
        (s, p): map_qa(load_qa(data_dir, s, p), template)
        for s in ("forget", "retain", "holdout")
        for p in (False, True)
    }
    texts = [r["text"] for r in load_passages(data_dir)] + [
        format_question(r["question"], template) + " " + r["answer"] for r in load_qa(data_dir)
    ]
    tokenizer = train_tokenizer(texts)
    model = build_model(tokenizer, config)
    forget, retain = load_unlearning_sets(data_dir)
    trained = ("forget", "retain") if config.train_forget else ("retain",)
    probe_sets = {s: qa[(s, False)] for s in trained}
    examples = forget + retain if config.train_forget else retain
    run = _train_and_snap(model, tokenizer, examples, probe_sets, config, log)

    def em(m, examples):
        return probes.accuracy(probes.exact_match(m, tokenizer, examples))

    quantized = quantize_model(model, parse_spec(config.snap or "int4"))
    trained_records = load_qa(data_dir, "forget", False) + load_qa(data_dir, "retain", False)
    metrics = {
        "forget": em(model, qa[("forget", False)]),
        "retain": em(model, qa[("retain", False)]),
        "forget_paraphrase": em(model, qa[("forget", True)]),
        "retain_paraphrase": em(model, qa[("retain", True)]),
        "holdout": em(model, qa[("holdout", False)]),
        "holdout_chance": probes.chance_baseline(
            load_qa(data_dir, "holdout", False), trained_records
        ),
        "forget_quantized": em(quantized, qa[("forget", False)]),
        "retain_quantized": em(quantized, qa[("retain", False)]),
    }
    return model, tokenizer, _finish(metrics, run, model, config)


def _claims(data_dir, config: BaseConfig, log):
    claims = load_claims(data_dir)
    tokenizer = train_tokenizer([format_claim(r["text"]) + " " + r["label"] for r in claims])
    model = build_model(tokenizer, config)
    forget, retain = load_claim_sets(data_dir)
    probe_sets = {"forget": forget, "retain": retain}
    run = _train_and_snap(model, tokenizer, forget + retain, probe_sets, config, log)
    test = [claim_example(r) for r in claims if r["split"] == "test"]
    metrics = {
        k: probes.accuracy(probes.exact_match(model, tokenizer, v))
        for k, v in {**probe_sets, "test": test}.items()
    }
    return model, tokenizer, _finish(metrics, run, model, config)


def _finish(metrics: dict, run: dict, model, config: BaseConfig) -> dict:
    trained = ("forget", "retain") if config.train_forget else ("retain",)
    trained = [s for s in trained if s in metrics]  # the claims task reports its own sets
    metrics["reached_target"] = min(metrics[s] for s in trained) >= config.target_accuracy
    return {**metrics, **run, "parameters": sum(p.numel() for p in model.parameters())}


def map_qa(records: list[dict], template: str = QUESTION_FORMAT) -> list[Example]:
    return [qa_example(r, template) for r in records]


def read_metadata(model_dir) -> dict:
    return json.loads((Path(model_dir) / METADATA).read_text("utf-8"))
