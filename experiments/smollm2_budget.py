"""How large an unlearning budget does SmolLM2 as shipped take before its forgetting survives its
own Q4_1 grid? Research script for docs/METHODS.md; run by hand.

GA+GDR and QUAIL (hinge aimed at the file's grid) unlearn the real-knowledge forget set for 10
steps at each given lr; each model is evaluated at fp, int8 and on the grid (KnowMem on forget
and retain probes, held-out perplexity) and analysed on the grid (bucket overlap, weights moved
half a step, update survival). One line per model and precision.

    quail run configs/smollm2-real-knowledge.yaml --out smollm2-real   # builds smollm2-real/data
    nice python experiments/smollm2_budget.py smollm2-real/data OUT 1e-4 3e-4 1e-3
"""

import argparse
from pathlib import Path

from quail import analyze, evaluate, unlearn
from quail.data import load_unlearning_sets
from quail.zoo import get_model

GRID = "rtn-int4-g32-asym"  # Q4_1: the grid the file's weights sit on
SPECS = ("fp", "int8", GRID)
SHOWN = ("knowmem_forget", "knowmem_retain", "ppl_general")


def report(name: str, results: dict) -> None:
    for spec, figures in results.items():
        print(name, spec, {key: round(figures[key], 2) for key in SHOWN}, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the real-knowledge study's data folder")
    parser.add_argument("out", type=Path, help="where the unlearned models are written")
    parser.add_argument("lrs", type=float, nargs="+")
    parser.add_argument("--limit", type=int, default=24, help="probes per set, as the config")
    args = parser.parse_args()
    original = str(get_model("smollm2-135m"))
    forget, retain = load_unlearning_sets(args.data)
    report("original", evaluate(original, args.data, specs=SPECS, limit=args.limit))
    for lr in args.lrs:
        for method in ("ga_gdr", "quail"):
            settings = {"method": method, "lr": lr, "steps": 10, "batch_size": 4, "max_length": 160}
            if method == "quail":
                settings["quant"] = GRID
            out = args.out / f"{method}-{lr:g}"
            unlearn(original, forget, retain, settings, out=str(out))
            results = evaluate(str(out), args.data, specs=SPECS, limit=args.limit)
            report(f"{method} lr={lr:g}", results)
            summary = analyze(original, str(out), GRID).summary
            print(
                f"{method} lr={lr:g} on the grid: bucket overlap {summary['bucket_overlap']:.6f}, "
                f"half-step fraction {summary['half_step_fraction']:.2g}, update survival "
                f"{summary['update_survival']:.3f}, median change "
                f"{summary['change_in_half_steps']['p50']:.3f} half steps",
                flush=True,
            )


if __name__ == "__main__":
    main()
