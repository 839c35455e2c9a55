"""Wall time and peak RSS of `quail demo`, first with nothing cached, then with the base model
cached (a fresh output folder each time). Targets (issue 5): <= 5 min cold, <= 2 min cached.

    python benchmarks/demo_time.py [--keep DIR]
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_demo(out: Path, cache: Path) -> tuple[float, float]:
    env = {**os.environ, "QUAIL_CACHE": str(cache)}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "quail.cli", "demo", "--out", str(out)],
        env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return seconds, peak_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path, help="keep the outputs here (default: a temp dir)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="quail-demo-bench-"))
    cache = root / "cache"
    cold = timed_demo(root / "cold", cache)
    print(f"nothing cached: {cold[0]:.1f} s wall, peak RSS {cold[1]:.0f} MB (target <= 300 s)")
    warm = timed_demo(root / "cached", cache)
    print(f"base cached:    {warm[0]:.1f} s wall, peak RSS {warm[1]:.0f} MB (target <= 120 s)")
    print(f"outputs in {root}")


if __name__ == "__main__":
    main()
