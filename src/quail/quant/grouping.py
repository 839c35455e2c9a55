"""Views of a weight tensor as rows of quantization groups, and back.

Every quantizer works on a 2-D `(n_groups, group_len)` matrix with one scale per row, so the
granularity (per tensor, per output channel, per group of input columns, flat blocks) lives here
and nowhere else.
"""

import torch

from quail.errors import QuailError
from quail.quant.spec import QuantSpec


def to_groups(weight: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, int]:
    """Return (float32 groups, number of padding elements appended to the flat tensor)."""
    w = weight.detach().to(torch.float32)
    if spec.method in ("nf4", "fp4"):  # bitsandbytes blocks the flattened tensor
        flat = w.reshape(-1)
        pad = (-flat.numel()) % spec.group_size
        if pad:
            flat = torch.cat([flat, flat.new_zeros(pad)])
        return flat.reshape(-1, spec.group_size), pad
    if spec.granularity == "tensor" or w.dim() < 2:
        return w.reshape(1, -1), 0
    rows = w.reshape(w.shape[0], -1)
    if spec.granularity == "channel":
        return rows, 0
    columns = rows.shape[1]
    if columns % spec.group_size:
        raise QuailError(
            f"group size {spec.group_size} does not divide the {columns} input columns of a "
            f"{tuple(weight.shape)} weight: pick a group size that divides {columns}"
        )
    return rows.reshape(-1, spec.group_size), 0


def from_groups(groups: torch.Tensor, shape: torch.Size, pad: int) -> torch.Tensor:
    """Undo `to_groups`: flatten, drop the padding, restore the weight's shape."""
    flat = groups.reshape(-1)
    if pad:
        flat = flat[: flat.numel() - pad]
    return flat.reshape(shape)
