"""update=sign: each weight moves by exactly lr per step, in the sign of its gradient's moving
average (signSGD with momentum, "Signum").

The optimizer downgrade of "Downgrade to Upgrade" (Lang et al., ICLR 2026, arXiv 2510.00761):
a compressed, 1-bit update direction leads unlearning to flatter basins that weight
perturbations such as quantization disturb less. Their hybrid first-/zeroth-order optimizer is
not implemented (docs/METHODS.md, "The field's 2026 answers").
"""

import torch


class Signum(torch.optim.Optimizer):
    """p ← p − lr·sign(m), m ← β·m + (1 − β)·g; no weight decay (a sign step has no scale)."""

    def __init__(self, params, lr: float, momentum: float = 0.9):
        super().__init__(params, {"lr": lr, "momentum": momentum})

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
                p.add_(torch.sign(average), alpha=-group["lr"])
