"""TOFU's own metrics (Maini et al., 2024), on a folder imported with `quail data import --format
tofu`: truth ratio, answer probability, ROUGE-L recall, model utility and forget quality.

Computed as TOFU's code and open-unlearning compute them, which the published numbers come from:
a probability is length-normalised, P(a|q)^(1/|a|) = exp(mean token log-prob of a), and the
perturbed answers are averaged in log space (their geometric mean; the paper writes the
arithmetic mean). Per question, truth ratio R = P(perturbed)^(1/len) / P(paraphrased)^(1/len).

Names (SET: forget, retain, real_authors, world_facts; the table is in docs/DATA.md):
`tofu_prob_SET` (on real authors and world facts divided by the sum over the answer and its
perturbed ones, as TOFU does), `tofu_rouge_SET` (ROUGE-L recall of the greedy answer),
`tofu_truth_ratio_SET` (forget: mean min(R, 1/R); the others: mean max(0, 1 − R)),
`tofu_model_utility` (the harmonic mean of those three over retain, real authors and world
facts) and `tofu_forget_quality` (the KS test's p-value between the forget set's R of this model
and of a reference model trained on the retain set only).
"""

import math
from dataclasses import dataclass
from pathlib import Path

from quail.data.jsonl import read_jsonl
from quail.data.load import load_qa, qa_example
from quail.errors import QuailError
from quail.evaluation.lm import greedy_continuations, token_logprobs
from quail.evaluation.metrics import first_line
from quail.evaluation.scoring import rouge_l_recall

UTILITY_SETS = ("retain", "real_authors", "world_facts")
UTILITY_FILE = "tofu_utility.jsonl"  # real authors and world facts, never trained on
ANSWER_TOKENS = 64  # TOFU generates up to 200 tokens; its answers are a sentence or two
NO_REFERENCE = (
    "tofu_forget_quality not reported: it compares with a model trained on the retain set only; "
    "pass --tofu-reference MODEL (a study: tofu_reference: MODEL)"
)


@dataclass(frozen=True)
class TofuProbe:
    prompt: str
    answer: str  # scored by probability and ROUGE
    correct: str  # the truth ratio's true answer: TOFU's paraphrased answer (or the answer)
    perturbed: tuple[str, ...]


def load_tofu(data_dir) -> dict[str, list[TofuProbe]]:
    """{forget, retain, real_authors, world_facts: probes} of the records holding TOFU's
    perturbed answers; {} for a folder that has none (not a TOFU import)."""
    from quail.data.load import question_format

    data_dir = Path(data_dir)
    template = question_format(data_dir)
    records = {
        split: [r for r in load_qa(data_dir, split, paraphrase=False) if "perturbed_answer" in r]
        for split in ("forget", "retain")
    }
    if (data_dir / UTILITY_FILE).is_file():
        for record in read_jsonl(data_dir / UTILITY_FILE):
            records.setdefault(record["set"], []).append(record)
    sets = {name: [_probe(r, template) for r in rows] for name, rows in records.items() if rows}
    return sets if "forget" in sets else {}


def _probe(record: dict, template: str) -> TofuProbe:
    prompt = qa_example(record, template).prompt
    correct = record.get("paraphrased_answer", record["answer"])
    return TofuProbe(prompt, record["answer"], correct, tuple(record["perturbed_answer"]))


def answer_logprobs(model, tokenizer, pairs: list[tuple[str, str]]) -> list[float]:
    """Mean log-probability of each answer's tokens after its prompt (" " + answer, as quail
    asks questions): log P(a|q)^(1/|a|)."""
    texts = [f"{prompt} {answer}" for prompt, answer in pairs]
    lengths = [
        len(tokenizer(text)["input_ids"]) - len(tokenizer(prompt)["input_ids"])
        for text, (prompt, _) in zip(texts, pairs, strict=True)
    ]
    logprobs = token_logprobs(model, tokenizer, texts)
    return [row[-max(1, n) :].mean().item() for row, n in zip(logprobs, lengths, strict=True)]


def _scored(model, tokenizer, probes: list[TofuProbe]) -> list[tuple[float, float, list[float]]]:
    """Per probe: log-prob of the answer, of the correct answer, of each perturbed answer."""
    pairs = []
    for p in probes:
        pairs += [(p.prompt, p.answer), (p.prompt, p.correct)]
        pairs += [(p.prompt, a) for a in p.perturbed]
    values = iter(answer_logprobs(model, tokenizer, pairs))
    return [(next(values), next(values), [next(values) for _ in p.perturbed]) for p in probes]


def truth_ratios(model, tokenizer, probes: list[TofuProbe]) -> list[float]:
    """R per probe: the perturbed answers' (geometric) mean normalised probability over the
    correct answer's."""
    return [_ratio(correct, wrong) for _, correct, wrong in _scored(model, tokenizer, probes)]


def _ratio(correct: float, wrong: list[float]) -> float:
    """R from log-probabilities; inf where it overflows (a model sure of a wrong answer)."""
    gap = sum(wrong) / len(wrong) - correct
    return math.inf if gap > 700 else math.exp(gap)


def tofu_scores(model, tokenizer, sets: dict[str, list[TofuProbe]], reference=None) -> dict:
    """Every TOFU metric the sets allow; `reference` is the reference model's forget-set truth
    ratios (`reference_ratios`), without which forget quality is left out."""
    scores, utility = {}, []
    for name, probes in sets.items():
        scored = _scored(model, tokenizer, probes)
        ratios = [_ratio(c, w) for _, c, w in scored]
        if name in ("real_authors", "world_facts"):  # among the answer and its perturbed ones
            probs = [math.exp(a - _logsumexp([a, *w])) for a, _, w in scored]
        else:
            probs = [math.exp(a) for a, _, _ in scored]
        prompts = [p.prompt for p in probes]
        answers = greedy_continuations(
            model, tokenizer, prompts, ANSWER_TOKENS, first_line_only=True
        )
        pairs = zip(answers, probes, strict=True)
        recalls = [rouge_l_recall(first_line(g), p.answer) for g, p in pairs]
        if name == "forget":
            truth = [min(r, 1 / r) if r else 0.0 for r in ratios]
            if reference is not None:
                scores["tofu_forget_quality"] = ks_pvalue(ratios, reference)
        else:
            truth = [max(0.0, 1 - r) for r in ratios]
        values = [sum(v) / len(v) for v in (probs, recalls, truth)]
        for metric, value in zip(("prob", "rouge", "truth_ratio"), values, strict=True):
            scores[f"tofu_{metric}_{name}"] = value
        if name in UTILITY_SETS:
            utility += values
    if utility:
        scores["tofu_model_utility"] = harmonic_mean(utility)
    return scores


def reference_ratios(model_dir, sets: dict[str, list[TofuProbe]]) -> list[float]:
    """The forget-set truth ratios of the reference (retain) model, at full precision."""
    from quail.models import check_finite, load_model, load_tokenizer

    if not sets:
        raise QuailError(
            "--tofu-reference needs TOFU's perturbed answers: import the data with "
            "quail data import --format tofu from a copy holding forgetXX_perturbed.json"
        )
    model = load_model(model_dir, dtype="float32")
    check_finite(model, f"model {model_dir}")
    return truth_ratios(model.eval(), load_tokenizer(model_dir), sets["forget"])


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def harmonic_mean(values: list[float]) -> float:
    """0 when any value is 0, as scipy.stats.hmean (TOFU's) gives."""
    if any(v <= 0 for v in values):
        return 0.0
    return len(values) / sum(1 / v for v in values)


def ks_pvalue(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of the two-sample Kolmogorov-Smirnov test, exact (what
    scipy.stats.ks_2samp gives TOFU's sample sizes): the share of the C(m+n, m) equally likely
    orderings of the two samples whose statistic is at least the observed one, counted as
    lattice paths in integers, so no rounding enters."""
    m, n = len(a), len(b)
    if not m or not n:
        raise ValueError("the KS test needs two non-empty samples")
    merged = sorted([(x, 0) for x in a] + [(x, 1) for x in b])
    i = j = observed = 0  # observed: m·n times the largest gap between the two CDFs
    for k, (value, side) in enumerate(merged):
        i, j = i + (side == 0), j + (side == 1)
        if k + 1 == len(merged) or merged[k + 1][0] != value:  # ties move together
            observed = max(observed, abs(i * n - j * m))
    inside = [1] + [0] * n  # paths to (i, j) that stay below the observed gap
    for i in range(m + 1):
        for j in range(n + 1):
            if abs(i * n - j * m) >= observed:
                inside[j] = 0
            elif i or j:
                inside[j] = (inside[j] if i else 0) + (inside[j - 1] if j else 0)
    total = math.comb(m + n, m)
    return (total - inside[n]) / total  # in integers first: a tiny p-value keeps its digits
