"""Exact match by teacher forcing: one forward pass instead of a decoding loop.

Greedy decoding reproduces the target followed by EOS exactly when, at every target position,
the argmax of the previous position's logits is the target token; checking that in one batched
forward pass gives the same answer as `generate` at a fraction of the cost.
"""

from collections import Counter
from dataclasses import replace

import torch

from quail.data.batches import IGNORE, chunks, collate, encode
from quail.data.examples import Example


@torch.no_grad()
def exact_match(model, tokenizer, examples: list[Example], batch_size: int = 64) -> list[bool]:
    """For each example, whether greedy decoding from the prompt yields the target then EOS."""
    model.eval()
    out = []
    encoded = encode(with_eos(examples, tokenizer), tokenizer, 10**6, "probe")  # whole
    for index in chunks(len(encoded), batch_size):
        batch = collate(encoded, index, tokenizer.pad_token_id)
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        predicted = logits[:, :-1].argmax(-1)
        labels = batch.labels[:, 1:]
        scored = labels != IGNORE
        out.extend(((predicted == labels) | ~scored).all(dim=1).tolist())
    return out


def with_eos(examples: list[Example], tokenizer) -> list[Example]:
    """Each target followed by EOS: trained on, it teaches the model to stop (the built-in
    word-level tokenizer keeps the two apart), and exact_match checks that it does."""
    return [replace(e, target=e.target + tokenizer.eos_token) for e in examples]


def accuracy(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else float("nan")


def chance_baseline(qa_records: list[dict], trained_records: list[dict]) -> float:
    """Expected accuracy of guessing each answer from the trained answers to the same attribute:
    the chance level that a model which never saw the entity should not beat."""
    by_attr: dict[str, Counter] = {}
    for r in trained_records:
        by_attr.setdefault(r["attribute"], Counter())[r["answer"]] += 1
    odds = []
    for r in qa_records:
        counts = by_attr.get(r["attribute"], Counter())
        odds.append(counts[r["answer"]] / max(1, sum(counts.values())))
    return sum(odds) / len(odds) if odds else float("nan")
