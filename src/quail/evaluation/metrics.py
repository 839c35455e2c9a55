"""The metrics of the study, each a function of (model, tokenizer, data) returning numbers.

Knowledge (MUSE KnowMem): greedy answers to QA probes, ROUGE-L F1 × 100 and exact match.
Verbatim memorisation (MUSE VerbMem): greedy continuation of passage prefixes, ROUGE-L F1 × 100.
Privacy leak: Min-K% probability membership scores and the AUC of members vs non-members.
Utility: perplexity on held-out text.
"""

import math

import torch

from quail.data.examples import Example
from quail.evaluation.lm import greedy_continuations, token_logprobs
from quail.evaluation.scoring import exact_match, roc_auc, rouge_l_f1


def first_line(text: str) -> str:
    """An answer ends at the first newline: what follows is the model starting a new turn."""
    return text.strip().split("\n", 1)[0].strip()


def knowledge(model, tokenizer, probes: list[Example], max_new_tokens: int = 16) -> dict:
    return knowledge_sets(model, tokenizer, {"probes": probes}, max_new_tokens)["probes"]


def knowledge_sets(
    model, tokenizer, sets: dict[str, list[Example]], max_new_tokens: int = 16
) -> dict[str, dict]:
    """`knowledge` of each non-empty set (empty ones are left out), all answered in one batched
    pass: the sets of a data folder share its question template, so they share its prefix
    cache and every decoding step (half the time of one pass per set on CPU, the same answers).
    """
    sets = {name: probes for name, probes in sets.items() if probes}
    prompts = [p.prompt for probes in sets.values() for p in probes]
    answers = greedy_continuations(
        model, tokenizer, prompts, max_new_tokens, batch_size=64, first_line_only=True
    )
    answers = (first_line(a) for a in answers)
    results = {}
    for name, probes in sets.items():
        pairs = [(next(answers), p.target.strip()) for p in probes]
        scores = [100 * rouge_l_f1(a, r) for a, r in pairs]
        results[name] = {
            "rouge_l": sum(scores) / len(scores),
            "exact_match": sum(exact_match(a, r) for a, r in pairs) / len(pairs),
            "n": len(pairs),
            "scores": scores,  # per probe, in the set's order: intervals resample them
        }
    return results


def verbatim(model, tokenizer, passages: list[str], prefix_tokens: int = 32) -> dict:
    """Prompt with the first `prefix_tokens` tokens (at most half the passage) and score the
    greedy continuation against the true one, generated to the true one's length."""
    prefixes, truths, lengths = [], [], []
    for text in passages:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        cut = max(1, min(prefix_tokens, len(ids) // 2))
        prefixes.append(tokenizer.decode(ids[:cut]))
        truths.append(tokenizer.decode(ids[cut:]))
        lengths.append(max(1, len(ids) - cut))
    continuations = greedy_continuations(model, tokenizer, prefixes, lengths)
    scores = [rouge_l_f1(c, t) for c, t in zip(continuations, truths, strict=True)]
    return {"rouge_l": 100 * sum(scores) / len(scores), "n": len(scores)}


def min_k_scores(model, tokenizer, texts: list[str], k: float = 0.4) -> list[float]:
    """Min-K% Prob (Shi et al., 2024): the mean log-probability of the k% least likely tokens;
    members of the training set score higher."""
    scores = []
    for logprobs in token_logprobs(model, tokenizer, texts):
        count = max(1, math.ceil(k * logprobs.numel()))
        scores.append(torch.topk(logprobs, count, largest=False).values.mean().item())
    return scores


def membership_auc(model, tokenizer, members: list[str], nonmembers: list[str], k=0.4) -> float:
    """AUC of Min-K% scores separating forget texts (trained on) from holdout (never seen)."""
    return roc_auc(
        min_k_scores(model, tokenizer, members, k), min_k_scores(model, tokenizer, nonmembers, k)
    )


def privleak(auc: float, auc_retrain: float) -> float:
    """MUSE's PrivLeak: the AUC gap to a model retrained without the forget set, in percent."""
    return (auc - auc_retrain) / auc_retrain * 100


def perplexity(model, tokenizer, texts: list[str]) -> float:
    logprobs = torch.cat(token_logprobs(model, tokenizer, texts))
    return torch.exp(-logprobs.double().mean()).item()  # inf, not an OverflowError, when broken
