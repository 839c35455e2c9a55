"""Measured stopping: forgetting checked, while training, in every format the user will ship.

A check answers the forget and retain probes greedily (the KnowMem scorer: ROUGE-L F1 x 100)
with the model at full precision and quantized under each listed spec. The target holds when,
in every format, the forget score is at most `target` times the original's score in that format
or, given held-out examples of the same task (a classifier's test set), at most the original's
score on those: a classifier that never saw a campaign still labels most of it from what the
others share, and forgetting should reach that level, not overshoot it (docs/UNLEARN.md).
Where the forget set has passages and held-out passages of their kind are given (a
misinformation folder's never-injected posts), it also needs the forget passages hard to tell
from those by Min-K% membership AUC: answers can go while the passages still say the same
(SmolLM2 misinformation: claims 100 -> 19, posts naming the false capital 69 -> 50).

The utility floor has two parts. Retain answers: where, in some format, the retain score falls
below `utility_floor` times the original's, the check is neither kept nor handed over; where it
falls below by more than two standard errors of the per-probe difference (more than the probes'
own spread can explain), the run goes back to the last check that kept the floor and goes on
with half the lr, at most a few times (loop.MAX_BACKTRACKS), then stops there. A dip of a few of
64 probes in a format whose original sits near its floor is not a loss to halve the lr for:
SmolLM2 misinformation in NF4 swings 69.5-75.1 against a floor of 72.5, and four such halvings
stalled a run with a quarter of the claims left; passed over, it took them all out
(lab/RECORD.md, "Retain dips within the probes' spread"). Fluency: where the retain set has
passages, a seeded quarter of them is withheld from training (`withhold`) and watched; a check
where their perplexity, in some format, is above the original's divided by `utility_floor` is
neither kept nor handed over, and the run goes on (answers alone let general text decay unseen;
trained-on passages get easier the whole run, so they cannot show it: SmolLM2 misinformation,
600 steps, theirs 2.22 -> 1.30 while held-out perplexity rose 1.29x; going back at half the lr
where the watch spiked stalled the run: lab/RECORD.md, "Watched passages in the floor").

A run stops at the first kept check where the target holds. A run whose budget ends first
hands over the kept check whose answers' gaps to their aims are smallest, worst first, the
passages' gaps deciding between equals, then the earliest (which moved least): forgetting can
drift back late in a run (SmolLM2 real knowledge: 52 at step 100, 68 at 300).
"""

import statistics
from dataclasses import dataclass, field

import torch
from torch import nn

from quail.data.examples import Example
from quail.evaluation.metrics import knowledge_sets, membership_auc, perplexity
from quail.evaluation.suite import seeded_sample
from quail.quant import parse_spec, quantize_model

MAX_FORGET_PROBES = 128
MAX_RETAIN_PROBES = 64
WATCH_ONE_IN = 4  # of the retain passages, this share is watched, not trained on
ALIKE_WITHIN = 2  # standard errors within which a score is read as its aim's (AUC, floor)


def withhold(retain: list[Example] | None, seed: int) -> tuple[list[Example], list[str]]:
    """(the retain examples to train on, the passages the floor watches): a seeded one in
    `WATCH_ONE_IN` of the retain passages, at most MAX_RETAIN_PROBES, leaves training. With
    fewer passages than `WATCH_ONE_IN` none is withheld and none watched."""
    passages = [e for e in retain or [] if not e.prompted]
    count = min(len(passages) // WATCH_ONE_IN, MAX_RETAIN_PROBES)
    watched = seeded_sample(passages, count, seed)
    ids = {id(e) for e in watched}
    return [e for e in retain or [] if id(e) not in ids], [e.target for e in watched]


def probes(examples: list[Example], limit: int, seed: int) -> list[Example]:
    """The question/answer examples (those with a prompt) where there are any; otherwise each
    passage split into a first half to continue and the rest to match, as VerbMem does. A
    seeded sample of at most `limit`."""
    chosen = [e for e in examples if e.prompted]
    for e in [] if chosen else examples:
        words = e.target.split()
        if len(words) >= 4:
            half = len(words) // 2
            chosen.append(Example(" ".join(words[:half]), " " + " ".join(words[half:])))
    return seeded_sample(chosen, limit, seed)


@dataclass
class Outcome:
    """Why a measured run stopped, and what every check saw."""

    reason: str = "budget"  # target, utility floor, budget
    step: int | None = None  # the step whose weights were kept (None: the last)
    backtracks: int = 0  # times the floor broke and the run went back (half the lr or moves)
    passed_over: int = 0  # checks neither kept nor handed over: retain or fluency under the floor
    original: dict = field(default_factory=dict)  # format -> {"forget": x, "retain": y}
    checks: list[dict] = field(default_factory=list)  # {"step": n, "scores": {...}}

    def statement(self, target: float, floor: float) -> str:
        aim = f"forget <= {target:g} x the original's"
        if any("holdout" in s for s in self.original.values()):
            aim = "forget <= the original's score on held-out examples"
        if any("passages_auc" in s for s in self.original.values()):
            aim += ", its passages told from held-out ones by Min-K% AUC near 0.5"
        kept = [c for c in self.checks if c["step"] == self.step] or self.checks[-1:]
        last = kept[-1]["scores"] if kept else {}  # what the returned weights scored
        parts = ", ".join(
            f"{name} forget {s['forget']:.1f}/{self.original[name]['forget']:.1f} "
            + (
                f"(held-out {h:.1f}) "
                if (h := self.original[name].get("holdout")) is not None
                else ""
            )
            + f"retain {s['retain']:.1f}/{self.original[name]['retain']:.1f}"
            + (
                f" perplexity {s['retain_ppl']:.3g}/{self.original[name]['retain_ppl']:.3g}"
                if "retain_ppl" in s
                else ""
            )
            + (
                f" passages AUC {s['passages_auc']:.2f}/{self.original[name]['passages_auc']:.2f}"
                if "passages_auc" in s
                else ""
            )
            for name, s in last.items()
        )
        watched = ""
        if any("retain_ppl" in s for s in self.original.values()):
            watched = f", watched passages' perplexity at most 1/{floor:g} x"
        why = {
            "target": f"the target ({aim}) holds in every format",
            "utility floor": f"retain fell below {floor:g} x the original's by more than its "
            f"probes' spread; kept step {self.step}",
            "budget": "the step budget ran out before the target held in every format; "
            f"kept step {self.step}, the check that came closest of those above the floor "
            f"(retain at least {floor:g} x the original's{watched})",
        }[self.reason]
        if self.backtracks:
            why += f", after going back to the last check above the floor {self.backtracks} times"
        if self.passed_over:
            why += (
                f"; {self.passed_over} of {len(self.checks) - 1} checks passed over, their "
                "retain answers or watched passages' perplexity past the floor"
            )
        return f"stopped: {why} ({parts})"


class ForgetTarget:
    """Checks a model against the original's scores in each format."""

    def __init__(
        self, tokenizer, forget, retain, formats, target, floor, seed=0, holdout=None, watched=()
    ):
        self.tokenizer = tokenizer
        self.formats = ["fp"] + [f for f in formats if not parse_spec(f).is_fp]
        self.target, self.floor = target, floor
        self.sets = {
            "forget": probes(forget, MAX_FORGET_PROBES, seed),
            "retain": probes(retain or [], MAX_RETAIN_PROBES, seed),
        }
        answered = [e for e in holdout or [] if e.prompted]
        if answered:  # scored once, on the original: the level forgetting should reach
            self.sets["holdout"] = probes(answered, MAX_FORGET_PROBES, seed)
        self.passages = list(watched)  # whose perplexity the floor watches (`withhold`)
        # forget passages against held-out ones of their kind, where both exist: the answers
        # can go while the passages still say it (lab/RECORD.md, "The passages keep what the
        # answers lost")
        members, unseen = _passages(forget), _passages(holdout)
        self.members, self.unseen = [], []
        if members and unseen:
            self.members = seeded_sample(members, MAX_FORGET_PROBES, seed)
            self.unseen = seeded_sample(unseen, MAX_FORGET_PROBES, seed)

    def measure(self, model: nn.Module, original: bool = False) -> dict[str, dict[str, float]]:
        """{format: {set: score}}; the held-out set only for the original (`original=True`)."""
        sets = {k: v for k, v in self.sets.items() if original or k != "holdout"}
        training = model.training
        model.eval()
        scores, answered = {}, []  # (model, its scores) of each distinct model answered
        for name in self.formats:
            spec = parse_spec(name)
            quantized = model if spec.is_fp else quantize_model(model, spec).eval()
            same = next((s for m, s in answered if _same_weights(m, quantized)), None)
            if same is None:  # a model already on this grid (quail's) is not re-asked
                result = knowledge_sets(quantized, self.tokenizer, sets)
                same = {k: result[k]["rouge_l"] if k in result else 0.0 for k in sets}
                if "retain" in result:  # per probe: the floor allows for their spread
                    same["retain_probes"] = result["retain"]["scores"]
                if self.passages:
                    same["retain_ppl"] = perplexity(quantized, self.tokenizer, self.passages)
                if self.members:
                    same["passages_auc"] = membership_auc(
                        quantized, self.tokenizer, self.members, self.unseen
                    )
                answered.append((quantized, same))
            scores[name] = same
        model.train(training)
        return scores

    def holds(self, scores: dict, original: dict) -> bool:
        return max(self.shortfall(scores, original)) <= 0

    def aim(self, original: dict) -> float:
        """The forget score to reach in one format, from the original's scores there."""
        return original.get("holdout", self.target * original["forget"])

    def passages_aim(self, original: dict) -> float:
        """The Min-K% AUC of forget against held-out passages to reach: `target` of the way
        from the original's to 0.5, or within two standard errors of 0.5 (where the two are
        indistinguishable) if that is higher."""
        n, m = len(self.members), len(self.unseen)
        noise = ALIKE_WITHIN * ((n + m + 1) / (12 * n * m)) ** 0.5  # the AUC's spread if alike
        return 0.5 + max(self.target * (original["passages_auc"] - 0.5), noise)

    def shortfall(self, scores: dict, original: dict) -> tuple[float, ...]:
        """How far each format is above each of its aims, in points: the answers' gaps
        (KnowMem) worst first, then the passages' (AUC x 100) worst first. One check came closer
        than another if its answers' worst gap is smaller or, where those are equal (16 probes
        move in steps of 6.25), their next worst, and so on; the passages decide between checks
        whose answers are level. The answers come first because they are what a user asks the
        shipped model (SmolLM2 misinformation: a check with no claims left was passed over for
        one with 6.2 whose posts read a little more unseen, lab/RECORD.md, "The answers before
        the passages")."""
        answers = [scores[f]["forget"] - self.aim(original[f]) for f in self.formats]
        passages = [
            100 * (scores[f]["passages_auc"] - self.passages_aim(original[f]))
            for f in self.formats
            if self.members
        ]
        return tuple(sorted(answers, reverse=True)) + tuple(sorted(passages, reverse=True))

    def retain_short(self, scores: dict, original: dict) -> bool:
        """Retain answers below the floor in some format: the check is not kept (loop.py)."""
        return any(self._retain_margin(scores[f], original[f]) < 0 for f in self.formats)

    def retain_lost(self, scores: dict, original: dict) -> bool:
        """Retain answers below the floor in some format by more than two standard errors of
        the per-probe difference: the run goes back (loop.py)."""
        return any(
            self._retain_margin(scores[f], original[f], ALIKE_WITHIN) < 0 for f in self.formats
        )

    def _retain_margin(self, check: dict, original: dict, spread: float = 0.0) -> float:
        """How far the retain score is above the floor, plus `spread` standard errors of the
        same probes' differences (check's score - floor x original's, probe by probe)."""
        # an original saved before per-probe scores were kept has none: the plain floor
        pairs = zip(check.get("retain_probes", []), original.get("retain_probes", []), strict=False)
        diffs = [c - self.floor * o for c, o in pairs]
        error = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else 0.0
        return check["retain"] - self.floor * original["retain"] + spread * error

    def fluency_lost(self, scores: dict, original: dict) -> bool:
        """The watched passages' perplexity above the original's / floor in some format: the
        check is not kept, and the run goes on (loop.py)."""
        return any(
            scores[f].get("retain_ppl", 0.0) * self.floor > original[f].get("retain_ppl", 0.0)
            for f in self.formats
        )


def _passages(examples: list[Example] | None) -> list[str]:
    """The texts of the examples without a prompt."""
    return [e.target for e in examples or [] if not e.prompted]


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    return a is b or all(
        torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True)
    )
