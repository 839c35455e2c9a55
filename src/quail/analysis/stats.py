"""Sums over a layer's weights from which every analysis figure follows.

Figures are ratios of sums, so a whole model's figures come from the summed sums of its layers
(exact aggregation, weighted by element count and by inner products), never from averaging the
layers' figures. Sums are taken in float32 per chunk (at most a few million elements, see
`quail.analysis.compare.CHUNK_ELEMENTS`) and added up in Python floats (float64).
"""

import math
from dataclasses import dataclass, field

import torch

from quail.analysis import fused
from quail.analysis.histogram import DROPPED_BITS, Histogram
from quail.quant import QuantSpec, quantize_tensor


@dataclass
class ChangeStats:
    elements: int = 0
    weighed: int = 0  # elements whose weights are known (all but GGUF codes read without them)
    same_bucket: int = 0  # each tensor quantized with its own scales
    same_bucket_fixed: int = 0  # W1 quantized with W0's scales
    changed: int = 0  # W1 != W0
    half_step: int = 0  # |W1 - W0| >= Δ/2, Δ from W0's quantization
    abs_change_sum: float = 0.0
    abs_change_max: float = 0.0
    half_steps_max: float = 0.0
    change_sq: float = 0.0  # ‖W1 - W0‖²
    original_sq: float = 0.0  # ‖W0‖²
    quantized_change_sq: float = 0.0  # ‖Q(W1) - Q(W0)‖²
    inner: float = 0.0  # ⟨Q(W1) - Q(W0), W1 - W0⟩
    abs_change: Histogram = field(default_factory=Histogram)
    half_steps: Histogram = field(default_factory=Histogram)

    @torch.no_grad()
    def add(self, w0: torch.Tensor, w1: torch.Tensor, spec: QuantSpec) -> None:
        """Account for one chunk of rows (whole quantization groups) of a weight pair."""
        if fused.covers(spec, tuple(w0.shape)):
            self.add_fused(w0, w1, spec)
        else:
            self.add_torch(w0, w1, spec)

    def add_fused(self, w0: torch.Tensor, w1: torch.Tensor, spec: QuantSpec) -> None:
        """`add` in one compiled pass (quail.analysis.fused): the reference RTN specs."""
        figures = fused.change_sums(w0, w1, spec, self.abs_change, self.half_steps, DROPPED_BITS)
        self.elements += w0.numel()
        self.weighed += w0.numel()
        for name in (*fused.SUMS, *fused.COUNTS):
            setattr(self, name, getattr(self, name) + figures[name])
        for name in fused.MAXIMA:
            setattr(self, name, max(getattr(self, name), figures[name]))

    def add_torch(self, w0: torch.Tensor, w1: torch.Tensor, spec: QuantSpec) -> None:
        """`add` in torch: any spec, backends included (their codes come from the library)."""
        w0, w1 = w0.to(torch.float32), w1.to(torch.float32)
        q0 = quantize_tensor(w0, spec)
        q1 = quantize_tensor(w1, spec)
        fixed = quantize_tensor(w1, spec, like=q0)  # reuses q0's scales: no new absmax pass
        self.add_codes(q0, q1, w0, w1, fixed)

    def add_codes(self, q0, q1, w0=None, w1=None, fixed=None) -> None:
        """Account for the codes q0, q1 of a weight pair, quantized by `add_torch` or elsewhere
        (a GGUF file's, quail.gguf.read). Without the float32 weights w0, w1 they came from only
        bucket overlap is known; with them, `fixed` is w1 rounded on q0's scales."""
        buckets0 = q0.buckets
        self.elements += math.prod(q0.shape)
        self.same_bucket += int(torch.count_nonzero(buckets0 == q1.buckets))
        if w0 is None:
            return
        self.weighed += w0.numel()
        self.same_bucket_fixed += int(torch.count_nonzero(buckets0 == fixed.buckets))

        change = (w1 - w0).reshape(-1)
        quantized_change = (q1.dequantize() - q0.dequantize()).reshape(-1)
        self.change_sq += torch.dot(change, change).item()
        self.quantized_change_sq += torch.dot(quantized_change, quantized_change).item()
        self.inner += torch.dot(quantized_change, change).item()
        flat0 = w0.reshape(-1)
        self.original_sq += torch.dot(flat0, flat0).item()

        abs_change = change.abs_()
        self.changed += int(torch.count_nonzero(abs_change))
        self.abs_change_sum += abs_change.sum().item()
        self.abs_change_max = max(self.abs_change_max, abs_change.max().item())
        self.abs_change.add(abs_change)
        half_steps = abs_change.div_(q0.step().reshape(-1)).mul_(2).abs_()  # in place; abs:
        # inf/inf's NaN has its sign set, and would bin below 0
        self.half_step += int(torch.count_nonzero(half_steps >= 1))
        self.half_steps_max = max(self.half_steps_max, half_steps.max().item())
        self.half_steps.add(half_steps)

    def merge(self, other: "ChangeStats") -> None:
        for name in (
            "elements", "weighed", "same_bucket", "same_bucket_fixed", "changed", "half_step",
            "abs_change_sum", "change_sq", "original_sq", "quantized_change_sq", "inner",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.abs_change_max = max(self.abs_change_max, other.abs_change_max)
        self.half_steps_max = max(self.half_steps_max, other.half_steps_max)
        self.abs_change.merge(other.abs_change)
        self.half_steps.merge(other.half_steps)

    def figures(self, histogram: bool = False) -> dict:
        """The documented per-layer / summary fields (docs/ANALYSIS.md); None where undefined.
        With `histogram`, a coarse histogram of the change in half steps, for plots. Figures
        of the weights are None where only codes were given."""
        n, w = self.elements, self.weighed
        return {
            "elements": n,
            "bucket_overlap": _ratio(self.same_bucket, n),
            "fixed_scale_overlap": _ratio(self.same_bucket_fixed, w),
            "changed_fraction": _ratio(self.changed, w),
            "half_step_fraction": _ratio(self.half_step, w),
            "relative_change_norm": _sqrt(_ratio(self.change_sq, self.original_sq)),
            "update_survival": _ratio(self.inner, self.change_sq),
            "update_cosine": _ratio(
                self.inner, math.sqrt(self.change_sq * self.quantized_change_sq)
            ),
            "abs_change": {
                "mean": _ratio(self.abs_change_sum, w),
                **self.abs_change.quantiles(),
                "max": self.abs_change_max if w else None,
            },
            "change_in_half_steps": {
                **self.half_steps.quantiles(),
                "max": self.half_steps_max if w else None,
                **({"histogram": self.half_steps.coarse()} if histogram else {}),
            },
        }


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _sqrt(value: float | None) -> float | None:
    return None if value is None else math.sqrt(value)
