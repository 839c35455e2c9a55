"""Real quantization backends behind quail's specs: bitsandbytes, optimum-quanto, HQQ,
compressed-tensors (llm-compressor's format), and GPTQ/AWQ through gptqmodel.

Each backend is an adapter module with two functions:

- `codes(weight, spec) -> QuantizedTensor`: the backend's own codes and scales for one
  tensor, in quail's grouped layout, so bucket overlap and steps are measured on the grid
  users deploy (`quantize_tensor` dispatches here for backend specs);
- `convert(linear, spec) -> nn.Module`: the layer the backend runs, used by `load_quantized`;
- optionally `fixed_weight(layer) -> Tensor | None`: the weight the layer's forward multiplies
  by, where that forward is exactly `matmul(x, weight.T)`, then `+ bias`, on a weight it
  dequantizes on every call (HQQ and quanto on CPU), so evaluation can dequantize it once.

A model-level backend (GPTQ, AWQ: they calibrate on text) has `load_model(model, spec,
calibration, tokenizer, include_lm_head)` instead of `convert`, and its `codes` round to nearest
on its grid.

The library is imported only when a backend spec is used; a missing one is a QuailError
naming the pip extra, which is spelled like the spec's prefix.
"""

import copy
import importlib
import os
from dataclasses import dataclass, replace

import torch
from torch import nn

from quail.errors import QuailError
from quail.quant.model import quantizable_modules, quantize_embeddings, quantize_model
from quail.quant.spec import QuantSpec
from quail.quant.tensor import QuantizedTensor, quantize_tensor


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


def backend_codes(
    weight: torch.Tensor, spec: QuantSpec, like: QuantizedTensor | None = None
) -> QuantizedTensor:
    """The backend's codes and scales for `weight` (what `quantize_tensor` returns for backend
    specs). With `like` (fixed grid), `weight` is rounded to nearest on `like`'s backend scales
    and zeros by quail's own rounding (GGUF specs: on the tensor's own ggml type's range)."""
    if like is not None and spec.backend.startswith("gguf-"):
        return adapter(spec).codes(weight, spec, like)
    if like is not None:
        grid = replace(spec, backend=None)
        if like.spec == spec:
            like = replace(like, spec=grid)
        return replace(quantize_tensor(weight, grid, like=like), spec=spec)
    return adapter(spec).codes(weight, spec)


@torch.no_grad()
def load_quantized(
    source: nn.Module | str | os.PathLike,
    spec: QuantSpec,
    include_lm_head: bool = False,
    calibration=None,
    tokenizer=None,
    dequantize_once: bool = False,
) -> nn.Module:
    """The model as it runs under `spec`: a model folder or in-memory model, copied, with each
    quantizable nn.Linear replaced by the backend's own layer. Reference specs give the
    fake-quantized copy of `quantize_model`. The source model is left untouched.

    GPTQ and AWQ specs quantize the whole model on `calibration` (a list of texts, tokenized
    with `tokenizer`, or of token id tensors); None means quail's generic English text. A
    folder's own tokenizer is used when none is given. Other specs ignore both.

    `dequantize_once` (what evaluation uses) replaces each layer whose forward is a plain
    matmul on a weight it dequantizes on every call (the adapter's `fixed_weight`) by a
    `DequantizedLinear` holding that weight: the same outputs bit for bit, without
    re-dequantizing every weight at every decoding step (BENCHMARKS.md, "Evaluation cost"), at
    the memory of a full-precision copy of those weights instead of their packed codes."""
    if not isinstance(source, nn.Module):
        from quail.models import load_model, load_tokenizer  # transformers loads only here

        if tokenizer is None and spec.backend in MODEL_LEVEL:
            tokenizer = load_tokenizer(source)
        source = load_model(source)
    if spec.backend is None:
        return quantize_model(source, spec, include_lm_head=include_lm_head)
    module = adapter(spec)
    include_lm_head = include_lm_head and spec.embeddings is None  # else under `+emb-`, below
    _check_groups(source, spec, include_lm_head)
    if spec.backend in MODEL_LEVEL:
        return module.load_model(source, spec, calibration, tokenizer, include_lm_head)
    fixed_weight = getattr(module, "fixed_weight", None) if dequantize_once else None
    model = copy.deepcopy(source)
    for name, linear in quantizable_modules(model, include_lm_head=include_lm_head):
        parent_name, _, child = name.rpartition(".")
        layer = module.convert(linear, spec)
        weight = fixed_weight(layer) if fixed_weight else None
        if weight is not None:
            layer = DequantizedLinear(weight, layer.bias)
        setattr(model.get_submodule(parent_name), child, layer)
    if spec.embeddings is not None:
        quantize_embeddings(model, spec.embeddings)
    return model.eval()


class DequantizedLinear(nn.Module):
    """A backend layer's forward on its weight dequantized once: `matmul(x, W.T)`, then the
    bias added, in that order (nn.Linear's fused `addmm` rounds a biased layer differently)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.weight = nn.Parameter(weight.detach(), requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(bias.detach(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.matmul(x, self.weight.t())
        return out if self.bias is None else out + self.bias


def _check_groups(model: nn.Module, spec: QuantSpec, include_lm_head: bool) -> None:
    if spec.granularity != "group" or spec.method != "rtn":
        return
    for name, linear in quantizable_modules(model, include_lm_head=include_lm_head):
        columns = linear.weight.shape[1]
        if columns % spec.group_size:
            raise QuailError(
                f"group size {spec.group_size} of spec {spec.name} does not divide the {columns} "
                f"input columns of {name}: pick a group size that divides {columns}"
            )
