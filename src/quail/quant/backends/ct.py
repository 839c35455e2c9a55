"""compressed-tensors, the format llm-compressor writes: WnA16 round-to-nearest in groups.

This is llm-compressor's W4A16 scheme with its min/max observer and no GPTQ step: per group,
`scale = absmax / ((2^B − 1) / 2)` (absmax/7.5 at 4 bits, where our symmetric RTN uses
absmax/7), codes in [−2^(B−1), 2^(B−1) − 1], scales in the weight's dtype.
"""

import torch
from compressed_tensors.compressors import BaseCompressor
from compressed_tensors.config import CompressionFormat
from compressed_tensors.quantization import (
    QuantizationArgs,
    QuantizationScheme,
    QuantizationStatus,
    initialize_module_for_quantization,
)
from compressed_tensors.quantization.lifecycle.forward import quantize
from compressed_tensors.quantization.utils import calculate_qparams
from torch import nn

from quail.quant.grouping import to_groups
from quail.quant.spec import QuantSpec
from quail.quant.tensor import QuantizedTensor


def arguments(spec: QuantSpec) -> QuantizationArgs:
    return QuantizationArgs(
        num_bits=spec.bits, type="int", symmetric=True, strategy="group", group_size=spec.group_size
    )


def qparams(weight: torch.Tensor, spec: QuantSpec):
    """Scales and zero points (rows, groups per row), as llm-compressor's min/max observer."""
    groups = weight.detach().reshape(weight.shape[0], -1, spec.group_size)
    return calculate_qparams(groups.amin(-1), groups.amax(-1), arguments(spec))


def codes(weight: torch.Tensor, spec: QuantSpec) -> QuantizedTensor:
    groups, pad = to_groups(weight, spec)  # checks that the group divides the columns
    scale, zero_point = qparams(weight, spec)
    values = quantize(weight.detach(), scale, zero_point, arguments(spec))
    group_codes = values.reshape(groups.shape).to(torch.int8)
    return QuantizedTensor(spec, weight.shape, pad, group_codes, scale.float().reshape(-1, 1))


def convert(linear: nn.Linear, spec: QuantSpec) -> nn.Module:
    """The layer as a checkpoint of llm-compressor's runs in transformers on CPU: scales from
    its observer, weights packed as int4 in the `pack-quantized` format, then decompressed once
    (transformers' `run_compressed=False`). Its output equals that of the frozen layer, which
    quantizes and dequantizes its weight on every call, without that per-call work."""
    scale, zero_point = qparams(linear.weight, spec)
    scheme = QuantizationScheme(targets=["Linear"], weights=arguments(spec))
    initialize_module_for_quantization(linear, scheme)
    with torch.no_grad():
        linear.weight_scale.copy_(scale)
        linear.weight_zero_point.copy_(zero_point)
    linear.quantization_status = QuantizationStatus.FROZEN
    packer = BaseCompressor.load_from_registry(CompressionFormat.pack_quantized.value)
    packer.compress_module(linear)
    packer.decompress_module(linear)
    return linear
