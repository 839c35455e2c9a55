"""A whole model under a spec: fake-quantized (every nn.Linear weight replaced by its
dequantized value, `quantize_model`) or as it runs (each nn.Linear the backend's own layer,
`load_quantized`).

The output layer (lm_head) and embeddings are skipped by default, as deployment backends
(bitsandbytes, GPTQ, AWQ, HQQ) do; both can be included, under the spec or, for specs with an
`+emb-` part, under the embeddings' own spec.
"""

import copy
import os

import torch
from torch import nn

from quail.errors import QuailError
from quail.quant.backends import MODEL_LEVEL, adapter
from quail.quant.spec import QuantSpec
from quail.quant.tensor import fake_quantize


def quantizable_modules(
    model: nn.Module, include_lm_head: bool = False, include_embeddings: bool = False
) -> list[tuple[str, nn.Module]]:
    """(name, module) pairs whose `.weight` quantization covers, in model order."""
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    chosen = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            if module is output and not include_lm_head:
                continue
            chosen.append((name, module))
        elif isinstance(module, nn.Embedding) and include_embeddings:
            chosen.append((name, module))
    return chosen


def embedding_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules `include_lm_head` and `include_embeddings` add: what an `+emb-` spec covers."""
    plain = {name for name, _ in quantizable_modules(model)}
    return [(n, m) for n, m in quantizable_modules(model, True, True) if n not in plain]


def quantized_modules(
    model: nn.Module,
    spec: QuantSpec,
    include_lm_head: bool = False,
    include_embeddings: bool = False,
) -> list[tuple[str, nn.Module, QuantSpec]]:
    """(name, module, the spec its weight is quantized under) for every weight `quantize_model`
    changes: an `+emb-` part's embeddings and lm_head under that part first, then the layers
    under the linear part; a weight shared by several modules (tied embeddings) once."""
    if spec.is_fp:
        return []
    parts = [(embedding_modules(model), spec.embeddings)] if spec.embeddings is not None else []
    parts.append((quantizable_modules(model, include_lm_head, include_embeddings), spec.linear))
    chosen, done = [], set()
    for modules, part in parts:
        for name, module in modules:
            if id(module.weight) not in done:
                chosen.append((name, module, part))
                done.add(id(module.weight))
    return chosen


@torch.no_grad()
def quantize_model(
    model: nn.Module,
    spec: QuantSpec,
    include_lm_head: bool = False,
    include_embeddings: bool = False,
) -> nn.Module:
    """Return a fake-quantized deep copy; the input model is left untouched.

    Including either the embeddings or the lm_head of a tied model quantizes both. A spec with
    an `+emb-` part quantizes the embeddings and the lm_head under that part, whatever the flags
    say.
    """
    quantized = copy.deepcopy(model)
    for _, module, part in quantized_modules(quantized, spec, include_lm_head, include_embeddings):
        module.weight.copy_(fake_quantize(module.weight, part))
    return quantized


@torch.no_grad()
def quantize_embeddings(model: nn.Module, spec: QuantSpec) -> None:
    """Fake-quantize the embeddings and the lm_head in place under `spec` (a backend model's,
    whose layers the backend quantized); a tied weight once."""
    weights = {id(m.weight): m.weight for _, m in embedding_modules(model)}
    for weight in weights.values():
        weight.copy_(fake_quantize(weight, spec))


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
