"""Fake-quantize a whole model: every nn.Linear weight replaced by its dequantized value.

The output layer (lm_head) and embeddings are skipped by default, as deployment backends
(bitsandbytes, GPTQ, AWQ, HQQ) do; both can be included, under the spec or, for specs with an
`+emb-` part, under the embeddings' own spec.
"""

import copy

import torch
from torch import nn

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
