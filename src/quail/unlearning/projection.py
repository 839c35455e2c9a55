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

Speed: layers that read the same input (q, k, v; gate, up) share one Gram matrix and are
rounded as one matrix; layers of one shape across the blocks are rounded together, so the
column loop runs once per shape, not once per layer; and, as in GPTQ, a block of columns
carries its errors into the later columns in one matrix product.
"""

import copy
from contextlib import contextmanager

import torch
from torch import nn

from quail.data.batches import Encoded, collate
from quail.quant import QuantSpec, fake_quantize, quantize_tensor
from quail.quant.grouping import from_groups, to_groups
from quail.quant.rtn import code_range, group_extremes

DAMPING = 0.01  # added to XᵀX's diagonal, as a share of its mean (GPTQ's default)
BLOCK = 128  # columns whose errors reach the later columns in one product (GPTQ's lazy batch)


@torch.no_grad()
def gram_matrices(model: nn.Module, names: list[str], encoded: list[Encoded], pad_id: int):
    """[(layer names, XᵀX)]: the Gram matrix of the inputs over the examples' tokens, once for
    each group of named linear layers that read the same input."""
    modules, hooks = dict(model.named_modules()), []
    sums: dict[str, torch.Tensor] = {}  # first reader's name -> running XᵀX of its input
    first_reader: dict[str, str] = {}  # layer name -> the first layer that read its input
    seen: dict[int, tuple[torch.Tensor, str]] = {}  # this batch: id(input) -> (input, reader)
    mask = None
    device = next(model.parameters()).device

    def record(name):
        def hook(module, args, output):
            inputs = args[0]  # the entry holds the tensor, so its id stays its own
            first = seen.setdefault(id(inputs), (inputs, name))[1]
            first_reader.setdefault(name, first)
            if first == name:
                x = inputs[mask].float()
                sums[name] = sums.get(name, 0) + (x.T @ x).double()

        return hook

    for name in names:
        hooks.append(modules[name].register_forward_hook(record(name)))
    try:
        for start in range(0, len(encoded), 16):
            batch = collate(encoded, list(range(start, min(start + 16, len(encoded)))), pad_id)
            mask = batch.attention_mask.to(device).bool()
            model(input_ids=batch.input_ids.to(device), attention_mask=mask.long())
            seen.clear()
    finally:
        for hook in hooks:
            hook.remove()
    readers: dict[str, list[str]] = {}
    for name in names:
        readers.setdefault(first_reader[name], []).append(name)
    return [(group, sums[first]) for first, group in readers.items()]


def _grid(original: torch.Tensor, spec: QuantSpec):
    """(scale, zero point or None, is-a-group-extreme), each shaped like `original`."""
    grid = quantize_tensor(original, spec)
    groups, pad = to_groups(original, spec)
    scale = from_groups(grid.scale.expand_as(groups), original.shape, pad)  # float32, as stored
    zero = grid.zero
    if zero is not None:
        zero = from_groups(zero.expand_as(groups), original.shape, pad)
    low, high = group_extremes(groups, spec.symmetric)
    extreme = from_groups((groups <= low) | (groups >= high), original.shape, pad)
    return scale, zero, extreme


@torch.no_grad()
def round_with_feedback(
    weight: torch.Tensor, original: torch.Tensor, spec: QuantSpec, gram: torch.Tensor
) -> torch.Tensor:
    """`weight` on `original`'s grid (an rtn spec grouped along input columns), column by
    column, each column's rounding error carried into the later ones; extremes stay.
    Batched: (layers, rows, columns) weights with (layers, columns, columns) Gram matrices."""
    if weight.dim() == 2:
        return round_with_feedback(weight[None], original[None], spec, gram[None])[0]
    return _round(weight, original, [_grid(layer, spec) for layer in original], spec, gram)


def _round(weight, original, grids, spec: QuantSpec, gram):
    """round_with_feedback on a batch whose grids (scale, zero, extreme) are already known."""
    scale = torch.stack([s for s, _, _ in grids])
    zero = None if grids[0][1] is None else torch.stack([z for _, z, _ in grids])
    extreme = torch.stack([e for _, _, e in grids])
    lowest, highest = code_range(spec.bits, spec.symmetric)
    lowest = -highest if spec.symmetric else lowest  # -2^(b-1)·Δ would be past the absmax
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype)
    damped = gram + DAMPING * gram.diagonal(dim1=1, dim2=2).mean(1)[:, None, None] * eye
    inverse = torch.linalg.cholesky(
        torch.cholesky_inverse(torch.linalg.cholesky(damped)), upper=True
    )
    # columns first, so that each column and each block of columns is contiguous in memory
    scale, extreme, original = (t.transpose(1, 2).contiguous() for t in (scale, extreme, original))
    zero = None if zero is None else zero.transpose(1, 2).contiguous()
    w = weight.transpose(1, 2).double().contiguous()
    out = torch.empty_like(original)
    columns = w.shape[1]
    with one_thread():  # thousands of small ops
        for begin in range(0, columns, BLOCK):
            end = min(begin + BLOCK, columns)
            errors = w.new_empty(w.shape[0], end - begin, w.shape[2])
            for i in range(begin, end):
                shift = 0.0 if zero is None else zero[:, i].double()
                codes = torch.round((w[:, i] - shift) / scale[:, i].double())
                codes = codes.clamp(lowest, highest).float()
                value = codes * scale[:, i]
                if zero is not None:
                    value = value + zero[:, i]  # rtn_values' arithmetic
                out[:, i] = torch.where(extreme[:, i], original[:, i], value)
                error = (w[:, i] - out[:, i].double()) / inverse[:, i, i, None]
                w[:, i + 1 : end] -= inverse[:, i, i + 1 : end, None] * error[:, None, :]
                errors[:, i - begin] = error
            w[:, end:] -= inverse[:, begin:end, end:].transpose(1, 2) @ errors
    return out.transpose(1, 2)


@contextmanager
def one_thread():
    """torch on one CPU thread: the column loop is thousands of small ops, and on a CPU shared
    with other work handing each to a second thread costs more than it saves (SmolLM2's gate
    and up layers: 11.6 s on one thread, 33 s on two; benchmarks/rounding_speed.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def project(
    model: nn.Module,
    linears: dict[str, tuple[torch.Tensor, QuantSpec]],
    encoded: list[Encoded],
    pad_id: int,
    nearest: dict[str, QuantSpec] | None = None,
) -> nn.Module:
    """A copy of `model` with each named linear layer's weight rounded with feedback onto the
    grid of its original weight (`linears`: name -> (original weight, spec)), reproducing the
    layer's outputs on the `encoded` examples; the `nearest` modules (an `+emb-` part's
    embeddings, which have no input Gram matrix) rounded to nearest, as the spec would."""
    shipped = copy.deepcopy(model)
    modules = dict(shipped.named_modules())
    for name, spec in (nearest or {}).items():
        weight = modules[name].weight
        weight.data.copy_(fake_quantize(weight.detach().float(), spec).to(weight.dtype))
    together: dict[tuple, list] = {}  # (spec, rows, columns) -> [(layer names, their Gram)]
    for names, gram in gram_matrices(model, list(linears), encoded, pad_id):
        by_spec: dict[QuantSpec, list[str]] = {}
        for name in names:
            by_spec.setdefault(linears[name][1], []).append(name)
        for spec, group in by_spec.items():
            rows = sum(len(linears[name][0]) for name in group)
            together.setdefault((spec, rows, len(gram)), []).append((group, gram.cpu()))
    for (spec, _, _), items in together.items():
        groups = [group for group, _ in items]
        originals = {name: linears[name][0].float().cpu() for group in groups for name in group}
        grids = {name: _grid(original, spec) for name, original in originals.items()}
        rounded = _round(
            _stacked(groups, lambda n: modules[n].weight.detach().float().cpu()),
            _stacked(groups, originals.get),
            [tuple(_joined([grids[n][k] for n in group]) for k in range(3)) for group in groups],
            spec,
            torch.stack([gram for _, gram in items]),
        )
        for group, layer in zip(groups, rounded, strict=True):
            sizes = [len(originals[name]) for name in group]
            for name, part in zip(group, layer.split(sizes), strict=True):
                weight = modules[name].weight
                weight.data.copy_(part.to(weight.device, weight.dtype))
    return shipped


def _stacked(groups: list[list[str]], tensor_of) -> torch.Tensor:
    """(groups, rows of the group's layers one after another, columns)."""
    return torch.stack([_joined([tensor_of(name) for name in group]) for group in groups])


def _joined(tensors: list) -> torch.Tensor | None:
    return None if tensors[0] is None else torch.cat(tensors)
