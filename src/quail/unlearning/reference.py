"""What the frozen original model θ0 contributes: reference outputs and the hinge margins.

KLR, NPO and the hinge compare the model being trained with θ0. Rather than keep θ0 in memory,
its outputs on every forget and retain example are computed once, before the first update, and
cached on the CPU:

- forget, for NPO: the log-probability of each target token (a few bytes per token);
- forget, for the hinge: from θ0 or, with `hinge_on=quant`, from the fake-quantized Q(θ0), the
  target token's log-probability (`distance=target`) or the full logit vector (V floats per
  token, the vocabulary distances); plus every layer's hidden state with `layer_margins`;
- retain, for KLR: the full log-softmax at each target token (`full`), or its top-k entries and
  indices (`topk`, KL on k tokens + one bucket for the rest; see losses.kl_topk).

`cache=auto` takes `full` when everything fits in `cache_max_mb`, else `topk` when that fits,
else `live`: a frozen copy of θ0 (and of Q(θ0)) kept in memory and run on each batch (with LoRA,
θ0 is the base model with its adapters disabled, so it costs nothing).

The calibrated margin is measured in the same pass: `margin_multiple` × the mean distance, over
the forget target tokens, between the logits of θ0 and of a perturbed copy of it. The copy is
either Q(θ0) itself (`margin_from=quantize`: the logit perturbation quantizing the original
causes) or θ0 with every quantized weight moved by uniform noise in ±Δ/2 of its own bucket
(`margin_from=noise`: "half the quantization step carried into logit space", which stays
meaningful when the weights already sit on the grid and Q(θ0) = θ0 gives a margin of 0).
"""

import copy
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace

import torch

from quail.data.batches import Batch, Encoded, chunks, collate
from quail.quant import QuantSpec, quantize_tensor, quantized_modules
from quail.unlearning.forward import Outputs
from quail.unlearning.losses import distance, target_logprob

FLOAT = 4


@dataclass(frozen=True)
class Needs:
    """Which reference outputs a run uses."""

    forget_tokens: bool = False  # NPO
    retain_dist: bool = False  # KLR
    hinge: bool = False  # the hinge's reference on forget tokens...
    hinge_logits: bool = False  # ...as full logit vectors (else the target's log-prob only)
    hidden: bool = False  # per-layer hinge
    quant: bool = False  # hinge reference is Q(θ0) rather than θ0

    @property
    def any(self) -> bool:
        return self.forget_tokens or self.retain_dist or self.hinge


@dataclass
class Margins:
    """Hinge margins: one for the logits, and one per decoder layer with `layer_margins`."""

    logits: float
    layers: list[float] | None = None
    perturbation: float | None = None  # measured distance of the perturbed θ0, if calibrated


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
        source = quant if needs.quant else orig
        if needs.hinge_logits:
            terms["logits"] = source.logits.float()
        else:
            terms["target_logprob"] = target_logprob(source.logits, source.targets)
        if needs.hidden:
            terms["hidden"] = torch.stack(source.hidden, 1).float()  # (N, L, H)
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
        orig = self.orig(batch, needs.hidden)
        quant = self.quant(batch, needs.hidden) if needs.quant and needs.hinge else None
        return reference_terms(orig, quant, needs, None)


def _side(needs: Needs, which: str) -> Needs:
    """The needs that apply to the forget or to the retain set."""
    if which == "retain":
        return Needs(retain_dist=needs.retain_dist)
    return replace(needs, retain_dist=False)


def cache_mode(
    mode: str,
    needs: Needs,
    n_forget: int,
    n_retain: int,
    vocab: int,
    hidden: int,
    topk: int,
    max_mb: float,
) -> str:
    """Resolve `cache=auto` to full, topk or live from the bytes each would take."""
    if mode != "auto":
        return mode
    hinge = (vocab if needs.hinge_logits else 1) * needs.hinge
    forget = n_forget * FLOAT * (needs.forget_tokens + hinge + hidden)
    full = forget + n_retain * FLOAT * vocab * needs.retain_dist
    top = forget + n_retain * 3 * FLOAT * min(topk, vocab) * needs.retain_dist
    budget = max_mb * 2**20
    return "full" if full <= budget else "topk" if top <= budget else "live"


@torch.no_grad()
def build_reference(
    model_fn: Callable[[Batch, bool], Outputs],
    quant_fn: Callable[[Batch, bool], Outputs] | None,
    perturbed_fn: Callable[[Batch, bool], Outputs] | None,
    forget: list[Encoded],
    retain: list[Encoded] | None,
    needs: Needs,
    mode: str,
    topk: int,
    pad_id: int,
    device,
    batch_size: int,
    margins: Callable[[list[Outputs], list[Outputs]], Margins] | None,
):
    """One pass of θ0 (and Q(θ0)) over the data: the cache (unless live), and the margins
    measured between θ0 and its perturbed copy (`perturbed_fn`)."""
    cache = mode != "live"
    top = topk if mode == "topk" else None
    hidden = needs.hidden
    forget_rows, orig_all, perturbed_all = [], [], []
    if needs.forget_tokens or needs.hinge or margins is not None:
        for index in chunks(len(forget), batch_size):
            batch = collate(forget, index, pad_id).to(device)
            orig = model_fn(batch, hidden)
            quant = quant_fn(batch, hidden) if quant_fn is not None else None
            if margins is not None:
                orig_all.append(_cpu(orig))
                perturbed_all.append(_cpu(perturbed_fn(batch, hidden)))
            if cache:
                forget_rows += _split(
                    reference_terms(orig, quant, _side(needs, "forget"), top), orig
                )
    retain_rows = []
    if cache and needs.retain_dist:
        for index in chunks(len(retain), batch_size):
            batch = collate(retain, index, pad_id).to(device)
            orig = model_fn(batch, False)
            retain_rows += _split(reference_terms(orig, None, _side(needs, "retain"), top), orig)
    found = margins(orig_all, perturbed_all) if margins is not None else None
    return (CachedReference(forget_rows, retain_rows) if cache else None), found


def _cpu(out: Outputs | None) -> Outputs | None:
    if out is None:
        return None
    hidden = [h.cpu() for h in out.hidden] if out.hidden is not None else None
    return Outputs(out.logits.cpu(), out.targets.cpu(), out.seq.cpu(), out.n_seq, hidden)


def _split(terms: dict, out: Outputs) -> list[dict]:
    """Batch-flat tensors to one dict per example (rows follow `out.seq`)."""
    counts = torch.bincount(out.seq, minlength=out.n_seq).tolist()
    pieces = {k: v.cpu().split(counts) for k, v in terms.items()}
    return [{k: pieces[k][i].clone() for k in terms} for i in range(out.n_seq)]


def calibrate(kind: str, multiple: float, layers: bool):
    """Margins from the distance a perturbed θ0 puts between its outputs and θ0's (for the
    signed `target` distance, its absolute value: the size of the perturbation)."""

    def measure(orig: list[Outputs], perturbed: list[Outputs]) -> Margins:
        pairs = list(zip(orig, perturbed, strict=True))
        logit_d = torch.cat(
            [distance(p.logits, o.logits, kind, targets=o.targets) for o, p in pairs]
        )
        perturbation = logit_d.abs().mean().item()
        per_layer = None
        if layers:
            layer_kind = "l2" if kind == "target" else kind
            per_layer = [
                multiple
                * torch.cat(
                    [distance(p.hidden[i], o.hidden[i], layer_kind, False) for o, p in pairs]
                )
                .mean()
                .item()
                for i in range(len(orig[0].hidden))
            ]
        return Margins(multiple * perturbation, per_layer, perturbation)

    return measure


@torch.no_grad()
def rounding_noise_copy(model: torch.nn.Module, spec: QuantSpec, seed: int) -> torch.nn.Module:
    """θ0 with every weight the spec quantizes moved by uniform noise in ±Δ/2 of its bucket.

    That is what round-to-nearest does to weights that sit at random places in their buckets,
    and it stays meaningful for weights already on the grid, which Q leaves unchanged.
    """
    noisy = frozen_copy(model)
    gen = torch.Generator().manual_seed(seed)
    for _, module, part in quantized_modules(noisy, spec):
        weight = module.weight
        step = quantize_tensor(weight.detach().float(), part).step()
        noise = torch.rand(weight.shape, generator=gen).to(step.device) - 0.5
        weight.add_((step * noise).to(weight.dtype))
    return noisy


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of θ0 that never trains (for the live reference)."""
    frozen = copy.deepcopy(model).eval()
    frozen.requires_grad_(False)
    return frozen


def adapters_off(model):
    """Context in which a PEFT model is its base model (θ0); a no-op for plain models."""
    return model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext()
