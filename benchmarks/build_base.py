"""Wall time and peak memory of `quail data build` + `quail base` (both tasks), from scratch.

    nice python benchmarks/build_base.py [--size default] [--threads N]

Trains into a fresh temporary folder (or `--keep DIR`, which must not exist yet, to keep the data
and models for experiments), so nothing cached is reused. Results go by hand into
docs/BENCHMARKS.md. The issue's target is <= 3 minutes on 2 CPU cores for the default size.
"""

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="default")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        os.environ["QUAIL_CACHE"] = str(Path(tmp) / "cache")
        import torch

        from quail.base import BASE_CONFIG, CLASSIFIER_CONFIG, write_base_model
        from quail.base.cache import TASKS
        from quail.data import build_dataset

        if args.threads:
            torch.set_num_threads(args.threads)
            for task, (train, config) in list(TASKS.items()):
                TASKS[task] = (train, config.replace(threads=args.threads))
        rows = {}
        t0 = time.perf_counter()
        data = build_dataset(Path(tmp) / "data", size=args.size)
        rows["data build"] = time.perf_counter() - t0
        for task in ("knowledge", "claims"):
            t = time.perf_counter()
            metrics = write_base_model(data, Path(tmp) / task, task)
            rows[f"base {task}"] = time.perf_counter() - t
            print(task, json.dumps(metrics))
        total = time.perf_counter() - t0
    print(f"size {args.size}, training threads {BASE_CONFIG.threads}")
    print(f"base config {BASE_CONFIG.to_dict()}")
    print(f"classifier config {CLASSIFIER_CONFIG.to_dict()}")
    for name, seconds in rows.items():
        print(f"{name:16s} {seconds:7.1f} s")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"{'total':16s} {total:7.1f} s   peak RSS {peak_rss_mb():.0f} MiB")
    print(f"process CPU time {usage.ru_utime + usage.ru_stime:.1f} s (wall is inflated when the")
    print(f"machine is shared; load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
