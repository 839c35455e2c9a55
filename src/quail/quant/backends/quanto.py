"""optimum-quanto: qint2/qint4 min/max groups with a float shift, qint8 per-channel absmax.

quanto's dequantization is `code·scale − shift`, i.e. our asymmetric RTN with zero = −shift.
quanto picks its own group size (128, or 96/64/32 when 128 does not divide the columns); quail
sets the spec's group size explicitly, so write e.g. `quanto-int4-g96` to match quanto's choice
on a 576-wide model.
"""

import torch
from optimum.quanto import qint2, qint4, qint8, quantize_weight
from optimum.quanto.nn import quantize_module
from optimum.quanto.tensor.optimizers import AbsmaxOptimizer, MaxOptimizer
from torch import nn

from quail.quant.grouping import to_groups
from quail.quant.spec import QuantSpec
from quail.quant.tensor import QuantizedTensor

QTYPES = {2: qint2, 4: qint4, 8: qint8}


def codes(weight: torch.Tensor, spec: QuantSpec) -> QuantizedTensor:
    _, pad = to_groups(weight, spec)  # checks that the group divides the columns
    shape, weight = weight.shape, weight.detach().reshape(weight.shape[0], -1)
    qtype = QTYPES[spec.bits]
    if spec.bits == 8:
        scale = AbsmaxOptimizer()(weight, qtype=qtype, axis=0)
        data = quantize_weight(weight, qtype, axis=0, scale=scale, optimized=False)._data
        return QuantizedTensor(spec, shape, pad, data, scale.float())
    scale, shift = MaxOptimizer()(weight, qtype=qtype, axis=0, group_size=spec.group_size)
    quantized = quantize_weight(
        weight, qtype, 0, scale, shift, group_size=spec.group_size, optimized=False
    )
    data = quantized._data.unpack()
    return QuantizedTensor(spec, shape, pad, data, scale.float(), -shift.float())


def convert(linear: nn.Linear, spec: QuantSpec) -> nn.Module:
    """A frozen quanto QLinear: weights stored quantized, dequantized by quanto's kernels."""
    layer = quantize_module(linear, weights=QTYPES[spec.bits])
    if spec.bits < 8:
        layer.weight_group_size = spec.group_size
    layer.freeze()
    return layer


def fixed_weight(layer: nn.Module) -> torch.Tensor | None:
    """The weight a frozen QLinear multiplies by on CPU (its dequantized weight; the bias is
    added after the matmul); on GPUs quanto may run fused int4 kernels instead, so there it
    is None."""
    if layer.weight.device.type != "cpu":
        return None
    return layer.qweight.dequantize()
