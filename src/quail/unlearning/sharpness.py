"""update=sam: the step's gradient is taken at the worst nearby weights θ + ρ·g/‖g‖
(sharpness-aware minimization), so the run settles where a small weight change, such as
rounding, does not undo it.

DurableUn-SAF (Khan and Sohel, arXiv 2605.02196) puts this sharpness-aware step on an
unlearning loss computed through straight-through INT4 rounding (`durableun_saf`).
"""

import torch


@torch.no_grad()
def climb(params: list[torch.Tensor], rho: float) -> list[torch.Tensor | None]:
    """Move each parameter by ρ·g/‖g‖ (‖g‖ over all of them); return the moves, to undo."""
    grads = [p.grad for p in params]
    norm = torch.stack([g.float().norm() for g in grads if g is not None]).norm()
    moves = []
    for p, g in zip(params, grads, strict=True):
        move = None if g is None else (rho / (norm + 1e-12)) * g
        if move is not None:
            p.add_(move)
        moves.append(move)
    return moves


@torch.no_grad()
def descend(params: list[torch.Tensor], moves: list[torch.Tensor | None]) -> None:
    for p, move in zip(params, moves, strict=True):
        if move is not None:
            p.sub_(move)
