"""One forward pass reduced to the positions that predict target tokens, optionally through
fake-quantized weights with straight-through gradients (STE)."""

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from quail.data.batches import IGNORE, Batch


@dataclass
class Outputs:
    """Model outputs at the N target positions of a batch (position t predicts token t+1)."""

    logits: torch.Tensor  # (N, V)
    targets: torch.Tensor  # (N,)
    seq: torch.Tensor  # (N,) row of the batch each token comes from
    n_seq: int


def forward(model: nn.Module, batch: Batch, weights: dict | None = None) -> Outputs:
    """Run the model; `weights` (name -> tensor) replace parameters for this call only."""
    kwargs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
    out = model(**kwargs) if weights is None else functional_call(model, weights, (), kwargs)
    labels = batch.labels[:, 1:]
    mask = labels != IGNORE
    rows = torch.arange(labels.shape[0], device=labels.device)[:, None].expand_as(labels)
    return Outputs(
        logits=out.logits[:, :-1][mask],
        targets=labels[mask],
        seq=rows[mask],
        n_seq=labels.shape[0],
    )
