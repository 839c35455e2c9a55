"""Reference quantizers (round-to-nearest integer grids, the NF4/FP4 codebooks) and adapters
to real backends (bitsandbytes, optimum-quanto, HQQ, compressed-tensors)."""

from quail.quant.model import load_quantized, quantizable_modules, quantize_model, quantized_modules
from quail.quant.spec import QuantSpec, parse_spec
from quail.quant.straight_through import (
    grid_distance,
    quantized_weights,
    snap_onto,
    ste_weights,
    straight_through_weight,
)
from quail.quant.tensor import QuantizedTensor, fake_quantize, quantize_tensor

__all__ = [
    "QuantSpec",
    "QuantizedTensor",
    "fake_quantize",
    "grid_distance",
    "load_quantized",
    "parse_spec",
    "quantizable_modules",
    "quantize_model",
    "quantized_modules",
    "quantize_tensor",
    "quantized_weights",
    "snap_onto",
    "ste_weights",
    "straight_through_weight",
]
