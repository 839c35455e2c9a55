"""Real quantization backends behind quail's specs: bitsandbytes, optimum-quanto, HQQ,
compressed-tensors (llm-compressor's format), and GPTQ/AWQ through gptqmodel.

Each backend is an adapter module with two functions:

- `codes(weight, spec) -> QuantizedTensor`: the backend's own codes and scales for one
  tensor, in quail's grouped layout, so bucket overlap and steps are measured on the grid
  users deploy (`quantize_tensor` calls it for backend specs);
- `convert(linear, spec) -> nn.Module`: the layer the backend runs, which `load_quantized`
  (quail.quant.model) puts in place of each nn.Linear;
- optionally `fixed_weight(layer) -> Tensor | None`: the weight the layer's forward multiplies
  by, where that forward is exactly `matmul(x, weight.T)`, then `+ bias`, on a weight it
  dequantizes on every call (HQQ and quanto on CPU), so evaluation can dequantize it once.

A model-level backend (GPTQ, AWQ: they calibrate on text) has `load_model(model, spec,
calibration, tokenizer, include_lm_head)` instead of `convert`, and its `codes` round to nearest
on its grid.

This module is the registry: which adapter serves which spec prefix. The library is imported
only when a backend spec is used; a missing one is a QuailError naming the pip extra, which is
spelled like the spec's prefix.
"""

import importlib
from dataclasses import dataclass

from quail.errors import QuailError
from quail.quant.spec import QuantSpec


@dataclass(frozen=True)
class Backend:
    package: str  # what pip installs
    module: str  # what the adapter imports
    extra: str  # quail-unlearn[extra]
    adapter: str  # quail module with codes() and convert()


BACKENDS = {
    "bnb": Backend("bitsandbytes", "bitsandbytes", "bnb", "quail.quant.backends.bnb"),
    "quanto": Backend("optimum-quanto", "optimum.quanto", "quanto", "quail.quant.backends.quanto"),
    "hqq": Backend("hqq", "hqq.core.quantize", "hqq", "quail.quant.backends.hqq"),
    "ct": Backend("compressed-tensors", "compressed_tensors", "ct", "quail.quant.backends.ct"),
    "gptq": Backend("gptqmodel", "gptqmodel", "gptq", "quail.quant.backends.gptq"),
    "awq": Backend("gptqmodel", "gptqmodel", "gptq", "quail.quant.backends.gptq"),
}


MODEL_LEVEL = ("gptq", "awq")  # backends that quantize whole models on calibration text


def backend_of(spec: QuantSpec) -> Backend:
    return BACKENDS[spec.backend.removesuffix("-dq")]


def check_installed(spec: QuantSpec) -> None:
    """Fail now, in one line naming the install, where a spec's library is missing: a study or
    an evaluation checks this before its long work, not when it first quantizes."""
    if not spec.backend:
        return
    if spec.backend.startswith("gguf-"):
        from quail.gguf.llamacpp import llama_cpp

        llama_cpp()
    else:
        adapter(spec)


def adapter(spec: QuantSpec):
    """The adapter module for a backend spec, or a one-line error naming the extra to install.
    GGUF specs' adapter is quail.gguf.codes, which names llama.cpp's install when it runs."""
    if spec.backend.startswith("gguf-"):
        return importlib.import_module("quail.gguf.codes")
    backend = backend_of(spec)
    try:
        return importlib.import_module(backend.adapter)  # which imports the library
    except ImportError as error:
        reason = str(error).splitlines()[0] if str(error) else "import failed"
        raise QuailError(
            f"spec {spec.name} needs {backend.package}, which cannot be imported ({reason}): "
            f'pip install "quail-unlearn[{backend.extra}]"'
        ) from None
