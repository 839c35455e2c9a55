"""Quantize one tensor: integer codes, per-group scales (and zeros), dequantization, step Δ."""

from dataclasses import dataclass, replace

import torch

from quail.errors import QuailError
from quail.quant import codebook, rtn
from quail.quant.backends import adapter
from quail.quant.grouping import from_groups, to_groups
from quail.quant.spec import QuantSpec


@dataclass
class QuantizedTensor:
    """Codes and scales in the grouped layout `(n_groups, group_len)`.

    `scale` is Δ for RTN and the block absmax for NF4/FP4; `zero` is the asymmetric offset
    (None otherwise). `codes`, `dequantize()` and `step()` come back in the weight's shape.
    """

    spec: QuantSpec
    shape: torch.Size
    pad: int
    group_codes: torch.Tensor
    scale: torch.Tensor
    zero: torch.Tensor | None = None

    @property
    def codes(self) -> torch.Tensor:
        return from_groups(self.group_codes, self.shape, self.pad)

    @property
    def buckets(self) -> torch.Tensor:
        """Codes that name the decoded value: equal to `codes` except FP4's -0, mapped to +0.
        Bucket overlap compares these."""
        codes = self.codes
        if self.spec.method == "fp4":
            codes = torch.where(codes == codebook.FP4_NEGATIVE_ZERO, 0, codes).to(codes.dtype)
        return codes

    def dequantize(self) -> torch.Tensor:
        if self.spec.method == "rtn":
            values = rtn.rtn_values(self.group_codes, self.scale, self.zero)
        else:
            values = codebook.codebook_values(self.group_codes, self.scale, self.spec.method)
        return from_groups(values, self.shape, self.pad)

    def step(self) -> torch.Tensor:
        """Per-element step Δ: the group's Δ for RTN, the width of the element's bucket for
        codebooks. Half of it is how far a weight may move before it can change bucket."""
        if self.spec.method == "rtn":
            steps = self.scale.expand_as(self.group_codes).clone()  # callers may modify it
        else:
            steps = codebook.codebook_bucket_widths(self.group_codes, self.scale, self.spec.method)
        return from_groups(steps, self.shape, self.pad)


def quantize_tensor(
    weight: torch.Tensor, spec: QuantSpec, like: QuantizedTensor | None = None
) -> QuantizedTensor:
    """Quantize `weight` under `spec`; with `like`, reuse its scales and zeros (fixed grid).

    A backend spec (bnb-nf4, hqq-int4-g64, ...) gets its codes and scales from that library's
    adapter; with `like`, `weight` is rounded to nearest on `like`'s backend scales and zeros by
    quail's own rounding (GGUF specs: on the tensor's own ggml type's range, by their adapter).
    """
    if spec.is_fp:
        raise QuailError("spec 'fp' means no quantization: pick a quantized spec such as int4")
    if spec.backend is not None and like is None:
        return adapter(spec).codes(weight, spec)
    if spec.backend is not None and spec.backend.startswith("gguf-"):
        return adapter(spec).codes(weight, spec, like)
    if spec.backend is not None:  # a fixed backend grid: quail's rounding on its scales
        grid = replace(spec, backend=None)
        like = replace(like, spec=grid) if like.spec == spec else like
        return replace(quantize_tensor(weight, grid, like=like), spec=spec)
    groups, pad = to_groups(weight, spec)
    if like is not None and (like.spec != spec or tuple(like.shape) != tuple(weight.shape)):
        raise QuailError(
            f"cannot reuse the scales of a {tuple(like.shape)} tensor quantized as {like.spec} "
            f"for a {tuple(weight.shape)} tensor under {spec}: shapes and specs must match"
        )
    if spec.method == "rtn":
        if like is None:
            scale, zero = rtn.rtn_scales(groups, spec.bits, spec.symmetric)
        else:
            scale, zero = like.scale, like.zero
        codes = rtn.rtn_codes(groups, scale, zero, spec.bits, spec.symmetric)
    else:
        scale = codebook.codebook_scales(groups) if like is None else like.scale
        zero = None
        codes = codebook.codebook_codes(groups, scale, spec.method)
    return QuantizedTensor(spec, weight.shape, pad, codes, scale, zero)


def fake_quantize(weight: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """The dequantized weight in the weight's own dtype (what a fake-quantized model holds)."""
    if spec.is_fp:
        return weight.detach().clone()
    return quantize_tensor(weight, spec).dequantize().to(weight.dtype)
