"""Round-to-nearest integer quantization of groups (rows of a 2-D matrix).

Symmetric: Δ = absmax / (2^(b-1) - 1), value = Δ·code, code in [-2^(b-1), 2^(b-1) - 1].
Asymmetric: Δ = (max - min) / (2^b - 1), value = Δ·code + zero with zero = min (a float
offset, as llama.cpp's Q4_1, HQQ and quanto store it), code in [0, 2^b - 1]; the group's
minimum and maximum are then exactly representable.
"""

import torch


def code_range(bits: int, symmetric: bool) -> tuple[int, int]:
    if symmetric:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def group_extremes(groups: torch.Tensor, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high) per group: the values that set its scale (and zero). A weight at either
    end moves the grid with it; one strictly inside does not."""
    if symmetric:
        high = groups.abs().amax(dim=1, keepdim=True)
        return -high, high
    return groups.amin(dim=1, keepdim=True), groups.amax(dim=1, keepdim=True)


def rtn_scales(groups: torch.Tensor, bits: int, symmetric: bool):
    """Per-group step Δ and zero (None when symmetric). An all-zero group gets Δ = 1."""
    if symmetric:
        scale = groups.abs().amax(dim=1, keepdim=True) / (2 ** (bits - 1) - 1)
        zero = None
    else:
        low = groups.amin(dim=1, keepdim=True)
        scale = (groups.amax(dim=1, keepdim=True) - low) / (2**bits - 1)
        zero = low
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return scale, zero


def rtn_codes(groups, scale, zero, bits: int, symmetric: bool) -> torch.Tensor:
    shifted = groups if zero is None else groups - zero
    low, high = code_range(bits, symmetric)
    codes = torch.round(shifted / scale).clamp_(low, high)
    return codes.to(torch.int8 if symmetric else torch.uint8)


def rtn_values(codes, scale, zero) -> torch.Tensor:
    values = codes.to(torch.float32) * scale
    return values if zero is None else values + zero
