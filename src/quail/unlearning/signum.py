"""update=sign: each weight moves by exactly lr per step, in the sign of its gradient's moving
average (signSGD with momentum, "Signum"). update=grid_sign, quail's default: the same steps in
units of the first format's median quantization step (each part of it, linear layers and
embeddings, its own), and the model shipped rounded to nearest onto that grid.

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
    scale). `unit` is 1 for update=sign; update=grid_sign gives each parameter group its grid's
    median step (`grid_groups`)."""

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


def grid_groups(model: nn.Module, spec: QuantSpec, params: list[nn.Parameter]) -> list[dict]:
    """Signum's parameter groups for update=grid_sign: the weights of each part of `spec` move
    in units of that part's median quantization step Δ, so that a step is the same fraction of
    a bucket on every grid (an `+emb-` part's finer grid, such as the Q8_0 of SmolLM2's tied
    embedding, gets its own smaller unit); parameters `spec` keeps in floating point (norms)
    move in the linear layers' unit. Every group of a part holds as many weights, so the median
    over groups' scales is the median over weights."""
    scales: dict[QuantSpec, list[torch.Tensor]] = {}
    part_of: dict[int, QuantSpec] = {}
    for _, module, part in quantized_modules(model, spec):
        scale = quantize_tensor(module.weight.detach(), part).scale.reshape(-1).float()
        scales.setdefault(part, []).append(scale)
        part_of[id(module.weight)] = part
    unit = {part: torch.cat(s).median().item() for part, s in scales.items()}
    grouped: dict[QuantSpec, list[nn.Parameter]] = {}
    for p in params:
        grouped.setdefault(part_of.get(id(p), spec.linear), []).append(p)
    return [{"params": ps, "unit": unit[part]} for part, ps in grouped.items()]
