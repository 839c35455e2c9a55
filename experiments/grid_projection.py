"""Ship an unlearned model on the deployment grid by error-feedback rounding (GPTQ's rule on a
fixed grid) instead of nearest rounding (docs/METHODS.md, "Error-feedback rounding").

Nearest rounding of an unlearned model whose weights moved under half a step gives back the
original's codes: the forgetting is gone. Error-feedback rounding chooses each column's codes
to reproduce the unlearned layer's outputs on the forget and retain inputs, carrying each
column's rounding error into the columns not yet rounded, so a change too small to move any one
weight can still move some. Scales and zero points stay the original's (group extremes are
kept), so quantizing the result under the spec changes nothing.

    python experiments/grid_projection.py DATA BASE UNLEARNED [UNLEARNED...] --spec int4
"""

import argparse
import copy

import torch

from quail.data import load_unlearning_sets
from quail.data.batches import collate, encode
from quail.evaluate import evaluate, load_eval_data
from quail.models import load_model, load_tokenizer
from quail.quant import parse_spec, quantize_tensor, quantized_modules
from quail.quant.grouping import to_groups
from quail.quant.rtn import code_range


def layer_inputs(model, tokenizer, examples, names) -> dict[str, torch.Tensor]:
    """Each named linear layer's Gram matrix XᵀX over the examples' non-padding tokens."""
    grams, hooks, modules = {}, [], dict(model.named_modules())
    encoded = encode(examples, tokenizer, 128, "projection")
    mask = None

    def hook(name):
        def record(module, args, output):
            x = args[0][mask].float()
            grams[name] = grams.get(name, 0) + x.T @ x

        return record

    for name in names:
        hooks.append(modules[name].register_forward_hook(hook(name)))
    with torch.no_grad():
        for start in range(0, len(encoded), 16):
            batch = collate(encoded, list(range(start, min(start + 16, len(encoded)))), 0)
            mask = batch.attention_mask.bool()
            model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    for h in hooks:
        h.remove()
    return grams


@torch.no_grad()
def project(weight, original, spec, gram, damp: float = 0.01) -> torch.Tensor:
    """`weight` rounded onto `original`'s grid, column by column, each rounding error carried
    into the later columns through the inverse Gram matrix (GPTQ); extremes stay."""
    grid = quantize_tensor(original, spec)
    scale = grid.scale.expand(-1, spec.group_size).reshape(weight.shape)
    zero = (
        None if grid.zero is None else grid.zero.expand(-1, spec.group_size).reshape(weight.shape)
    )
    groups, _ = to_groups(original, spec)
    extreme = (groups == groups.amax(1, keepdim=True)) | (groups == groups.amin(1, keepdim=True))
    if spec.symmetric:
        extreme = groups.abs() == groups.abs().amax(1, keepdim=True)
    extreme = extreme.reshape(weight.shape)
    low, high = code_range(spec.bits, spec.symmetric)
    low = -high if spec.symmetric else low  # -8·Δ would exceed the group's absmax
    h = gram.double() + damp * gram.diag().mean() * torch.eye(gram.shape[0], dtype=torch.double)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    w, out = weight.double().clone(), torch.empty_like(weight)
    for i in range(w.shape[1]):
        shift = 0 if zero is None else zero[:, i]
        codes = torch.round((w[:, i] - shift) / scale[:, i]).clamp(low, high)
        q = torch.where(extreme[:, i], original[:, i].double(), codes * scale[:, i] + shift)
        out[:, i] = q.float()
        err = (w[:, i] - q) / hinv[i, i]
        w[:, i + 1 :] -= err[:, None] * hinv[i, i + 1 :][None, :]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("base")
    parser.add_argument("unlearned", nargs="+")
    parser.add_argument("--spec", default="int4")
    parser.add_argument("--limit", type=int, default=200)
    args = parser.parse_args()
    spec = parse_spec(args.spec)
    tokenizer = load_tokenizer(args.base)
    base = load_model(args.base, dtype=torch.float32)
    forget, retain = load_unlearning_sets(args.data)
    data = load_eval_data(args.data, limit=args.limit)
    specs = ["fp", spec.name]
    show = ("knowmem_forget", "knowmem_retain")

    def report(label, model):
        scores = evaluate(model, data, specs, tokenizer)
        cells = [f"{s} " + " / ".join(f"{scores[s][m]:.1f}" for m in show) for s in specs]
        print(f"  {label:22s} forget / retain: {', '.join(cells)}", flush=True)

    report("original", base)
    for folder in args.unlearned:
        print(folder)
        unlearned = load_model(folder, dtype=torch.float32)
        report("unlearned", unlearned)
        layers = quantized_modules(unlearned, spec)
        grams = layer_inputs(unlearned, tokenizer, forget + retain, [n for n, _, _ in layers])
        originals = dict(base.named_modules())
        nearest, feedback = copy.deepcopy(unlearned), copy.deepcopy(unlearned)
        near_modules, feedback_modules = (
            dict(nearest.named_modules()),
            dict(feedback.named_modules()),
        )
        for name, module, part in layers:
            original = originals[name].weight.detach().float()
            weight = module.weight.detach().float()
            grid = quantize_tensor(original, part)
            near_modules[name].weight.data = quantize_tensor(weight, part, like=grid).dequantize()
            feedback_modules[name].weight.data = project(weight, original, part, grams[name])
        report("nearest rounding", nearest)
        report("error-feedback rounding", feedback)


if __name__ == "__main__":
    main()
