"""Does the QUAIL hinge stop recovery? Research script for lab/RECORD.md; run by hand.

Unlearns the built-in benchmark's forget set from a base model whose weights sit on a 4-bit grid
(the regime where GA+GDR's forgetting is undone by quantizing on that grid), with one method
per call, and prints one JSON line: forget / retain exact match at full precision and under the
grid, recovery, and update survival and bucket overlap under the grid.

    nice python lab/experiments/hinge_default.py --base BASE --data DATA --run quail_hinge

`--run` names a row of RUNS; the other settings come from the command line. The hinge forms
that lost to quail_hinge's (the l2, linf and mean_abs logit distances, the hinge on
full-precision logits, calibrated margins) were removed from quail; this script as it was at
commit 9f44a84 (experiments/hinge_default.py) ran them (lab/RECORD.md, 2026-11-28, "QUAIL hinge:
distance and form").
"""

import argparse
import copy
import json
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from quail.analysis import analyze
from quail.base import probes
from quail.base.train import map_qa
from quail.data import load_qa, load_unlearning_sets
from quail.quant import parse_spec, quantize_model
from quail.unlearning import unlearn

RUNS = {name: {"method": name} for name in ("ga_gdr", "ste_ga_gdr", "quail_hinge")}


def exact_match(model, tokenizer, records) -> float:
    return round(probes.accuracy(probes.exact_match(model, tokenizer, map_qa(records))), 3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--run", required=True, choices=sorted(RUNS))
    ap.add_argument("--grid", default="rtn-int4-g64-sym")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--gamma", type=float, default=1.0)
    ap.add_argument("--margin", type=float, default=1.0, help="the hinge's margin, in nats")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)

    original = AutoModelForCausalLM.from_pretrained(args.base, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(args.base)
    forget, retain = load_unlearning_sets(args.data)
    probes_ = {s: load_qa(args.data, s, False) for s in ("forget", "retain")}
    settings = {
        "steps": args.steps,
        "lr": args.lr,
        "batch_size": args.batch,
        "quant": args.grid,
        "gamma": args.gamma,
        "margin": args.margin,
        "weight_decay": 0.0,
        "seed": args.seed,
        "progress": False,
        **RUNS[args.run],
    }
    started = time.perf_counter()
    result = unlearn(copy.deepcopy(original), forget, retain, settings, tokenizer=tokenizer)
    seconds = time.perf_counter() - started

    spec = parse_spec(args.grid)
    models = {
        "orig_fp": original,
        "unl_fp": result.model,
        "orig_q": quantize_model(original, spec),
        "unl_q": quantize_model(result.model, spec),
    }
    scores = {
        name: {split: exact_match(m, tokenizer, recs) for split, recs in probes_.items()}
        for name, m in models.items()
    }
    f_orig, f_fp, f_q = (scores[k]["forget"] for k in ("orig_fp", "unl_fp", "unl_q"))
    summary = analyze(original, result.model, spec).summary
    last = result.curves[-1]
    print(
        json.dumps(
            {
                "run": args.run,
                "seed": args.seed,
                "grid": spec.name,
                "steps": args.steps,
                "lr": args.lr,
                "gamma": args.gamma,
                "margin": args.margin,
                "seconds": round(seconds, 1),
                **scores,
                "recovery": round((f_q - f_fp) / (f_orig - f_fp), 3) if f_orig > f_fp else None,
                "survival": summary.get("update_survival"),
                "bucket_overlap": summary.get("bucket_overlap"),
                "final_losses": {
                    k: round(v, 4) for k, v in last.items() if k not in ("step", "lr", "check")
                },
            }
        )
    )


if __name__ == "__main__":
    main()
