"""Quantiles of non-negative values streamed in chunks, from a histogram of float32 bit patterns.

Exact quantiles need every value at once (torch.quantile refuses more than 16M elements and a
7B model has billions), so values are counted in log-spaced bins instead: the bit pattern of a
non-negative float32 grows with its value, and dropping its lowest `DROPPED_BITS` bits leaves the
exponent and the top 10 mantissa bits. A bin therefore spans a relative width of 2^-10, and a
quantile is reported as the lower edge of its bin: never above the exact value and less than
0.1% below it (exact for values with at most 10 significant mantissa bits). Histograms of two
chunks add, so per-layer and whole-model quantiles come out of the same counts.

Of the 2^18 bins, a layer's changes fill a few dozen octaves (a few ten thousand bins) plus the
lowest bin (0, where unchanged weights fall), so a histogram keeps that bin's count apart and
the others as a span from the lowest to the highest non-empty bin: adding the fused kernel's
counts, merging and reading quantiles then cost the span, not 2 MB per histogram and thread
each layer (that was a quarter of an in-memory analysis).
"""

import numpy as np
import torch

DROPPED_BITS = 13
KEPT_MANTISSA_BITS = 23 - DROPPED_BITS
N_BINS = 1 << (31 - DROPPED_BITS)  # every non-negative float32, inf and nan included
COARSE_BITS = 2  # mantissa bits kept by `coarse`: edges at 1, 1.25, 1.5, 1.75 times 2^e
QUANTILES = {"p50": 500, "p90": 900, "p99": 990, "p999": 999}  # in thousandths


class Histogram:
    """Counts of non-negative float32 values in bins of relative width 2^-10: `zeros` for the
    lowest bin (0 and subnormals below 1.2e-41), `span[i]` for bin `first + i`."""

    def __init__(self) -> None:
        self.zeros = 0
        self.first = 1
        self.span = torch.zeros(0, dtype=torch.int64)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return self._trimmed() == other._trimmed()

    def _trimmed(self) -> tuple[int, int, list[int]]:
        """(zeros, first non-empty bin, counts up to the last non-empty one)."""
        bounds = self._bounds()
        if bounds is None:
            return self.zeros, 0, []
        low, high = bounds
        return self.zeros, low, self.span[low - self.first : high + 1 - self.first].tolist()

    def _bounds(self) -> tuple[int, int] | None:
        """The lowest and highest non-empty bins above 0; None when there are none."""
        nonzero = torch.nonzero(self.span).flatten()
        if nonzero.numel() == 0:
            return None
        return self.first + int(nonzero[0]), self.first + int(nonzero[-1])

    def add(self, values: torch.Tensor) -> None:
        bins = values.reshape(-1).view(torch.int32) >> DROPPED_BITS
        above = bins[bins > 0]
        self.zeros += bins.numel() - above.numel()
        if above.numel():
            first = int(above.min())
            self.add_span(first, torch.bincount(above - first))

    def add_span(self, first: int, counts: torch.Tensor) -> None:
        """Add `counts` of bins `first`, `first + 1`, ... (first >= 1), widening the span."""
        end, own_end = first + counts.numel(), self.first + self.span.numel()
        if self.span.numel() == 0:
            self.first, self.span = first, counts.clone()
            return
        low, high = min(first, self.first), max(end, own_end)
        if (low, high) != (self.first, own_end):
            wider = torch.zeros(high - low, dtype=torch.int64)
            wider[self.first - low : own_end - low] = self.span
            self.first, self.span = low, wider
        self.span[first - self.first : end - self.first] += counts

    def merge(self, other: "Histogram") -> None:
        self.zeros += other.zeros
        if other.span.numel():
            self.add_span(other.first, other.span)

    def add_rows(self, rows: np.ndarray, first: int, last: int) -> None:
        """Add the fused kernel's per-thread counts (a (threads, N_BINS) array, binned as
        `add` bins, that is zero outside bin 0 and bins `first`..`last`), then zero them for
        the kernel's next call: reading and clearing the bins touched costs their span, not
        2 MB per row."""
        self.zeros += int(rows[:, 0].sum())
        rows[:, 0] = 0
        if first <= last:
            self.add_span(first, torch.from_numpy(rows[:, first : last + 1].sum(0)))
            rows[:, first : last + 1] = 0

    def quantiles(self) -> dict[str, float | None]:
        """The inverted-CDF quantile (smallest x with at least a fraction q of values <= x),
        rounded down to its bin's edge; None for an empty histogram."""
        cumulative = torch.cumsum(self.span, 0) + self.zeros
        total = int(cumulative[-1]) if cumulative.numel() else self.zeros
        if total == 0:
            return dict.fromkeys(QUANTILES)
        out = {}
        for key, thousandths in QUANTILES.items():
            rank = -(-total * thousandths // 1000)  # ceil(q * total) in exact integers
            if rank <= self.zeros:
                out[key] = 0.0
            else:
                index = int(torch.searchsorted(cumulative, torch.tensor([rank]))[0])
                out[key] = bin_edge(self.first + index)
        return out

    def coarse(self) -> dict:
        """A plottable histogram: bins a quarter of an octave wide (edges m·2^e, m in 1, 1.25,
        1.5, 1.75) from the lowest to the highest non-empty one. The lowest fine bin (0, and
        subnormals below 1.2e-41) is counted apart as `zeros`: a log axis has no place for 0."""
        merge = 1 << (KEPT_MANTISSA_BITS - COARSE_BITS)
        bounds = self._bounds()
        if bounds is None:
            return {"edges": [], "counts": [], "zeros": self.zeros}
        lowest, highest = bounds
        low, high = lowest // merge, highest // merge + 1  # whole coarse bins
        fine = torch.zeros((high - low) * merge, dtype=torch.int64)
        fine[lowest - low * merge : highest + 1 - low * merge] = self.span[
            lowest - self.first : highest + 1 - self.first
        ]
        counts = fine.view(-1, merge).sum(1)
        edges = [bin_edge(i * merge) for i in range(low, high + 1)]
        return {"edges": edges, "counts": counts.tolist(), "zeros": self.zeros}


def bin_edge(index: int) -> float:
    """The smallest float32 that falls in bin `index` (up to N_BINS, the end of the last)."""
    return np.array([index << DROPPED_BITS], np.uint32).view(np.float32).item()
