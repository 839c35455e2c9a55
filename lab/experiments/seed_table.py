"""Mean and 95% interval over several runs of one study (seeds, data draws), per method and spec.

    python lab/experiments/seed_table.py STUDY_SEED0 STUDY_SEED1 STUDY_SEED2 \\
        [--metric knowmem_retain]

Reads each study folder's cells (`cells/METHOD/eval-SPEC.json`, as `quail run` writes them) and
prints a Markdown table of the mean over the folders with a 95% interval. Where the cells keep
their per-probe scores (`probes`, written since 2026-12-06) the interval is a two-level
bootstrap, runs then probes within each run (2000 resamples, percentiles): it counts the
spread of the seeds and the sampling of the probes. Older cells get the Student's t-interval
over the runs (mean ± half-width, n - 1 degrees of freedom): the seeds' spread only.
"""

import argparse
import json
import random
import statistics
from pathlib import Path

T95 = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 8: 2.36, 10: 2.26}  # two-sided, n runs
RESAMPLES = 2000


def bootstrap(runs: list[list[float]], seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean over runs, resampling runs, then each run's probes."""
    rng = random.Random(seed)
    means = []
    for _ in range(RESAMPLES):
        picked = [rng.choice(runs) for _ in runs]
        means.append(statistics.fmean(statistics.fmean(rng.choices(r, k=len(r))) for r in picked))
    means.sort()
    return means[int(0.025 * RESAMPLES)], means[int(0.975 * RESAMPLES) - 1]


def cell_text(cells: list[dict], metric: str) -> str:
    values = [cell[metric] for cell in cells]
    mean = statistics.fmean(values)
    probes = [cell.get("probes", {}).get(metric) for cell in cells]
    if all(probes):
        low, high = bootstrap(probes)
        return f"{mean:.1f} [{low:.1f}, {high:.1f}]"
    if len(values) < 2:  # one run without per-probe scores: no interval to give
        return f"{mean:.1f}"
    half = T95.get(len(values), 2.0) * statistics.stdev(values) / len(values) ** 0.5
    return f"{mean:.1f} ± {half:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", type=Path)
    parser.add_argument("--metric", default="knowmem_forget")
    args = parser.parse_args()
    cells = [sorted(p for p in (s / "cells").iterdir() if p.is_dir()) for s in args.studies]
    methods = [c.name for c in cells[0]]
    specs = sorted(f.stem.removeprefix("eval-") for f in cells[0][0].glob("eval-*.json"))
    specs.sort(key=lambda s: (s != "fp", s))
    print(f"{args.metric}, mean and 95% interval over {len(args.studies)} runs")
    print("| method | " + " | ".join(specs) + " |")
    print("|---|" + "---|" * len(specs))
    for method in methods:
        row = []
        for spec in specs:
            files = [s / "cells" / method / f"eval-{spec}.json" for s in args.studies]
            if not all(f.is_file() for f in files):  # the retrained reference: fp only
                row.append("–")
                continue
            row.append(cell_text([json.loads(f.read_text()) for f in files], args.metric))
        print(f"| {method} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
