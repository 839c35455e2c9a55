"""SURE row saliency: only the rows whose forget-loss gradient is largest at θ0 may move.

A "row" is an output row of a weight matrix (dim 0; one token's row of an embedding), and each
element of a 1-D parameter (norm weights). The threshold is the given percentile of the row
norms within each tensor, so every layer keeps its most salient rows.

The mask must hold exactly: masked gradients are zeroed (Adam's update of a parameter whose
gradient was always zero is exactly zero), and AdamW's decoupled weight decay, which would
shrink masked rows too, is switched off in the optimizer and applied by hand to unmasked rows.
"""

from collections.abc import Callable, Iterable

import torch
from torch import nn


def summed_gradients(model: nn.Module, losses: Iterable[torch.Tensor]) -> dict:
    """Each trainable parameter's gradient summed over the losses (zeros where it gets none),
    in float32; the model is left with no gradients."""
    model.zero_grad(set_to_none=True)
    for loss in losses:
        loss.backward()
    grads = {
        name: (p.grad if p.grad is not None else torch.zeros_like(p)).float()
        for name, p in model.named_parameters()
        if p.requires_grad
    }
    model.zero_grad(set_to_none=True)
    return grads


def row_saliency(model: nn.Module, loss_fn: Callable[[], Iterable[torch.Tensor]]) -> dict:
    """Per-row norm of the summed forget-loss gradient; `loss_fn` yields one loss per batch."""
    grads = summed_gradients(model, loss_fn())
    return {name: g.reshape(g.shape[0], -1).norm(dim=1) for name, g in grads.items()}


def row_masks(saliency: dict, percentile: float) -> dict[str, torch.Tensor]:
    """True for rows strictly above the tensor's percentile of saliency (the rows to update)."""
    return {
        name: norms > torch.quantile(norms, percentile / 100.0) for name, norms in saliency.items()
    }


class RowMask:
    """Applies the masks to named parameters of the model being trained."""

    def __init__(self, model: nn.Module, masks: dict[str, torch.Tensor], weight_decay: float):
        params = dict(model.named_parameters())
        self.pairs = [(params[name], mask.to(params[name].device)) for name, mask in masks.items()]
        self.weight_decay = weight_decay

    def _rows(self, p: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The mask as a factor of `p`: a row mask is broadcast, a weight mask (MANSU's) is
        already shaped as `p`."""
        if mask.shape != p.shape:
            mask = mask.reshape(-1, *([1] * (p.dim() - 1)))
        return mask.to(p.dtype)

    @torch.no_grad()
    def mask_grads(self) -> None:
        for p, mask in self.pairs:
            if p.grad is not None:
                p.grad.mul_(self._rows(p, mask))

    @torch.no_grad()
    def decay(self, lr: float) -> None:
        """AdamW's p ← p·(1 − lr·wd), on unmasked rows only; call just before optimizer.step."""
        if self.weight_decay:
            for p, mask in self.pairs:
                p.mul_(1 - lr * self.weight_decay * self._rows(p, mask))
