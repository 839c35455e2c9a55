"""Reference quantizers: round-to-nearest integer grids and the NF4/FP4 codebooks."""

from quail.quant.model import quantizable_linears, quantizable_modules, quantize_model
from quail.quant.spec import QuantSpec, parse_spec
from quail.quant.tensor import QuantizedTensor, fake_quantize, quantize_tensor

__all__ = [
    "QuantSpec",
    "QuantizedTensor",
    "fake_quantize",
    "parse_spec",
    "quantizable_linears",
    "quantizable_modules",
    "quantize_model",
    "quantize_tensor",
]
