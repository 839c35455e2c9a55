"""HQQ (half-quadratic quantization) through its native API, 4-bit and below in groups.

HQQ starts from min/max RTN and then optimises each group's zero point (and so the grid) to
minimise an l_p (p < 1) reconstruction error; codes are rounded to nearest on the final grid.
Dequantization is `(code − zero)·scale`, i.e. our asymmetric RTN with zero = −zero·scale.
Scales and zeros are kept in the compute dtype (the weight's dtype), as HQQLinear keeps them.
"""

import torch
from hqq.core.quantize import BaseQuantizeConfig, HQQBackend, HQQLinear, Quantizer
from torch import nn

from quail.quant.grouping import to_groups
from quail.quant.spec import QuantSpec
from quail.quant.tensor import QuantizedTensor


def config(spec: QuantSpec) -> dict:
    return BaseQuantizeConfig(nbits=spec.bits, group_size=spec.group_size)


def codes(weight: torch.Tensor, spec: QuantSpec) -> QuantizedTensor:
    _, pad = to_groups(weight, spec)  # checks that the group divides the columns
    params = dict(config(spec)["weight_quant_params"], bitpack=False)
    group_codes, meta = Quantizer.quantize(
        weight.detach(), compute_dtype=weight.dtype, device=weight.device.type, **params
    )
    scale = meta["scale"].to(weight.dtype).float()
    zero = meta["zero"].to(weight.dtype).float()
    group_codes = group_codes.to(torch.uint8)
    return QuantizedTensor(spec, weight.shape, pad, group_codes, scale, -zero * scale)


def convert(linear: nn.Linear, spec: QuantSpec) -> nn.Module:
    """An HQQLinear holding the packed codes; it dequantizes in the weight's dtype."""
    return HQQLinear(
        linear,
        config(spec),
        compute_dtype=linear.weight.dtype,
        device=linear.weight.device.type,
        del_orig=False,
    )


def fixed_weight(layer: HQQLinear) -> torch.Tensor | None:
    """The weight HQQ's plain PyTorch forward (its default backend) multiplies by:
    `matmul(x, dequantize().T)`, then `+= bias`. None on other devices or backends, whose
    kernels may compute otherwise."""
    plain = (HQQBackend.PYTORCH, HQQBackend.PYTORCH_FORWARD)
    if layer.W_q.device.type != "cpu" or HQQLinear.backend not in plain:
        return None
    return layer.dequantize()
