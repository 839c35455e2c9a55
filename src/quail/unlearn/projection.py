"""Ship an unlearned model on the grid its weights will be quantized to, by error-feedback
rounding (GPTQ's rule, on the original's fixed grid) instead of nearest rounding.

Why: unlearning moves most weights by far less than half a step Δ/2, so nearest rounding gives
back the original's codes and the forgetting with them. Error-feedback rounding picks each
column's codes to reproduce the unlearned layer's outputs on the forget and retain inputs,
carrying each column's rounding error into the columns not yet rounded (through the inverse of
their Gram matrix XᵀX), so a change too small to move any one weight still moves some. The
group extremes stay where they are, so every scale and zero point is the original's and
quantizing the result under the spec changes nothing: what the user quantizes is what was
measured. docs/METHODS.md, "Error-feedback rounding", has the runs.
"""

import copy

import torch
from torch import nn

from quail.data.batches import Encoded, collate
from quail.quant import QuantSpec, quantize_tensor
from quail.quant.grouping import from_groups, to_groups
from quail.quant.rtn import code_range, group_extremes

DAMPING = 0.01  # added to XᵀX's diagonal, as a share of its mean (GPTQ's default)


@torch.no_grad()
def gram_matrices(model: nn.Module, names: list[str], encoded: list[Encoded], pad_id: int):
    """{layer name: XᵀX} of each named linear layer's inputs over the examples' tokens."""
    grams, modules, hooks = {}, dict(model.named_modules()), []
    mask, products = None, {}  # this batch's XᵀX by input tensor: q, k, v (gate, up) share one
    device = next(model.parameters()).device

    def record(name):
        def hook(module, args, output):
            inputs = args[0]
            if id(inputs) not in products:  # the entry holds the tensor: its id stays its own
                x = inputs[mask].double()
                products[id(inputs)] = (inputs, x.T @ x)
            grams[name] = grams.get(name, 0) + products[id(inputs)][1]

        return hook

    for name in names:
        hooks.append(modules[name].register_forward_hook(record(name)))
    try:
        for start in range(0, len(encoded), 16):
            batch = collate(encoded, list(range(start, min(start + 16, len(encoded)))), pad_id)
            mask = batch.attention_mask.to(device).bool()
            model(input_ids=batch.input_ids.to(device), attention_mask=mask.long())
            products.clear()
    finally:
        for hook in hooks:
            hook.remove()
    return grams


@torch.no_grad()
def round_with_feedback(
    weight: torch.Tensor, original: torch.Tensor, spec: QuantSpec, gram: torch.Tensor
) -> torch.Tensor:
    """`weight` on `original`'s grid (an rtn spec grouped along input columns), column by
    column, each column's rounding error carried into the later ones; extremes stay."""
    grid = quantize_tensor(original, spec)
    groups, pad = to_groups(original, spec)
    scale = from_groups(grid.scale.expand_as(groups), weight.shape, pad)  # float32, as stored
    zero = (
        None if grid.zero is None else from_groups(grid.zero.expand_as(groups), weight.shape, pad)
    )
    low, high = group_extremes(groups, spec.symmetric)
    extreme = from_groups((groups <= low) | (groups >= high), weight.shape, pad)
    lowest, highest = code_range(spec.bits, spec.symmetric)
    lowest = -highest if spec.symmetric else lowest  # -2^(b-1)·Δ would be past the absmax
    damped = gram + DAMPING * gram.diag().mean() * torch.eye(len(gram), dtype=gram.dtype)
    inverse = torch.linalg.cholesky(
        torch.cholesky_inverse(torch.linalg.cholesky(damped)), upper=True
    )
    w, out = weight.double().clone(), torch.empty_like(weight)
    for i in range(w.shape[1]):
        shift = 0.0 if zero is None else zero[:, i].double()
        codes = torch.round((w[:, i] - shift) / scale[:, i].double()).clamp(lowest, highest).float()
        value = codes * scale[:, i] if zero is None else codes * scale[:, i] + zero[:, i]
        out[:, i] = torch.where(extreme[:, i], original[:, i], value)  # rtn_values' arithmetic
        error = (w[:, i] - out[:, i].double()) / inverse[i, i]
        w[:, i + 1 :] -= error[:, None] * inverse[i, i + 1 :][None, :]
    return out


def project(
    model: nn.Module,
    linears: dict[str, tuple[torch.Tensor, QuantSpec]],
    encoded: list[Encoded],
    pad_id: int,
) -> nn.Module:
    """A copy of `model` with each named linear layer's weight rounded with feedback onto the
    grid of its original weight (`linears`: name -> (original weight, spec)), reproducing the
    layer's outputs on the `encoded` examples."""
    grams = gram_matrices(model, list(linears), encoded, pad_id)
    shipped = copy.deepcopy(model)
    modules = dict(shipped.named_modules())
    for name, (original, spec) in linears.items():
        weight = modules[name].weight
        rounded = round_with_feedback(
            weight.detach().float().cpu(), original.float().cpu(), spec, grams[name].cpu()
        )
        weight.data.copy_(rounded.to(weight.device, weight.dtype))
    return shipped
