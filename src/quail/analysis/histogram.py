"""Quantiles of non-negative values streamed in chunks, from a histogram of float32 bit patterns.

Exact quantiles need every value at once (torch.quantile refuses more than 16M elements and a
7B model has billions), so values are counted in log-spaced bins instead: the bit pattern of a
non-negative float32 grows with its value, and dropping its lowest `DROPPED_BITS` bits leaves the
exponent and the top 10 mantissa bits. A bin therefore spans a relative width of 2^-10, and a
quantile is reported as the lower edge of its bin: never above the exact value and less than
0.1% below it (exact for values with at most 10 significant mantissa bits). Histograms of two
chunks add, so per-layer and whole-model quantiles come out of the same counts.
"""

import numpy as np
import torch

DROPPED_BITS = 13
KEPT_MANTISSA_BITS = 23 - DROPPED_BITS
N_BINS = 1 << (31 - DROPPED_BITS)  # every non-negative float32, inf and nan included
COARSE_BITS = 2  # mantissa bits kept by `coarse`: edges at 1, 1.25, 1.5, 1.75 times 2^e
QUANTILES = {"p50": 500, "p90": 900, "p99": 990, "p999": 999}  # in thousandths


class Histogram:
    """Counts of non-negative float32 values in bins of relative width 2^-10."""

    def __init__(self) -> None:
        self._counts = torch.zeros(N_BINS, dtype=torch.int64)
        self._thread_rows = None  # the fused kernel's per-thread counts, not yet in _counts

    @property
    def counts(self) -> torch.Tensor:
        self._fold_thread_rows()
        return self._counts

    def thread_rows(self, threads: int) -> np.ndarray:
        """A (threads, N_BINS) array the fused kernel counts into, one row per thread (threads
        cannot add to one array at once); kept across chunks and added to `counts` when read,
        so a layer pays for the rows once, not once per chunk."""
        if self._thread_rows is None or self._thread_rows.shape[0] != threads:
            self._fold_thread_rows()
            self._thread_rows = np.zeros((threads, N_BINS), np.int64)
        return self._thread_rows

    def _fold_thread_rows(self) -> None:
        if self._thread_rows is not None:
            self._counts += torch.from_numpy(self._thread_rows.sum(0))
            self._thread_rows = None

    def add(self, values: torch.Tensor) -> None:
        bins = values.reshape(-1).view(torch.int32) >> DROPPED_BITS
        self.counts.add_(torch.bincount(bins, minlength=N_BINS))

    def merge(self, other: "Histogram") -> None:
        self.counts.add_(other.counts)

    def quantiles(self) -> dict[str, float | None]:
        """The inverted-CDF quantile (smallest x with at least a fraction q of values <= x),
        rounded down to its bin's edge; None for an empty histogram."""
        total = int(self.counts.sum())
        if total == 0:
            return dict.fromkeys(QUANTILES)
        cumulative = torch.cumsum(self.counts, 0)
        out = {}
        for key, thousandths in QUANTILES.items():
            rank = -(-total * thousandths // 1000)  # ceil(q * total) in exact integers
            index = int(torch.searchsorted(cumulative, torch.tensor([rank]))[0])
            out[key] = bin_edge(index)
        return out

    def coarse(self) -> dict:
        """A plottable histogram: bins a quarter of an octave wide (edges m·2^e, m in 1, 1.25,
        1.5, 1.75) from the lowest to the highest non-empty one. The lowest fine bin (0, and
        subnormals below 1.2e-41) is counted apart as `zeros`: a log axis has no place for 0."""
        merge = 1 << (KEPT_MANTISSA_BITS - COARSE_BITS)
        counts = self.counts[: (self.counts.numel() // merge) * merge].view(-1, merge).sum(1)
        zeros = int(self.counts[0])
        counts[0] -= zeros  # the first coarse bin also holds 0 and the subnormals
        nonzero = torch.nonzero(counts).flatten()
        if nonzero.numel() == 0:
            return {"edges": [], "counts": [], "zeros": zeros}
        first, last = int(nonzero[0]), int(nonzero[-1])
        edges = [bin_edge(i * merge) for i in range(first, last + 2)]
        return {"edges": edges, "counts": counts[first : last + 1].tolist(), "zeros": zeros}


def bin_edge(index: int) -> float:
    """The smallest float32 that falls in bin `index`."""
    return torch.tensor([index << DROPPED_BITS], dtype=torch.int32).view(torch.float32).item()
