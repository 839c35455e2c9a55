"""bitsandbytes: NF4/FP4 (block 64, optional double quantization) and LLM.int8, on CPU.

Codes are the nibbles `quantize_4bit` packs (high nibble first) with the block absmax the
kernels decode with: with double quantization that absmax is itself 8-bit quantized, so the
grid is the NF4/FP4 grid of slightly rounded scales. LLM.int8 stores int8 rows with absmax/127.
"""

import logging

import torch
from torch import nn

from quail.quant.grouping import to_groups
from quail.quant.spec import QuantSpec
from quail.quant.tensor import QuantizedTensor

# Two bitsandbytes warnings that are noise here: at import, that it cannot fetch an optional CPU
# kernel from the hub (quail never downloads at run time; the built-in kernel is used), and on
# every LLM.int8 call, that inputs are cast to fp16 (which is what LLM.int8 does).
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)

import bitsandbytes as bnb  # noqa: E402
import bitsandbytes.functional as F  # noqa: E402

LLM_INT8_THRESHOLD = 6.0  # transformers' default outlier threshold for LLM.int8


def codes(weight: torch.Tensor, spec: QuantSpec) -> QuantizedTensor:
    groups, pad = to_groups(weight, spec)
    if spec.method == "rtn":  # LLM.int8 quantizes the fp16 copy of each row, as Int8Params does
        row_codes, row_absmax, _ = F.int8_vectorwise_quant(groups.to(torch.float16))
        return QuantizedTensor(spec, weight.shape, pad, row_codes, row_absmax[:, None] / 127)
    packed, state = F.quantize_4bit(
        weight.detach().contiguous(),
        blocksize=spec.group_size,
        quant_type=spec.method,
        compress_statistics=spec.backend == "bnb-dq",
    )
    nibbles = torch.stack([packed.flatten() >> 4, packed.flatten() & 15], dim=1).flatten()
    block_codes = torch.zeros(groups.numel(), dtype=torch.uint8)
    block_codes[: weight.numel()] = nibbles[: weight.numel()]
    absmax = state.absmax
    if state.nested:
        absmax = F.dequantize_blockwise(state.absmax, state.state2) + state.offset
    scale = absmax.float().reshape(-1, 1)
    return QuantizedTensor(spec, weight.shape, pad, block_codes.reshape(groups.shape), scale)


def convert(linear: nn.Linear, spec: QuantSpec) -> nn.Module:
    """A bitsandbytes layer holding `linear`'s weight quantized; it computes in the weight's
    dtype (4-bit) or with LLM.int8's mixed int8/fp16 matmul."""
    has_bias = linear.bias is not None
    weight = linear.weight.detach().clone()
    if spec.method == "rtn":
        layer = bnb.nn.Linear8bitLt(
            linear.in_features,
            linear.out_features,
            bias=has_bias,
            has_fp16_weights=False,
            threshold=LLM_INT8_THRESHOLD,
        )
        layer.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
    else:
        double = spec.backend == "bnb-dq"
        layer = bnb.nn.Linear4bit(
            linear.in_features,
            linear.out_features,
            bias=has_bias,
            compute_dtype=weight.dtype,
            compress_statistics=double,
            quant_type=spec.method,
        )
        layer.weight = bnb.nn.Params4bit(
            weight,
            requires_grad=False,
            compress_statistics=double,
            quant_type=spec.method,
            blocksize=spec.group_size,
        )
    if has_bias:
        layer.bias = nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
    return layer.to(linear.weight.device)  # the move is what quantizes
