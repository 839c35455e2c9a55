"""Update rules side by side under measured stopping (docs/METHODS.md, "quail's default").

Each CONFIG (a JSON object of unlearn settings) unlearns the data folder's forget set from BASE;
the run checks its forgetting at fp and in every --formats spec as it trains (measure=true,
which `quail` always does) and prints what each check saw, then the scores of the result on
another sample of probes.

    python lab/experiments/measured_updates.py DATA BASE '{"method": "quail"}' \\
        '{"method": "quail", "lr": 3e-3}' --set MAX_BACKTRACKS=0
"""

import argparse
import copy
import json
import time

import torch

from quail.data import load_unlearning_sets
from quail.models import load_model, load_tokenizer
from quail.unlearning import loop, unlearn
from quail.unlearning.target import ForgetTarget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("base")
    parser.add_argument("configs", nargs="+", help="JSON objects of unlearn settings")
    parser.add_argument("--formats", default="int4,nf4", help="the quant list, first = grid")
    parser.add_argument("--qa-only", action="store_true", help="forget only the QA examples")
    parser.add_argument("--set", action="append", default=[], help="loop constant NAME=VALUE")
    args = parser.parse_args()
    for item in args.set:
        name, _, value = item.partition("=")
        setattr(loop, name, float(value))
    forget, retain = load_unlearning_sets(args.data)
    if args.qa_only:
        forget = [e for e in forget if e.prompted]
    tokenizer = load_tokenizer(args.base)
    base = load_model(args.base, dtype=torch.float32)
    formats = args.formats.split(",")
    for text in args.configs:
        config = {"batch_size": 8, "progress": False, "quant": args.formats} | json.loads(text)
        started = time.perf_counter()
        result = unlearn(copy.deepcopy(base), forget, retain, config, tokenizer=tokenizer)
        wall = time.perf_counter() - started
        print(json.dumps(config), f"steps {len(result.curves)}, {wall:.0f} s")
        if result.outcome is not None:
            print("  checks (step, fp forget, fp retain, grid forget, grid retain):")
            print(
                "  ",
                [
                    (
                        c["step"],
                        *(
                            round(c["scores"][f][k])
                            for f in ("fp", formats[0])
                            for k in ("forget", "retain")
                        ),
                    )
                    for c in result.outcome.checks
                ],
            )
            print(" ", result.statement)
        other = ForgetTarget(tokenizer, forget, retain, formats, 0.1, 0.9, seed=1)
        scores = other.measure(result.model)
        print(
            "  on other probes (forget, retain):",
            {k: (round(v["forget"], 1), round(v["retain"], 1)) for k, v in scores.items()},
        )


if __name__ == "__main__":
    main()
