"""Which forget probes a study's models still answer, by fact attribute (country studies).

    python lab/experiments/probe_breakdown.py STUDY [STUDY ...] [--split forget]

Redraws each study's probe sample (its data folder, `eval_limit` and `data_seed`), matches it
to the per-probe scores in `cells/METHOD/eval-SPEC.json`, and prints KnowMem per attribute
(capital, continent, language, currency) for every method and spec, summed over the studies.
Beside each attribute: the share of its probes whose answer a retain country shares (Asia,
English, peso): a model that forgot the country but kept the retain set can still name it
by the common answer, so those probes bound how low forgetting can go without harming
retain.
"""

import argparse
import collections
import json
from pathlib import Path

from quail.data import load_qa
from quail.evaluation.suite import seeded_sample


def probe_records(study: Path, split: str) -> list[dict]:
    config = json.loads((study / "study.json").read_text("utf-8"))
    data = study / "data" if (study / "data").is_dir() else Path(config["data"])
    records = load_qa(data, split, paraphrase=False)
    shared = {(r["attribute"], r["answer"]) for r in load_qa(data, "retain", paraphrase=False)}
    for r in records:
        r["shared"] = (r["attribute"], r["answer"]) in shared
    return seeded_sample(records, config["eval_limit"], config["data_seed"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", type=Path)
    parser.add_argument("--split", default="forget")
    args = parser.parse_args()
    correct = collections.defaultdict(float)  # (method, spec, attribute) -> probes right
    total = collections.Counter()  # (attribute, shared) -> probes
    for study in args.studies:
        records = probe_records(study, args.split)
        total.update((r["attribute"], r["shared"]) for r in records)
        for cell in sorted((study / "cells").glob("*/eval-*.json")):
            scores = json.loads(cell.read_text("utf-8"))["probes"][f"knowmem_{args.split}"]
            if len(scores) != len(records):
                raise SystemExit(f"{cell}: {len(scores)} scores for {len(records)} probes")
            spec = cell.stem.removeprefix("eval-")
            for r, score in zip(records, scores, strict=True):
                key = (cell.parent.name, spec, r["attribute"])
                correct[key] += score / 100
                correct[key + (r["shared"],)] += score / 100
    attributes = sorted({a for a, _ in total})
    print(f"{args.split} probes right / probes, by attribute (shared answers in brackets)")
    header = " | ".join(
        f"{a} ({total[(a, True)] + total[(a, False)]}, {total[(a, True)]} shared)"
        for a in attributes
    )
    print(f"| method | spec | {header} |")
    print("|---|---|" + "---|" * len(attributes))
    for method, spec in sorted({k[:2] for k in correct}):
        cells = [
            f"{correct[(method, spec, a)]:.0f} [{correct[(method, spec, a, True)]:.0f}]"
            for a in attributes
        ]
        print(f"| {method} | {spec} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
