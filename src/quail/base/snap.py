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
from quail.quant import QuantSpec, fake_quantize, quantizable_modules


class StraightThrough(nn.Module):
    def __init__(self, spec: QuantSpec):
        super().__init__()
        self.spec = spec

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + (fake_quantize(weight, self.spec) - weight).detach()


@contextlib.contextmanager
def straight_through(model: nn.Module, spec: QuantSpec):
    """Within the block the model computes with quantized weights (the layers `quantize_model`
    covers); on exit the weights are left rounded onto the grid."""
    if spec.embeddings is not None:
        raise QuailError(f"snapping to {spec.name}: it covers the linear layers only; drop '+emb-'")
    modules = [m for _, m in quantizable_modules(model)]
    for m in modules:
        parametrize.register_parametrization(m, "weight", StraightThrough(spec))
    try:
        yield model
    finally:
        for m in modules:
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)


@torch.no_grad()
def grid_distance(model: nn.Module, spec: QuantSpec) -> float:
    """max |Q(W) - W| over the covered weights: 0 (up to float rounding) once snapped."""
    return max(
        (fake_quantize(m.weight, spec) - m.weight).abs().max().item()
        for _, m in quantizable_modules(model)
    )
