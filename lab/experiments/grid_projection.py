"""An unlearned model shipped on the deployment grid by nearest rounding (what the user's
quantizer does) and by error-feedback rounding (quail.unlearning.projection), side by side
(docs/METHODS.md, "Error-feedback rounding").

    python lab/experiments/grid_projection.py DATA BASE UNLEARNED [UNLEARNED...] --spec int4
"""

import argparse

import torch
from torch import nn

from quail.data import load_unlearning_sets
from quail.data.batches import encode
from quail.evaluation import evaluate, load_eval_data
from quail.models import load_model, load_tokenizer
from quail.quant import parse_spec, quantize_model, quantized_modules
from quail.unlearning.projection import project


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
    encoded = encode(forget + retain, tokenizer, 256, "projection")
    data = load_eval_data(args.data, limit=args.limit)
    linears = {
        name: (module.weight.detach().clone(), part)
        for name, module, part in quantized_modules(base, spec)
        if isinstance(module, nn.Linear)
    }

    def report(label, model):
        scores = evaluate(model, data, ["fp", spec.name], tokenizer)
        cells = [
            f"{s} {scores[s]['knowmem_forget']:.1f} / {scores[s]['knowmem_retain']:.1f}"
            for s in scores
        ]
        print(f"  {label:24s} forget / retain: {', '.join(cells)}", flush=True)

    report("original", base)
    for folder in args.unlearned:
        print(folder)
        unlearned = load_model(folder, dtype=torch.float32)
        report("unlearned", unlearned)
        report("nearest rounding", quantize_model(unlearned, spec))
        report(
            "error-feedback rounding", project(unlearned, linears, encoded, tokenizer.pad_token_id)
        )


if __name__ == "__main__":
    main()
