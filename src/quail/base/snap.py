"""Put a model's weights exactly on a quantization grid without losing what it learned.

Quantization-aware fine-tuning with a straight-through estimator: the forward pass uses the
fake-quantized weight, the gradient updates the float weight as if rounding were the identity.
When the quantized model is good enough the rounding is made permanent, so the saved float
weights are grid points and `Q(W) == W`, like a model dequantized from a 4-bit file.
"""

import contextlib

import torch
from torch import nn
from torch.nn.utils import parametrize

from quail.errors import QuailError
from quail.quant import QuantSpec, fake_quantize, quantized_modules, straight_through_weight


class StraightThrough(nn.Module):
    """The straight-through rule as a parametrization: every use of the weight sees Q(W)."""

    def __init__(self, spec: QuantSpec):
        super().__init__()
        self.spec = spec

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return straight_through_weight(weight, self.spec)


@contextlib.contextmanager
def straight_through(model: nn.Module, spec: QuantSpec):
    """Within the block the model computes with quantized weights (those `quantize_model`
    changes: with an `+emb-` part, the embeddings and lm_head under it); on exit the weights
    are left rounded onto the grid. A tied weight is parametrized in every module that uses it,
    so that all of them compute with Q(W)."""
    covered = quantized_modules(model, spec)
    for name, m, _ in covered:
        if parametrize.is_parametrized(m, "weight"):
            raise QuailError(
                f"{name}.weight is already parametrized: remove that parametrization before "
                "snapping"
            )
    parts = {id(m.weight): part for _, m, part in covered}
    modules = [
        (m, parts[id(m.weight)])
        for m in model.modules()
        if isinstance(getattr(m, "weight", None), nn.Parameter) and id(m.weight) in parts
    ]
    registered = []
    try:
        for m, part in modules:
            parametrize.register_parametrization(m, "weight", StraightThrough(part))
            registered.append(m)
        yield model
    finally:
        for m in registered:  # rounds the weight in place: a tied weight stays one tensor
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)


@torch.no_grad()
def grid_distance(model: nn.Module, spec: QuantSpec) -> float:
    """max |Q(W) - W| over the covered weights: 0 (up to float rounding) once snapped."""
    return max(
        (fake_quantize(m.weight, part) - m.weight).abs().max().item()
        for _, m, part in quantized_modules(model, spec)
    )
