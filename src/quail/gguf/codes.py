"""The `gguf-*` specs' backend adapter: a tensor's codes as llama.cpp quantizes it.

Per tensor, a spec means its file type's main tensor type (Q4_K for gguf-q4_k_m, Q5_K for
gguf-q5_k_m) computed by ggml's own quantizer (what `llama_model_quantize` runs on each tensor,
without an importance matrix), or the type llama.cpp falls back to where a row does not hold
whole 256-element super-blocks (Q5_0, Q5_1, Q8_0). A file also holds some tensors in other
types by llama.cpp's choice (the output layer, some attn_v/ffn_down in K-quant mixes):
`quail.gguf.read` reads those from the file.
"""

import numpy as np
import torch

from quail.errors import QuailError
from quail.gguf.blocks import unpack
from quail.gguf.ggml import quantize_rows
from quail.gguf.types import TensorGrid, gguf_type, tensor_grid
from quail.quant.spec import QuantSpec
from quail.quant.tensor import QuantizedTensor


def codes(
    weight: torch.Tensor, spec: QuantSpec, like: QuantizedTensor | None = None
) -> QuantizedTensor:
    """llama.cpp's codes of `weight`; with `like`, `weight` rounded on `like`'s scales
    (`round_on`)."""
    if spec.method != "rtn":
        raise QuailError(
            f"{spec.name} stores floats, not integer codes: it has no buckets to analyse; use "
            "it for evaluation, or analyse a quantized type such as gguf-q4_k_m"
        )
    rows = weight.detach().to(torch.float32).reshape(weight.shape[0], -1).cpu()
    tensor_type, grid = tensor_grid(gguf_type(spec.backend).tensor_type, rows.shape[1])
    if grid is None:
        raise QuailError(
            f"{spec.name}: llama.cpp stores a {tuple(weight.shape)} weight as F16 (its rows of "
            f"{rows.shape[1]} do not hold whole blocks of 32): it has no buckets to analyse"
        )
    if like is not None:
        if like.spec != spec or tuple(like.shape) != tuple(weight.shape):
            raise QuailError(
                f"cannot reuse the scales of a {tuple(like.shape)} tensor under {like.spec} for "
                f"a {tuple(weight.shape)} tensor under {spec}: shapes and specs must match"
            )
        return round_on(rows, like, grid)
    blocks = quantize_rows(rows.numpy(), tensor_type)
    per_block = blocks.shape[1] // (rows.shape[1] // grid.block)
    group_codes, scale, zero = unpack(blocks.reshape(-1, per_block), grid.name)
    return QuantizedTensor(
        spec,
        weight.shape,
        0,
        torch.from_numpy(group_codes),
        torch.from_numpy(scale),
        None if zero is None else torch.from_numpy(np.ascontiguousarray(zero)),
    )


def round_on(weight: torch.Tensor, like: QuantizedTensor, grid: TensorGrid) -> QuantizedTensor:
    """float32 `weight` rounded to nearest on `like`'s stored scales and zeros (the fixed grid),
    codes clamped to the grid's signed or unsigned range (±2^(b−1) for signed grids, whose
    sign quail folds into the codes)."""
    groups = weight.reshape(-1, grid.group)
    shifted = groups if like.zero is None else groups - like.zero
    half = 2 ** (grid.bits - 1)
    low, high = (-half, half) if grid.symmetric else (0, 2 * half - 1)
    group_codes = torch.round(shifted / like.scale).clamp_(low, high)
    group_codes = group_codes.to(torch.int8 if grid.symmetric else torch.uint8)
    return QuantizedTensor(like.spec, like.shape, 0, group_codes, like.scale, like.zero)


def convert(linear, spec: QuantSpec):
    raise QuailError(
        f"{spec.name} runs inside llama.cpp, not as a PyTorch layer: evaluate it with "
        "quail evaluate / quail.evaluate, or write the file with quail export"
    )
