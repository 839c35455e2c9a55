"""Quantization specs: the short strings users type (`int4`, `rtn-int3-g64-asym`, `nf4`, ...).

Grammar (case-insensitive)::

    fp                                   no quantization (full precision)
    int<B>                               shorthand for rtn-int<B> with the defaults below
    rtn-int<B>[-<granularity>][-sym|-asym]
        B            bits, 2..8
        granularity  tensor | channel | g<G> (groups of G input columns)
                     default: channel for B = 8, g64 for B < 8
        sym / asym   symmetric absmax (default) or asymmetric min/max
    nf4[-g<G>] | fp4[-g<G>]             bitsandbytes codebooks, blockwise absmax,
                                         block size G (default 64)

Why these defaults: int8 per output channel is how int8 weight-only backends ship; 4-bit and
below need groups, and 64 divides the widths of common models (576, 960, 2048, 4096) where 128
does not always.
"""

import re
from dataclasses import dataclass

from quail.errors import QuailError

MIN_BITS, MAX_BITS = 2, 8
DEFAULT_GROUP_SIZE = 64
CODEBOOKS = ("nf4", "fp4")


@dataclass(frozen=True)
class QuantSpec:
    """A parsed spec. `group_size` is None for per-tensor and per-channel granularity."""

    method: str  # "fp", "rtn", "nf4" or "fp4"
    bits: int = 32
    granularity: str = "tensor"  # "tensor", "channel" or "group"
    group_size: int | None = None
    symmetric: bool = True

    @property
    def is_fp(self) -> bool:
        return self.method == "fp"

    @property
    def name(self) -> str:
        """The canonical spelling, which `parse_spec` maps back to this spec."""
        if self.is_fp:
            return "fp"
        if self.method in CODEBOOKS:
            return f"{self.method}-g{self.group_size}"
        gran = f"g{self.group_size}" if self.granularity == "group" else self.granularity
        return f"rtn-int{self.bits}-{gran}-{'sym' if self.symmetric else 'asym'}"

    def __str__(self) -> str:
        return self.name


_RTN = re.compile(r"^(?:rtn-)?int(\d+)((?:-[a-z0-9]+)*)$")
_CODEBOOK = re.compile(r"^(nf4|fp4)(?:-g(\d+))?$")
_HELP = "use e.g. fp, int8, int4, rtn-int4-g128, rtn-int3-g64-asym, nf4, fp4-g128"


def parse_spec(text: str) -> QuantSpec:
    """Parse a spec string; raise QuailError with a one-line message on anything malformed."""
    spec = text.strip().lower()
    if spec in ("fp", "fp32", "fp16", "bf16", "none"):
        return QuantSpec(method="fp")
    match = _CODEBOOK.match(spec)
    if match:
        group = int(match.group(2) or DEFAULT_GROUP_SIZE)
        _check_group(group, text)
        return QuantSpec(method=match.group(1), bits=4, granularity="group", group_size=group)
    match = _RTN.match(spec)
    if not match:
        raise QuailError(f"unknown quantization spec {text!r}: {_HELP}")
    bits = int(match.group(1))
    if not MIN_BITS <= bits <= MAX_BITS:
        raise QuailError(
            f"bits out of range in spec {text!r}: use {MIN_BITS} to {MAX_BITS} (e.g. int4)"
        )
    granularity, group, symmetric = None, None, True
    for part in filter(None, match.group(2).split("-")):
        if part in ("sym", "asym"):
            symmetric = part == "sym"
        elif part in ("tensor", "channel") and granularity is None:
            granularity = part
        elif re.fullmatch(r"g\d+", part) and granularity is None:
            granularity, group = "group", int(part[1:])
            _check_group(group, text)
        else:
            raise QuailError(f"unknown part {part!r} in quantization spec {text!r}: {_HELP}")
    if granularity is None:
        granularity = "channel" if bits == 8 else "group"
        group = None if bits == 8 else DEFAULT_GROUP_SIZE
    return QuantSpec("rtn", bits, granularity, group, symmetric)


def _check_group(group: int, text: str) -> None:
    if group < 2:
        raise QuailError(f"group size {group} in spec {text!r} is too small: use 2 or more")
