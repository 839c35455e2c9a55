"""Mean and 95% interval over several runs of one study (seeds), per method and spec.

    python experiments/seed_table.py STUDY_SEED0 STUDY_SEED1 STUDY_SEED2 [--metric knowmem_retain]

Reads each study folder's cells (`cells/METHOD/eval-SPEC.json`, as `quail run` writes them) and
prints a Markdown table of mean ± half-width of the t-interval over the folders (Student's t,
n - 1 degrees of freedom): the spread of the seeds, not of the probes.
"""

import argparse
import json
import statistics
from pathlib import Path

T95 = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 8: 2.36, 10: 2.26}  # two-sided, n runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", type=Path)
    parser.add_argument("--metric", default="knowmem_forget")
    args = parser.parse_args()
    cells = [sorted(p for p in (s / "cells").iterdir() if p.is_dir()) for s in args.studies]
    methods = [c.name for c in cells[0]]
    specs = sorted(f.stem.removeprefix("eval-") for f in cells[0][0].glob("eval-*.json"))
    specs.sort(key=lambda s: (s != "fp", s))
    print(f"{args.metric}, mean ± 95% interval over {len(args.studies)} runs")
    print("| method | " + " | ".join(specs) + " |")
    print("|---|" + "---|" * len(specs))
    for method in methods:
        row = []
        for spec in specs:
            values = [
                json.loads((s / "cells" / method / f"eval-{spec}.json").read_text())[args.metric]
                for s in args.studies
            ]
            mean = statistics.fmean(values)
            half = T95.get(len(values), 2.0) * statistics.stdev(values) / len(values) ** 0.5
            row.append(f"{mean:.1f} ± {half:.1f}")
        print(f"| {method} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
