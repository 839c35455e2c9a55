"""update=sign: each weight moves by exactly lr per step, in the sign of its gradient's moving
average (signSGD with momentum, "Signum"). update=grid_sign, quail's default: the same steps in
units of the first format's median quantization step, and the model shipped rounded to nearest
onto that grid.

Why it keeps its forgetting on the grid: a weight whose gradient keeps one sign walks steadily
and crosses half a step; one whose gradient flips walks back and forth and stays in its bucket,
so rounding gives the retain set's weights back and keeps the forget set's moves; the path is
gradual enough to stop on (docs/METHODS.md, "Sign steps on the grid").

The optimizer downgrade of "Downgrade to Upgrade" (Lang et al., ICLR 2026, arXiv 2510.00761):
a compressed, 1-bit update direction leads unlearning to flatter basins that weight
perturbations such as quantization disturb less. Their hybrid first-/zeroth-order optimizer is
not implemented (docs/METHODS.md, "The field's 2026 answers").
"""

import torch
from torch import nn

from quail.quant import QuantSpec, quantize_tensor, quantized_modules


class Signum(torch.optim.Optimizer):
    """p ← p − lr·unit·sign(m), m ← β·m + (1 − β)·g; no weight decay (a sign step has no
    scale). `unit` is 1 for update=sign and the grid's median step for update=grid_sign."""

    def __init__(self, params, lr: float, momentum: float = 0.9, unit: float = 1.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "unit": unit})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum" not in state:
                    state["momentum"] = torch.zeros_like(p)
                average = state["momentum"]
                average.mul_(group["momentum"]).add_(p.grad, alpha=1 - group["momentum"])
                p.add_(torch.sign(average), alpha=-group["lr"] * group["unit"])


def median_step(model: nn.Module, spec: QuantSpec) -> float:
    """The median quantization step Δ of the linear layers on `spec`'s grid (every group has as
    many weights, so the median over groups' scales is the median over weights)."""
    scales = [
        quantize_tensor(m.weight.detach(), part).scale.reshape(-1).float()
        for _, m, part in quantized_modules(model, spec)
        if isinstance(m, nn.Linear) and part == spec.linear
    ]
    return torch.cat(scales).median().item()
