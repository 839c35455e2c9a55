"""How large an unlearning budget does SmolLM2 as shipped take before its forgetting survives its
own Q4_1 file? Research script for lab/RECORD.md; run by hand.

Each method unlearns the real-knowledge forget set for 10 steps at each given lr (plus any
`key=value` settings, e.g. `sure_percentile=99` or `alpha=5`), or `--folders` names models
already unlearned. Each model is evaluated at fp, int8, on the file's grid (its linear layers,
Q4_1) and in the file's whole format (plus its tied embedding in Q8_0): KnowMem on forget and
retain probes, held-out perplexity. It is analysed on the grid (bucket overlap, weights moved
half a step, update survival) and its embedding under Q8_0. One line per model and precision.
Methods aimed at a grid (QUAIL, STE) aim at the file's grid, or at `--set quant=SPEC`.

    quail run configs/smollm2-real-knowledge.yaml --out smollm2-real   # builds smollm2-real/data
    nice python lab/experiments/smollm2_budget.py smollm2-real/data OUT 1e-4 3e-4 1e-3
    nice python lab/experiments/smollm2_budget.py smollm2-real/data OUT 3e-4 1e-3 \
        --methods sure_ga_gdr --set sure_percentile=99
    nice python lab/experiments/smollm2_budget.py smollm2-real/data OUT 1e-4 --methods quail \
        --set quant=rtn-int4-g32-asym+emb-rtn-int8-g32
    nice python lab/experiments/smollm2_budget.py smollm2-real/data --folders OUT/*
    nice python lab/experiments/smollm2_budget.py smollm2-study/data OUT 1e-3 --limit 16 \
        --original smollm2-study/original --methods sure_quail --set sure_percentile=99 alpha=10
"""

import argparse
from pathlib import Path

from quail import analyze, evaluate, unlearn
from quail.data import load_unlearning_sets
from quail.unlearning.config import make_config
from quail.unlearning.methods import METHODS
from quail.zoo import get_model

GRID = "rtn-int4-g32-asym"  # Q4_1: the grid the file's linear layers sit on
FILE = GRID + "+emb-rtn-int8-g32"  # the whole file: its tied embedding is Q8_0
SPECS = ("fp", "int8", GRID, FILE)
SHOWN = ("knowmem_forget", "knowmem_retain", "ppl_general")
AIMED = ("quail", "quail_npo", "sure_quail", "ste_ga_gdr")  # they aim at the grid (`quant`)


def measure(name: str, original: str, folder: str, data: str, limit: int) -> None:
    for spec, figures in evaluate(folder, data, specs=SPECS, limit=limit).items():
        shown = {key: round(figures[key], 2) for key in SHOWN if key in figures}
        print(name, spec, shown, flush=True)
    if folder == original:
        return
    summary = analyze(original, folder, GRID).summary
    moved = summary["change_in_half_steps"]
    layers = analyze(original, folder, FILE).layers
    embedding = next(layer for layer in layers if layer["name"].endswith("embed_tokens"))
    print(
        f"{name} on the grid: bucket overlap {summary['bucket_overlap']:.6f}, "
        f"half-step fraction {summary['half_step_fraction']:.2g}, update survival "
        f"{summary['update_survival']:.3f}, change in half steps p50 {moved['p50']:.3f} "
        f"p99 {moved['p99']:.3f} p999 {moved['p999']:.3f} max {moved['max']:.3f}; "
        f"{embedding['name']} under Q8_0: bucket overlap {embedding['bucket_overlap']:.6f}, "
        f"update survival {embedding['update_survival']:.3f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the real-knowledge study's data folder")
    parser.add_argument("out", type=Path, nargs="?", help="where unlearned models are written")
    parser.add_argument("lrs", type=float, nargs="*")
    parser.add_argument("--methods", nargs="+", default=["ga_gdr", "quail"], choices=METHODS)
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="settings")
    parser.add_argument("--folders", nargs="+", default=[], help="measure these models only")
    parser.add_argument("--limit", type=int, default=24, help="probes per set, as the config")
    parser.add_argument("--skip-original", action="store_true", help="do not evaluate it")
    parser.add_argument("--original", help="the model to unlearn (default: SmolLM2 as shipped)")
    args = parser.parse_args()
    original = args.original or str(get_model("smollm2-135m"))
    if not args.skip_original:
        measure("original", original, original, args.data, args.limit)
    for folder in args.folders:
        measure(Path(folder).name, original, folder, args.data, args.limit)
    forget, retain = load_unlearning_sets(args.data) if args.lrs else (None, None)
    for lr in args.lrs:
        for method in args.methods:
            settings = {"method": method, "lr": lr, "steps": 10, "batch_size": 4, "max_length": 160}
            if method in AIMED:
                settings["quant"] = GRID
            config = make_config(settings, args.settings)
            out = args.out / "-".join([method, f"{lr:g}", *args.settings])
            unlearn(original, forget, retain, config, out=str(out))
            name = " ".join([f"{method} lr={lr:g}", *args.settings])
            measure(name, original, str(out), args.data, args.limit)


if __name__ == "__main__":
    main()
