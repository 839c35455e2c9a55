"""Every metric of a model, at full precision and under each quantization spec.

Metric names (all higher = the model knows/does more), as in results.json:

| name | what |
|---|---|
| `knowmem_forget` | ROUGE-L F1 × 100 of greedy answers to forget QA probes (trained wording) |
| `em_forget` | exact-match accuracy on the same probes |
| `knowmem_forget_para`, `em_forget_para` | the same on held-out paraphrased questions |
| `knowmem_retain`, `em_retain` | the same on retain probes (utility) |
| `em_holdout` | exact match on never-trained entities: the chance level |
| `verbmem_forget` | ROUGE-L F1 × 100 of greedy continuations of forget passages |
| `verbmem_holdout` | the same on holdout passages: the level `verbmem_forget` reads against |
| `mia_auc` | Min-K% (k = 40%) AUC separating forget passages from holdout passages |
| `ppl_retain` | perplexity on retain passages (lower is better) |
| `ppl_general` | perplexity on held-out general text, never trained on (lower is better) |
| `acc_claims_forget`, `acc_claims_retain`, `acc_claims_test` | claims task accuracy |
| `tofu_*` | TOFU's own metrics, on a folder holding its perturbed answers (quail.evaluation.tofu) |

`quail.evaluation.evaluate` adds, under every spec but fp, `kld_*`, `top1_*` and `ppl_ratio_*`:
fidelity to the same model at fp (quail.evaluation.fidelity).
"""

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from quail.data import (
    Example,
    load_claims,
    load_heldout_general,
    load_passages,
    load_qa,
    qa_example,
)
from quail.data.load import claim_example, question_format
from quail.evaluation import metrics
from quail.evaluation.tofu import TofuProbe, load_tofu, tofu_scores

FORGET_METRICS = ("knowmem_forget", "em_forget", "verbmem_forget")


@dataclass
class EvalData:
    """The probes one evaluation runs; lists left empty are skipped."""

    qa: dict[str, list[Example]] = field(default_factory=dict)  # forget, retain, ...
    # forget, retain, holdout, heldout_general
    passages: dict[str, list[str]] = field(default_factory=dict)
    claims: dict[str, list[Example]] = field(default_factory=dict)  # forget, retain, test
    tofu: dict[str, list[TofuProbe]] = field(default_factory=dict)  # forget, retain, ...
    tofu_reference: list[float] | None = None  # the retain model's forget-set truth ratios


def seeded_sample(items: list, limit: int | None, seed: int) -> list:
    """At most `limit` of `items`, the same ones for the same seed (a study's probe draw)."""
    if limit is None or len(items) <= limit:
        return items
    return random.Random(seed).sample(items, limit)


def load_eval_data(data_dir, task: str = "knowledge", limit: int | None = None, seed: int = 0):
    """Probes from a data folder; `limit` caps each list (a seeded sample) to bound run time."""
    if task == "claims":
        claims = {
            s: [claim_example(r) for r in load_claims(data_dir, s)]
            for s in ("forget", "retain", "test")
        }
        return EvalData(claims={k: seeded_sample(v, limit, seed) for k, v in claims.items()})
    qa = {
        "forget": load_qa(data_dir, "forget", paraphrase=False),
        "forget_para": load_qa(data_dir, "forget", paraphrase=True),
        "retain": load_qa(data_dir, "retain", paraphrase=False),
        "holdout": load_qa(data_dir, "holdout", paraphrase=False),
    }
    passages = {
        s: [r["text"] for r in load_passages(data_dir, s)] for s in ("forget", "retain", "holdout")
    }
    passages["heldout_general"] = load_heldout_general(data_dir)
    template = question_format(data_dir)
    return EvalData(
        qa={
            k: [qa_example(r, template) for r in seeded_sample(v, limit, seed)]
            for k, v in qa.items()
        },
        passages={k: seeded_sample(v, limit, seed) for k, v in passages.items()},
        tofu={k: seeded_sample(v, limit, seed) for k, v in load_tofu(data_dir).items()},
    )


def load_file_eval_data(
    forget, retain=None, tokenizer=None, limit: int | None = None, seed: int = 0, prompts=None
) -> EvalData:
    """Probes from the user's forget and retain files (quail.data.files), asked as `prompts`
    asks: their probes answer KnowMem, their passages VerbMem (forget) and perplexity (retain)."""
    from quail.data.files import load_set

    qa, passages = {}, {}
    for name, path in (("forget", forget), ("retain", retain)):
        if path is not None:
            probes, texts = load_set(path, tokenizer, prompts)
            qa[name], passages[name] = (
                seeded_sample(probes, limit, seed),
                seeded_sample(texts, limit, seed),
            )
    return EvalData(qa=qa, passages=passages)


def load_claim_file_eval_data(
    forget, retain, test=None, limit: int | None = None, seed: int = 0
) -> EvalData:
    """Claims accuracy probes from the user's text,label files (quail.data.classification)."""
    from quail.data.classification import load_claim_file_sets

    sets = load_claim_file_sets(forget, retain, test)
    return EvalData(claims={k: seeded_sample(v, limit, seed) for k, v in sets.items() if v})


def calibration_texts(data: EvalData) -> list[str]:
    """Text for calibrated quantizers (GPTQ, AWQ): the forget and retain passages, else the
    forget and retain probes written out (prompt + answer). Empty when the data has neither,
    and the quantizer falls back to quail's generic text."""
    texts = [*data.passages.get("forget", []), *data.passages.get("retain", [])]
    if texts:
        return texts
    probes = data.qa or data.claims
    return [e.prompt + e.target for s in ("forget", "retain") for e in probes.get(s, [])]


def metric_calls(model, tokenizer, data: EvalData) -> dict[str, Callable[[], dict[str, float]]]:
    """The groups of metrics the data allows, in order, each a call returning its scores: what
    `evaluate_model` runs (and `benchmarks/eval_cost.py` times one by one)."""
    passages = data.passages
    calls = {}
    if any(data.qa.values()):
        calls["knowledge"] = lambda: _qa_scores(metrics.knowledge_sets(model, tokenizer, data.qa))
    if passages.get("forget"):
        calls["verbmem"] = lambda: {
            f"verbmem_{split}": metrics.verbatim(model, tokenizer, passages[split])["rouge_l"]
            for split in ("forget", "holdout")
            if passages.get(split)
        }
        if passages.get("holdout"):
            calls["mia"] = lambda: {
                "mia_auc": metrics.membership_auc(
                    model, tokenizer, passages["forget"], passages["holdout"]
                )
            }
    if passages.get("retain"):
        calls["ppl"] = lambda: {
            "ppl_retain": metrics.perplexity(model, tokenizer, passages["retain"])
        }
    if passages.get("heldout_general"):
        calls["ppl_general"] = lambda: {
            "ppl_general": metrics.perplexity(model, tokenizer, passages["heldout_general"])
        }
    if data.tofu:
        calls["tofu"] = lambda: tofu_scores(model, tokenizer, data.tofu, data.tofu_reference)
    if any(data.claims.values()):
        calls["claims"] = lambda: {
            f"acc_claims_{split}": result["exact_match"]
            for split, result in metrics.knowledge_sets(model, tokenizer, data.claims).items()
        }
    return calls


def _qa_scores(results: dict[str, dict]) -> dict:
    """KnowMem (ROUGE-L) and exact match per QA set; holdout has no KnowMem (never trained).
    `probes` keeps each KnowMem's per-probe scores, for intervals over probes and seeds."""
    scores, probes = {}, {}
    for split, result in results.items():
        if split != "holdout":
            scores[f"knowmem_{split}"] = result["rouge_l"]
            probes[f"knowmem_{split}"] = result["scores"]
        scores[f"em_{split}"] = result["exact_match"]
    return scores | {"probes": probes}


def evaluate_model(model, tokenizer, data: EvalData) -> dict:
    """All metrics the data allows, as a flat {name: value} dict (and, under `probes`, the
    per-probe scores of each KnowMem)."""
    model.eval()
    scores = {}
    for call in metric_calls(model, tokenizer, data).values():
        scores.update(call())
    return scores
