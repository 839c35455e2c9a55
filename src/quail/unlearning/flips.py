"""Unlearning in code space: each step moves the weights whose one-bucket move most lowers the
loss by exactly one bucket of the deployment grid, so every change is one the grid can see.

Why: on the grid a weight sits on, any move under half a step Δ/2 is rounded away, and Adam's
moves (about lr per step) stay far below it. Moving a weight by Δ changes its integer code by
exactly one while the group's scale (and zero point) stay put, so the quantized model changes
exactly as the full-precision one does (update survival 1 on that grid by construction).

Which weights: the first-order loss change of moving weight i by d·Δ_i is g_i·d·Δ_i, so the
best direction is d = -sign(g_i) and the gain is |g_i|·Δ_i (progressive bit search ranks bit
flips the same way), with g an average of the last batches' gradients (`momentum`), so that one
noisy batch does not decide a move that costs a whole bucket. A move is allowed only if it
keeps the group's scale: the group's extreme values (which define the scale) never move, and no
weight moves past them.

How many: a trust region, run by the loop. `k` moves are tried; if the loss on the same batch
went down they are kept and k grows, otherwise they are undone and k halves. No learning rate.
"""

from dataclasses import dataclass

import torch
from torch import nn

from quail.quant import QuantSpec, quantize_tensor
from quail.quant.grouping import from_groups, to_groups
from quail.quant.rtn import group_extremes


def bucket_steps(weight: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Each weight's quantization step Δ on `spec`'s grid (its group's scale), shaped as it."""
    groups, pad = to_groups(weight, spec)
    step = quantize_tensor(weight.detach(), spec).scale.expand_as(groups)
    return from_groups(step, weight.shape, pad).to(weight.device)


@dataclass
class Moves:
    """The moves of one step: per parameter, flat indices and the value added at each."""

    items: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]

    @property
    def count(self) -> int:
        return sum(index.numel() for _, index, _ in self.items)


class GridMover:
    """Moves the named weights of `model` one bucket of their spec at a time."""

    def __init__(self, model: nn.Module, parts: dict[str, QuantSpec], momentum: float = 0.0):
        params = dict(model.named_parameters())
        self.momentum = momentum
        self.averages: dict[int, torch.Tensor] = {}
        self.tensors = []
        for name, spec in parts.items():
            p = params[name]
            groups, pad = to_groups(p, spec)
            low, high = group_extremes(groups, spec.symmetric)
            self.tensors.append((p, spec, pad, bucket_steps(p, spec), low, high))
        self.size = sum(p.numel() for p, *_ in self.tensors)

    def _allowed(self, p, spec, pad, step, low, high, direction):
        """True where moving by direction·Δ keeps the weight inside its group's extremes, and
        the weight is not itself an extreme (which would change the scale)."""
        groups, _ = to_groups(p, spec)
        moved, _ = to_groups(p.detach() + direction * step, spec)
        inner = (groups > low) & (groups < high)
        inside = (moved >= low) & (moved <= high)
        return from_groups(inner & inside, p.shape, pad)

    @torch.no_grad()
    def propose(self, k: int) -> Moves:
        """The k allowed moves of largest first-order gain |g|·Δ, from the current gradients."""
        gains, directions = [], []
        for p, spec, pad, step, low, high in self.tensors:
            if p.grad is None:
                gains.append(torch.zeros(p.numel(), device=p.device))
                directions.append(None)
                continue
            grad = p.grad.float()
            if self.momentum:
                average = self.averages.get(id(p))
                if average is not None:
                    grad = self.momentum * average + (1 - self.momentum) * grad
                self.averages[id(p)] = grad
            direction = -torch.sign(grad)
            gain = grad.abs() * step
            allowed = self._allowed(p, spec, pad, step, low, high, direction)
            gains.append(torch.where(allowed & (direction != 0), gain, 0.0).reshape(-1))
            directions.append(direction.reshape(-1))
        flat = torch.cat(gains)
        k = min(k, int((flat > 0).sum()))
        if k == 0:
            return Moves([])
        chosen = torch.topk(flat, k).indices
        items, offset = [], 0
        for (p, _, _, step, _, _), gain, direction in zip(
            self.tensors, gains, directions, strict=True
        ):
            n = gain.numel()
            mine = chosen[(chosen >= offset) & (chosen < offset + n)] - offset
            if mine.numel():
                items.append((p, mine, direction[mine] * step.reshape(-1)[mine]))
            offset += n
        return Moves(items)

    @torch.no_grad()
    def apply(self, moves: Moves, sign: float = 1.0) -> None:
        for p, index, delta in moves.items:
            p.view(-1).index_add_(0, index, (sign * delta).to(p.dtype))

    def undo(self, moves: Moves) -> None:
        self.apply(moves, -1.0)

    def state(self) -> dict[str, torch.Tensor]:
        """The gradient averages, for a checkpoint."""
        index = {id(p): i for i, (p, *_) in enumerate(self.tensors)}
        return {f"average.{index[key]}": value for key, value in self.averages.items()}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        for key, value in state.items():
            p = self.tensors[int(key.split(".")[1])][0]
            self.averages[id(p)] = value.to(p.device)

    @torch.no_grad()
    def scale_updates(self, params: list[torch.Tensor], before: list[torch.Tensor]) -> None:
        """update=bucket: turn the optimizer's step on each weight into that many buckets
        (p ← before + (p − before)·Δ), so lr is a fraction of a bucket per step."""
        steps = {id(p): step for p, _, _, step, _, _ in self.tensors}
        for p, old in zip(params, before, strict=True):
            if id(p) in steps:
                p.copy_(old + (p - old) * steps[id(p)])
