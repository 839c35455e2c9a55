"""Research script for lab/RECORD.md, "Built-in benchmark regime". Run by hand, not by CI.

Does a built-in base model sit in the regime where GA+GDR unlearning forgets at full precision
and 4-bit quantization brings the knowledge back? Three subcommands:

  snap     put a trained base onto a quantization grid (straight-through fine-tune), save it
  unlearn  run a minimal GA+GDR on a base, print forget/retain exact match at fp and under
           several quantizers, update survival, bucket overlap and weight-change statistics
  engine   the same exact match after quail.unlearning's engine with a JSON config

    nice python lab/experiments/regime.py snap --base B --grid rtn-int4-g32-asym --out B32
    nice python lab/experiments/regime.py unlearn --base B32 --grid rtn-int4-g32-asym --lr 1e-4

The GA+GDR here is deliberately minimal (quail.unlearning is the real engine): loss =
-NLL(forget batch) + alpha * NLL(retain batch), AdamW, constant lr, stop after --steps or as soon
as full-precision forget accuracy falls to --until.
"""

import argparse
import copy
import json
import random
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from quail.base import probes
from quail.base.config import BASE_CONFIG
from quail.base.train import fit, map_qa
from quail.data import load_qa, load_unlearning_sets
from quail.data.batches import collate, encode
from quail.quant import (
    grid_distance,
    parse_spec,
    quantizable_modules,
    quantize_model,
    quantize_tensor,
    snap_onto,
)

SPECS = ("rtn-int4-g64-sym", "rtn-int4-g32-asym", "rtn-int4-g128-asym", "nf4", "int8")


def load(path):
    return AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32
    ), AutoTokenizer.from_pretrained(path)


def em(model, tok, records):
    return round(probes.accuracy(probes.exact_match(model, tok, map_qa(records))), 3)


def snap(args):
    model, tok = load(args.base)
    data = args.data
    forget, retain = load_unlearning_sets(data)
    sets = {s: map_qa(load_qa(data, s, False)) for s in ("forget", "retain")}
    spec = parse_spec(args.grid)
    cfg = BASE_CONFIG.replace(snap=spec.name, eval_every=args.eval_every)

    def passing(m, epoch):  # the model as it computes on the grid
        judged = quantize_model(m, spec)
        scores = {k: probes.accuracy(probes.exact_match(judged, tok, v)) for k, v in sets.items()}
        print("  ", scores, flush=True)
        return min(scores.values()) >= cfg.target_accuracy

    t = time.perf_counter()
    epochs = fit(model, tok, forget + retain, cfg, args.lr, args.max_epochs, passing, spec.name)
    snap_onto(model, spec)
    print(
        json.dumps(
            {
                "grid": spec.name,
                "snap_epochs": epochs,
                "seconds": round(time.perf_counter() - t, 1),
                "grid_distance": grid_distance(model, spec),
            }
        )
    )
    model.save_pretrained(args.out)
    tok.save_pretrained(args.out)


@torch.no_grad()
def weight_stats(m0, m1, spec):
    """Update survival <Q(W1)-Q(W0), W1-W0>/|W1-W0|^2 (own scales), its cosine, bucket overlap
    (own scales and W0's scales), median |dW| and share of |dW| > step/2, over covered layers."""
    dot = dd = qq = 0.0
    same = same_fixed = total = 0
    changes, over_half = [], 0
    p1 = dict(quantizable_modules(m1))
    for name, mod0 in quantizable_modules(m0):
        w0, w1 = mod0.weight.float(), p1[name].weight.float()
        q0, q1 = quantize_tensor(w0, spec), quantize_tensor(w1, spec)
        q1_fixed = quantize_tensor(w1, spec, like=q0)
        d = w1 - w0
        dq = q1.dequantize() - q0.dequantize()
        dot += (dq * d).sum().item()
        dd += (d * d).sum().item()
        qq += (dq * dq).sum().item()
        same += (q0.codes == q1.codes).sum().item()
        same_fixed += (q0.codes == q1_fixed.codes).sum().item()
        total += d.numel()
        changes.append(d.abs().flatten())
        over_half += (d.abs() > q0.step() / 2).sum().item()
    changes = torch.cat(changes)
    emb = (m1.get_input_embeddings().weight - m0.get_input_embeddings().weight).norm().item()
    return {
        "survival": round(dot / dd, 3) if dd else None,
        "cosine": round(dot / (dd * qq) ** 0.5, 3) if dd and qq else None,
        "overlap": round(same / total, 5),
        "overlap_fixed": round(same_fixed / total, 5),
        "median_dw": float(f"{changes.median().item():.2e}"),
        "max_dw": float(f"{changes.max().item():.2e}"),
        "frac_over_half_step": round(over_half / total, 5),
        "embedding_change_norm": round(emb, 4),
    }


def lm_loss(model, batch):
    return model(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels
    ).loss


def unlearn(args):
    torch.manual_seed(args.seed)
    m0, tok = load(args.base)
    model = copy.deepcopy(m0)
    forget, retain = load_unlearning_sets(args.data)
    fq = load_qa(args.data, "forget", False)
    rq = load_qa(args.data, "retain", False)
    fpairs = encode(probes.with_eos(forget, tok), tok, 256, "forget")
    rpairs = encode(probes.with_eos(retain, tok), tok, 256, "retain")
    rng, pad = random.Random(args.seed), tok.pad_token_id
    params = [p for n, p in model.named_parameters() if args.train_embeddings or "embed" not in n]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0)
    t = time.perf_counter()
    step = 0
    for step in range(1, args.steps + 1):
        model.train()
        fb = collate(fpairs, rng.sample(range(len(fpairs)), min(args.batch, len(fpairs))), pad)
        rb = collate(rpairs, rng.sample(range(len(rpairs)), min(args.batch, len(rpairs))), pad)
        loss = -lm_loss(model, fb) + args.alpha * lm_loss(model, rb)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if args.until is not None and step % 5 == 0 and em(model, tok, fq) <= args.until:
            break
    out = {
        "base": args.base,
        "lr": args.lr,
        "steps": step,
        "alpha": args.alpha,
        "batch": args.batch,
        "seed": args.seed,
        "train_embeddings": args.train_embeddings,
        "seconds": round(time.perf_counter() - t, 1),
        "orig_fp": {"forget": em(m0, tok, fq), "retain": em(m0, tok, rq)},
        "unl_fp": {"forget": em(model, tok, fq), "retain": em(model, tok, rq)},
    }
    for name in SPECS:
        spec = parse_spec(name)
        q0, q1 = quantize_model(m0, spec), quantize_model(model, spec)
        out[name] = {
            "orig": {"forget": em(q0, tok, fq), "retain": em(q0, tok, rq)},
            "unl": {"forget": em(q1, tok, fq), "retain": em(q1, tok, rq)},
        }
    spec = parse_spec(args.grid)
    out["grid"] = spec.name
    out["stats"] = weight_stats(m0, model, spec)
    f_orig, f_fp, f_q = (
        out["orig_fp"]["forget"],
        out["unl_fp"]["forget"],
        out[spec.name]["unl"]["forget"],
    )
    out["recovery"] = round((f_q - f_fp) / (f_orig - f_fp), 3) if f_orig > f_fp else None
    print(json.dumps(out))


def engine(args):
    """The same probes after quail.unlearning's real engine (cross-check of the minimal loop)."""
    from quail.unlearning import unlearn as run_engine

    forget, retain = load_unlearning_sets(args.data)
    config = {"method": "ga_gdr", **json.loads(args.config), "progress": False}  # the loop's
    t = time.perf_counter()
    result = run_engine(args.base, forget, retain, config)
    model, tok = result.model.float(), result.tokenizer
    quantized = quantize_model(model, parse_spec(args.grid))
    fq, rq = load_qa(args.data, "forget", False), load_qa(args.data, "retain", False)
    out = {
        "config": config,
        "seconds": round(time.perf_counter() - t, 1),
        "unl_fp": {"forget": em(model, tok, fq), "retain": em(model, tok, rq)},
        "unl_quant": {"forget": em(quantized, tok, fq), "retain": em(quantized, tok, rq)},
    }
    print(json.dumps(out))


def main():
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("snap")
    s.add_argument("--base", required=True)
    s.add_argument("--data", default="/tmp/regime/data")
    s.add_argument("--grid", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--lr", type=float, default=3e-4)
    s.add_argument("--max-epochs", type=int, default=60)
    s.add_argument("--eval-every", type=int, default=2)
    u = sub.add_parser("unlearn")
    u.add_argument("--base", required=True)
    u.add_argument("--data", default="/tmp/regime/data")
    u.add_argument("--grid", required=True)
    u.add_argument("--lr", type=float, default=1e-4)
    u.add_argument("--steps", type=int, default=100)
    u.add_argument("--until", type=float, default=None)
    u.add_argument("--alpha", type=float, default=1.0)
    u.add_argument("--batch", type=int, default=8)
    u.add_argument("--seed", type=int, default=0)
    u.add_argument("--train-embeddings", action=argparse.BooleanOptionalAction, default=True)
    e = sub.add_parser("engine")
    e.add_argument("--base", required=True)
    e.add_argument("--data", default="/tmp/regime/data")
    e.add_argument("--grid", default="int4")
    e.add_argument("--config", required=True, help='JSON, e.g. {"method": "ga_gdr"}')
    args = ap.parse_args()
    {"snap": snap, "unlearn": unlearn, "engine": engine}[args.cmd](args)


if __name__ == "__main__":
    main()
