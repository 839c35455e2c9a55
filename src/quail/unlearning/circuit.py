"""MANSU's two guards (Sadhu et al., arXiv 2605.15138, `mansu`), in a weight-level form.

1. Which weights may move: those that carry the forget set (attribution |θ·∂L_forget/∂θ|
   above the tensor's `sure_percentile`) and that the retain set does not lean on (diagonal
   Fisher of the retain loss at most the tensor's median). Every other parameter is frozen.
2. How far: every weight the run moved is moved at least one step Δ of the first format's
   grid, away from where it started, so no change is left for rounding to undo.

The paper finds the weights by causal circuit attribution (EAP-IG over edges) and projects each
step onto the retain gradients' null space under a Fisher bound; here a first-order attribution
per weight and a fixed Fisher mask stand for them (docs/METHODS.md, "The field's 2026 answers").
"""

import copy
from collections.abc import Iterable

import torch
from torch import nn

from quail.quant import QuantSpec, quantize_tensor, quantized_modules
from quail.unlearning.sure import summed_gradients

RETAIN_SAFE_PERCENTILE = 50.0  # weights whose retain Fisher is above this percentile stay put


def _fisher(model: nn.Module, losses: Iterable[torch.Tensor]) -> dict:
    """A diagonal Fisher: the sum over the batches of each parameter's squared gradient."""
    total = {}
    for loss in losses:
        model.zero_grad(set_to_none=True)
        loss.backward()
        for name, p in model.named_parameters():
            if p.grad is not None:
                total[name] = total.get(name, 0) + p.grad.float().square()
    model.zero_grad(set_to_none=True)
    return total


def _above(values: torch.Tensor, percentile: float) -> torch.Tensor:
    flat = values.reshape(-1)
    k = min(flat.numel(), max(1, round(flat.numel() * percentile / 100)))
    return values > flat.kthvalue(k).values


def circuit_masks(
    model: nn.Module,
    spec: QuantSpec,
    forget_losses: Iterable[torch.Tensor],
    retain_losses: Iterable[torch.Tensor],
    percentile: float,
) -> dict[str, torch.Tensor]:
    """{parameter name: True where it may move}, for every trainable parameter."""
    forget = summed_gradients(model, forget_losses)
    fisher = _fisher(model, retain_losses)
    on_grid = {id(m.weight) for _, m, _ in quantized_modules(model, spec)}
    masks = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) not in on_grid:
            masks[name] = torch.zeros_like(p, dtype=torch.bool)
            continue
        attribution = (p.detach().float() * forget[name]).abs()
        safe = ~_above(fisher[name], RETAIN_SAFE_PERCENTILE) if name in fisher else True
        masks[name] = _above(attribution, percentile) & safe
    return masks


class MagnitudeFloor:
    """Remembers the grid weights of θ0 and their steps Δ; `apply` returns a copy of a model
    in which every weight that moved has moved by at least its Δ."""

    def __init__(self, model: nn.Module, spec: QuantSpec):
        self.start = {
            name: (m.weight.detach().clone(), quantize_tensor(m.weight.detach(), part).step())
            for name, m, part in quantized_modules(model, spec)
        }

    @torch.no_grad()
    def apply(self, model: nn.Module) -> nn.Module:
        out = copy.deepcopy(model)
        modules = dict(out.named_modules())
        for name, (start, step) in self.start.items():
            weight = modules[name].weight
            moved = weight - start
            short = (moved != 0) & (moved.abs() < step)
            weight.copy_(torch.where(short, start + torch.sign(moved) * step, weight))
        return out
