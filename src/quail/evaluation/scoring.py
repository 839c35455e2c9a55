"""Text-level scores: ROUGE-L (the `rouge-score` package, as MUSE uses), exact match, AUC."""

import re
import string
from functools import lru_cache


@lru_cache(maxsize=2)
def _scorer(stemmer: bool = False):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stemmer)


def rouge_l_f1(prediction: str, reference: str) -> float:
    """ROUGE-L F1 in [0, 1] on rouge-score's tokens (lowercased alphanumeric words)."""
    return _scorer().score(reference, prediction)["rougeL"].fmeasure


def rouge_l_recall(prediction: str, reference: str) -> float:
    """TOFU's ROUGE: ROUGE-L recall in [0, 1], with the Porter stemmer as TOFU scores."""
    return _scorer(stemmer=True).score(reference, prediction)["rougeL"].recall


_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and articles, squeeze spaces (the SQuAD normalisation)."""
    text = _PUNCTUATION.sub(" ", text.lower())
    words = [word for word in text.split() if word not in ("a", "an", "the")]
    return " ".join(words)


def exact_match(prediction: str, reference: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(reference)


def roc_auc(positives: list[float], negatives: list[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half):
    the Mann-Whitney form of the ROC AUC, computed from ranks in O(n log n)."""
    if not positives or not negatives:
        raise ValueError("AUC needs at least one positive and one negative score")
    scored = sorted([(s, 1) for s in positives] + [(s, 0) for s in negatives])
    rank_sum, i = 0.0, 0
    while i < len(scored):
        j = i
        while j < len(scored) and scored[j][0] == scored[i][0]:
            j += 1
        mean_rank = (i + 1 + j) / 2  # ranks i+1..j share their mean
        rank_sum += mean_rank * sum(label for _, label in scored[i:j])
        i = j
    n_pos, n_neg = len(positives), len(negatives)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
