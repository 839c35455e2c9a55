"""NF4 and FP4: 16-entry codebooks on [-1, 1] with blockwise absmax scaling, as bitsandbytes.

A block's values are divided by the block's absmax and each is mapped to the nearest codebook
entry; the code is the entry's index in bitsandbytes' table, so our codes equal the nibbles
`bitsandbytes.functional.quantize_4bit` packs.
"""

import functools

import torch

NF4 = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
)  # fmt: skip
FP4 = (
    0.0, 0.0052083334885537624, 0.6666666865348816, 1.0, 0.3333333432674408, 0.5,
    0.1666666716337204, 0.25, -0.0, -0.0052083334885537624, -0.6666666865348816, -1.0,
    -0.3333333432674408, -0.5, -0.1666666716337204, -0.25,
)  # fmt: skip
TABLES = {"nf4": NF4, "fp4": FP4}
FP4_NEGATIVE_ZERO = 8


@functools.cache
def _decision_thresholds(name: str, device: torch.device):
    """Table indices in ascending value order and the midpoints between neighbours.

    Built over all 16 entries exactly as bitsandbytes does, so FP4's two zeros split the
    interval around 0: small negatives get code 0 (+0), small positives code 8 (-0).
    """
    table = torch.tensor(TABLES[name], dtype=torch.float32, device=device)
    order = torch.argsort(table, stable=True)
    return order.to(torch.uint8), (table[order[1:]] + table[order[:-1]]) / 2


def codebook_scales(groups: torch.Tensor) -> torch.Tensor:
    absmax = groups.abs().amax(dim=1, keepdim=True)
    return torch.where(absmax > 0, absmax, torch.ones_like(absmax))


def codebook_codes(groups: torch.Tensor, absmax: torch.Tensor, name: str) -> torch.Tensor:
    order, thresholds = _decision_thresholds(name, groups.device)
    return order[torch.bucketize((groups / absmax).clamp_(-1, 1), thresholds)]


def codebook_values(codes: torch.Tensor, absmax: torch.Tensor, name: str) -> torch.Tensor:
    table = torch.tensor(TABLES[name], dtype=torch.float32, device=codes.device)
    return table[codes.long()] * absmax


def codebook_bucket_widths(codes: torch.Tensor, absmax: torch.Tensor, name: str):
    """The local step Δ of each element: twice the largest rounding error its bucket allows.

    For a uniform grid this is the grid step. Codebook entries are not centred in their
    buckets, so Δ/2 is the distance from the entry to its farther decision threshold (the
    edge entries ±1 have only one, since values are clipped to the block absmax). FP4's +0
    and -0 decode alike and share one bucket.
    """
    values = torch.tensor(sorted(set(TABLES[name])), dtype=torch.float32)
    mids = (values[1:] + values[:-1]) / 2
    below = torch.cat([values[:1], mids])  # the edge -1 has nothing below it
    above = torch.cat([mids, values[-1:]])
    half = torch.maximum(values - below, above - values)
    table = torch.tensor(TABLES[name], dtype=torch.float32)
    step_by_code = (2 * half[torch.bucketize(table, values)]).to(codes.device)
    return step_by_code[codes.long()] * absmax
