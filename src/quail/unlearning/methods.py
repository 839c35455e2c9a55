"""Methods: named combinations of losses, in one registry.

A method is a function from a `Step` (lazy access to the current model's outputs and the frozen
original's) to named, already weighted loss terms, which the loop sums. Adding a method is one
function and one line in METHODS; SURE, STE, the update rule and measured stopping are fields of
its entry, because they change how the loop updates, runs or stops the model, not the loss.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import torch

from quail.unlearning import losses


class Step:
    """What a method may look at for one micro-batch; each part is computed on first use."""

    def __init__(self, config, forget_batch, retain_batch, run, run_quant, reference):
        self.config = config
        self.forget_batch, self.retain_batch = forget_batch, retain_batch
        self._run, self._run_quant, self._reference = run, run_quant, reference

    @cached_property
    def forget(self):
        return self._run(self.forget_batch)

    @cached_property
    def forget_quant(self):
        """The forget batch through the fake-quantized model, straight-through gradients."""
        return self._run_quant(self.forget_batch)

    @cached_property
    def retain(self):
        return self._run(self.retain_batch)

    @cached_property
    def forget_ref(self) -> dict:
        return self._reference("forget", self.forget_batch)

    @cached_property
    def retain_ref(self) -> dict:
        return self._reference("retain", self.retain_batch)


def ga(s: Step) -> dict[str, torch.Tensor]:
    return {"forget": losses.ga_loss(s.forget.logits, s.forget.targets)}


def npo(s: Step) -> dict[str, torch.Tensor]:
    out = s.forget
    seq = losses.sequence_logprob(out.logits, out.targets, out.seq, out.n_seq)
    ref = torch.zeros_like(seq).index_add(0, out.seq, s.forget_ref["token_logprob"])
    return {"forget": losses.npo_loss(seq, ref, s.config.beta)}


def gdr(s: Step) -> dict[str, torch.Tensor]:
    return {"retain": s.config.alpha * losses.nll(s.retain.logits, s.retain.targets)}


def klr(s: Step) -> dict[str, torch.Tensor]:
    ref = s.retain_ref
    if "logprobs" in ref:
        kl = losses.kl_full(ref["logprobs"], s.retain.logits)
    else:
        kl = losses.kl_topk(ref["topk_values"], ref["topk_index"], s.retain.logits)
    return {"retain": s.config.alpha * kl}


def hinge(s: Step) -> dict[str, torch.Tensor]:
    """relu(m − d) on forget target tokens, d = how far the fake-quantized model's log-probability
    of the answer token fell below the quantized original's (docs/METHODS.md, "QUAIL hinge")."""
    out = s.forget_quant
    drop = s.forget_ref["target_logprob"] - losses.target_logprob(out.logits, out.targets)
    return {"hinge": s.config.gamma * losses.hinge_loss(drop, s.config.margin)}


ODDS_MARGIN = 1.0  # quail pushes each forget answer token to p <= σ(−1) = 0.27, no further


def answer_odds(s: Step) -> dict[str, torch.Tensor]:
    """The odds hinge on the answer tokens of the forget examples that have a prompt (not on
    passages: their every token would be pushed), on the weights being trained; through the
    fake-quantized ones it broke unseen text (docs/METHODS.md, "The answers' odds")."""
    out = s.forget
    answered = s.forget_batch.prompted[out.seq]
    if not answered.any():
        return {}
    return {"odds": losses.odds_hinge(out.logits[answered], out.targets[answered], ODDS_MARGIN)}


def ga_gdr(s: Step):
    return ga(s) | gdr(s)


def ga_klr(s: Step):
    return ga(s) | klr(s)


def npo_gdr(s: Step):
    return npo(s) | gdr(s)


def npo_klr(s: Step):
    return npo(s) | klr(s)


def finetune(s: Step):
    """Learn the forget set while keeping the retain set: a fine-tune is a method too (the
    misinformation study injects its false claims with it; a relearning attack is one; the
    built-in models learn their facts with it, from random weights and with no retain set)."""
    learn = {"forget": losses.nll(s.forget.logits, s.forget.targets)}
    return learn | gdr(s) if s.retain_batch is not None else learn


def npo_gdr_odds(s: Step):
    return npo_gdr(s) | answer_odds(s)


def quail_hinge(s: Step):
    """The paper's QUAIL: GA+GDR plus the hinge, in the form that did best (docs/METHODS.md: it
    does not stop recovery on the grid the weights sit on)."""
    return ga_gdr(s) | hinge(s)


def quail_npo(s: Step):
    return npo_gdr(s) | hinge(s)


@dataclass(frozen=True)
class Method:
    """A loss function plus what it needs: a retain set, the original's outputs, and whether
    the loop masks rows (SURE) or runs the model through fake-quantized weights (STE)."""

    loss: Callable[[Step], dict[str, torch.Tensor]]
    retain: bool = False
    npo: bool = False  # reads θ0's forget token log-probs
    klr: bool = False  # reads θ0's retain distribution
    hinge: bool = False  # reads Q(θ0)'s forget answer log-probs, trains through Q(θ)
    sure: bool = False
    circuit: bool = False  # MANSU: only attributed, retain-safe weights move, by at least Δ
    ste: bool = False
    update: str = "adamw"  # what update=auto means: adamw, sign, grid_sign or sam
    measured: bool = False  # always checks forgetting in the listed formats and stops on it
    defaults: tuple[tuple[str, object], ...] = ()  # settings this method starts from, unless set


METHODS: dict[str, Method] = {
    "ga": Method(ga),
    "ga_gdr": Method(ga_gdr, retain=True),
    "ga_klr": Method(ga_klr, retain=True, klr=True),
    "npo": Method(npo, npo=True),
    "npo_gdr": Method(npo_gdr, retain=True, npo=True),
    "npo_klr": Method(npo_klr, retain=True, npo=True, klr=True),
    # NPO+GDR's loss and the answers' odds hinge in sign steps of 1.6e-3 of the first format's
    # median step, shipped rounded onto that grid, stopped on forgetting measured in every
    # format (docs/METHODS.md, "Sign steps on the grid"; NPO's push fades once an answer is
    # less likely than under the original, GA's never does, and under sign steps it went on
    # wrecking general text: "The loss under sign steps"; the odds hinge pushes the answers
    # greedy decoding would still give: "The answers' odds")
    "quail": Method(
        npo_gdr_odds,
        retain=True,
        npo=True,
        update="grid_sign",
        measured=True,
        defaults=(("lr", 1.6e-3), ("steps", 1000), ("check_every", 10)),
    ),
    "quail_hinge": Method(quail_hinge, retain=True, hinge=True),
    "quail_npo": Method(quail_npo, retain=True, npo=True, hinge=True),
    "sure_ga_gdr": Method(ga_gdr, retain=True, sure=True),
    "sure_quail": Method(quail_hinge, retain=True, hinge=True, sure=True),
    "ste_ga_gdr": Method(ga_gdr, retain=True, ste=True),
    "finetune": Method(finetune, retain=True),
    "finetune_ste": Method(finetune, retain=True, ste=True),  # learns it on the `quant` grid
    # The field's 2026 answers, as baselines on GA+GDR's loss (docs/METHODS.md, "The field's
    # 2026 answers"): a sign optimizer (Downgrade to Upgrade), sharpness-aware steps through
    # straight-through rounding (DurableUn-SAF), attributed weights moved at least one step
    # (MANSU)
    "dtu": Method(ga_gdr, retain=True, update="sign"),
    "durableun_saf": Method(ga_gdr, retain=True, ste=True, update="sam"),
    "mansu": Method(ga_gdr, retain=True, circuit=True),
}
