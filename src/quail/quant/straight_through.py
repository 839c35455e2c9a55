"""Training through the quantizer: the one straight-through rule, applied per forward call,
and rounding onto the grid once training is done.

Snapping a model onto a grid (the built-in base, the misinformation study's injection) and the
STE unlearning methods all train this way: the forward pass computes with Q(W), the gradient
updates the float weight as if rounding were the identity, and at the end the rounding is made
permanent, so the saved float weights are grid points and `Q(W) == W`, like a model dequantized
from a 4-bit file.
"""

import torch
from torch import nn

from quail.quant.model import quantized_modules
from quail.quant.spec import QuantSpec
from quail.quant.tensor import fake_quantize


def straight_through_weight(weight: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Q(w) in the forward pass, identity in the backward pass: w + (Q(w) − w).detach(); Q is
    computed in float32 whatever the weight's dtype."""
    quantized = fake_quantize(weight.detach().float(), spec).to(weight.dtype)
    return weight + (quantized - weight).detach()


def quantized_weights(model: nn.Module, unwrapped: nn.Module, spec: QuantSpec) -> dict:
    """{name, as `model` (possibly DDP-wrapped) spells it: the spec its weight is quantized
    under} for the weights `quantize_model` changes; a tied embedding is named once, and
    `functional_call` replaces it everywhere it is used."""
    parts = {id(m.weight): part for _, m, part in quantized_modules(unwrapped, spec)}
    return {name: parts[id(p)] for name, p in model.named_parameters() if id(p) in parts}


def ste_weights(model: nn.Module, parts: dict[str, QuantSpec]) -> dict[str, torch.Tensor]:
    """Straight-through fake-quantized replacements for the named weights of `model`, to pass
    to `torch.func.functional_call`."""
    params = dict(model.named_parameters())
    return {name: straight_through_weight(params[name], spec) for name, spec in parts.items()}


@torch.no_grad()
def snap_onto(model: nn.Module, spec: QuantSpec) -> None:
    """Round the weights `quantize_model` changes onto their grid, in place (the parameters
    stay the same objects, a tied weight one tensor)."""
    for _, m, part in quantized_modules(model, spec):
        m.weight.copy_(fake_quantize(m.weight, part))


@torch.no_grad()
def grid_distance(model: nn.Module, spec: QuantSpec) -> float:
    """max |Q(W) - W| over the covered weights: 0 (up to float rounding) once snapped."""
    return max(
        (fake_quantize(m.weight, part) - m.weight).abs().max().item()
        for _, m, part in quantized_modules(model, spec)
    )
