"""What the frozen original model θ0 contributes: its outputs on the forget and retain examples.

KLR, NPO and the hinge compare the model being trained with θ0. Rather than keep θ0 in memory,
its outputs on every forget and retain example are computed once, before the first update, and
cached on the CPU:

- forget, for NPO: the log-probability of each target token (a few bytes per token);
- forget, for the hinge: the same, from the fake-quantized original Q(θ0);
- retain, for KLR: the full log-softmax at each target token (`full`), or its top-k entries and
  indices (`topk`, KL on k tokens + one bucket for the rest; see losses.kl_topk).

`cache=auto` takes `full` when everything fits in `cache_max_mb`, else `topk` when that fits,
else `live`: a frozen copy of θ0 (and of Q(θ0)) kept in memory and run on each batch (with LoRA,
θ0 is the base model with its adapters disabled, so it costs nothing).
"""

import copy
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace

import torch

from quail.data.batches import Batch, Encoded, chunks, collate
from quail.unlearning.forward import Outputs
from quail.unlearning.losses import target_logprob

FLOAT = 4


@dataclass(frozen=True)
class Needs:
    """Which reference outputs a run uses."""

    forget_tokens: bool = False  # NPO: θ0's forget token log-probs
    retain_dist: bool = False  # KLR: θ0's retain distribution
    hinge: bool = False  # the hinge: Q(θ0)'s forget token log-probs

    @property
    def any(self) -> bool:
        return self.forget_tokens or self.retain_dist or self.hinge


def reference_terms(orig: Outputs, quant: Outputs | None, needs: Needs, topk: int | None) -> dict:
    """The reference tensors of one batch, each with one row per target token."""
    terms = {}
    if needs.forget_tokens:
        terms["token_logprob"] = target_logprob(orig.logits, orig.targets)
    if needs.retain_dist:
        lp = torch.log_softmax(orig.logits.float(), -1)
        if topk is None:
            terms["logprobs"] = lp
        else:
            terms["topk_values"], terms["topk_index"] = lp.topk(min(topk, lp.shape[-1]), -1)
    if needs.hinge:
        terms["target_logprob"] = target_logprob(quant.logits, quant.targets)
    return terms


class CachedReference:
    """Reference tensors stored per example on the CPU and gathered in batch order."""

    def __init__(self, forget: list[dict], retain: list[dict]):
        self.store = {"forget": forget, "retain": retain}

    def __call__(self, which: str, batch: Batch) -> dict:
        rows = [self.store[which][i] for i in batch.index.tolist()]
        device = batch.input_ids.device
        return {k: torch.cat([r[k] for r in rows]).to(device) for k in rows[0]}


class LiveReference:
    """Frozen models run on each batch, for caches too big to keep."""

    def __init__(self, orig: Callable, quant: Callable | None, needs: Needs):
        self.orig, self.quant, self.needs = orig, quant, needs

    @torch.no_grad()
    def __call__(self, which: str, batch: Batch) -> dict:
        needs = _side(self.needs, which)
        quant = self.quant(batch) if needs.hinge else None
        return reference_terms(self.orig(batch), quant, needs, None)


def _side(needs: Needs, which: str) -> Needs:
    """The needs that apply to the forget or to the retain set."""
    if which == "retain":
        return Needs(retain_dist=needs.retain_dist)
    return replace(needs, retain_dist=False)


def cache_mode(
    mode: str, needs: Needs, n_forget: int, n_retain: int, vocab: int, topk: int, max_mb: float
) -> str:
    """Resolve `cache=auto` to full, topk or live from the bytes each would take."""
    if mode != "auto":
        return mode
    forget = n_forget * FLOAT * (needs.forget_tokens + needs.hinge)
    full = forget + n_retain * FLOAT * vocab * needs.retain_dist
    top = forget + n_retain * 3 * FLOAT * min(topk, vocab) * needs.retain_dist
    budget = max_mb * 2**20
    return "full" if full <= budget else "topk" if top <= budget else "live"


@torch.no_grad()
def build_reference(
    model_fn: Callable[[Batch], Outputs],
    quant_fn: Callable[[Batch], Outputs] | None,
    forget: list[Encoded],
    retain: list[Encoded] | None,
    needs: Needs,
    topk: int | None,
    pad_id: int,
    device,
    batch_size: int,
) -> CachedReference:
    """One pass of θ0 (and Q(θ0)) over the data, cached per example; `topk` keeps only the top
    k entries of the retain distribution (None: all)."""
    forget_rows = []
    if needs.forget_tokens or needs.hinge:
        for index in chunks(len(forget), batch_size):
            batch = collate(forget, index, pad_id).to(device)
            orig = model_fn(batch)
            quant = quant_fn(batch) if needs.hinge else None
            forget_rows += _split(reference_terms(orig, quant, _side(needs, "forget"), topk), orig)
    retain_rows = []
    if needs.retain_dist:
        for index in chunks(len(retain), batch_size):
            batch = collate(retain, index, pad_id).to(device)
            orig = model_fn(batch)
            retain_rows += _split(reference_terms(orig, None, _side(needs, "retain"), topk), orig)
    return CachedReference(forget_rows, retain_rows)


def _split(terms: dict, out: Outputs) -> list[dict]:
    """Batch-flat tensors to one dict per example (rows follow `out.seq`)."""
    counts = torch.bincount(out.seq, minlength=out.n_seq).tolist()
    pieces = {k: v.cpu().split(counts) for k, v in terms.items()}
    return [{k: pieces[k][i].clone() for k in terms} for i in range(out.n_seq)]


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of θ0 that never trains (for the live reference)."""
    frozen = copy.deepcopy(model).eval()
    frozen.requires_grad_(False)
    return frozen


def adapters_off(model):
    """Context in which a PEFT model is its base model (θ0); a no-op for plain models."""
    return model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext()
