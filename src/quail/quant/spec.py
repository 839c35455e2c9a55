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

Any spec but fp may end in ``+emb-<reference spec>``: the input and output embeddings (the
modules `include_embeddings` and `include_lm_head` add) are then quantized too, under that spec,
as file formats that keep them finer than the rest do (llama.cpp's Q4_1 SmolLM2 file: linear
layers Q4_1 = ``rtn-int4-g32-asym``, tied embedding Q8_0 = ``rtn-int8-g32``)::

    rtn-int4-g32-asym+emb-rtn-int8-g32   bnb-nf4+emb-int8

Backend specs name a real quantization library (see quail.quant.backends)::

    bnb-nf4[-dq] | bnb-fp4[-dq]         bitsandbytes 4-bit, block 64, -dq: double quantization
    bnb-int8                             bitsandbytes LLM.int8 (per-row absmax)
    quanto-int<B>[-g<G>]                 optimum-quanto, B = 2, 4 (min/max, default g128) or 8
    hqq-int<B>[-g<G>]                    HQQ, B = 2, 3, 4, 8, default g64
    ct-int<B>[-g<G>]                     compressed-tensors (llm-compressor WnA16 RTN), B = 2..8,
                                         symmetric, default g128
    gptq-int<B>[-g<G>]                   GPTQ through gptqmodel, B = 2, 4, 8, symmetric, g128
    awq-int4[-g<G>]                      AWQ through gptqmodel, 4 bits, symmetric, g128
    gguf-<type>                          llama.cpp's GGUF file types (quail.gguf): f32, f16, q8_0,
                                         q6_k, q5_k_m, q4_k_m, q4_1, q4_0

GPTQ and AWQ quantize whole models with calibration text (`load_quantized`); per tensor
(analysis, unlearning's straight-through `--quant`) they mean round-to-nearest on their grid.
GGUF specs are evaluated inside llama.cpp on the file llama.cpp's converter and quantizer write;
per tensor they mean llama.cpp's quantizer applied to that tensor with the file type's main
tensor type (Q4_K for q4_k_m, Q5_K for q5_k_m), whose sub-blocks are the groups.

Why these defaults: int8 per output channel is how int8 weight-only backends ship; 4-bit and
below need groups, and 64 divides the widths of common models (576, 960, 2048, 4096) where 128
does not always.
"""

import functools
import re
from dataclasses import dataclass, replace

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
    backend: str | None = None  # bnb, bnb-dq, quanto, hqq, ct, gptq, awq; None: our reference
    embeddings: "QuantSpec | None" = None  # the embeddings' own reference spec (`+emb-`)

    @property
    def is_fp(self) -> bool:
        return self.method == "fp"

    @property
    def linear(self) -> "QuantSpec":
        """The spec of the linear layers: this one without its `+emb-` part."""
        return replace(self, embeddings=None)

    @property
    def name(self) -> str:
        """The canonical spelling, which `parse_spec` maps back to this spec."""
        if self.embeddings is not None:
            return f"{self.linear.name}+emb-{self.embeddings.name}"
        if self.is_fp:
            return "fp"
        if self.backend is not None:
            return _backend_name(self)
        if self.method in CODEBOOKS:
            return f"{self.method}-g{self.group_size}"
        gran = f"g{self.group_size}" if self.granularity == "group" else self.granularity
        return f"rtn-int{self.bits}-{gran}-{'sym' if self.symmetric else 'asym'}"

    def __str__(self) -> str:
        return self.name


_RTN = re.compile(r"^(?:rtn-)?int(\d+)((?:-[a-z0-9]+)*)$")
_CODEBOOK = re.compile(r"^(nf4|fp4)(?:-g(\d+))?$")
_HELP = (
    "use e.g. fp, int8, int4, rtn-int4-g128, rtn-int3-g64-asym, nf4, fp4-g128, "
    "bnb-nf4, quanto-int4, hqq-int4-g64, ct-int4-g128, gptq-int4-g128, awq-int4-g128, "
    "gguf-q4_k_m"
)

# Backend specs: the grid fields (method, bits, granularity, group, symmetric) describe the
# grid each backend quantizes onto; `backend` says whose code computes it.
BNB_SPECS = {
    "bnb-nf4": QuantSpec("nf4", 4, "group", 64, backend="bnb"),
    "bnb-nf4-dq": QuantSpec("nf4", 4, "group", 64, backend="bnb-dq"),
    "bnb-fp4": QuantSpec("fp4", 4, "group", 64, backend="bnb"),
    "bnb-fp4-dq": QuantSpec("fp4", 4, "group", 64, backend="bnb-dq"),
    "bnb-int8": QuantSpec("rtn", 8, "channel", backend="bnb"),
}
# llama.cpp's file types. The grid fields describe the main tensor type's sub-blocks (scale d,
# or d·sc in K-quants); "float" types have no integer grid (evaluation only).
GGUF_SPECS = {
    f"gguf-{name}": QuantSpec(method, bits, gran, group, sym, backend=f"gguf-{name}")
    for name, method, bits, gran, group, sym in (
        ("f32", "float", 32, "tensor", None, True),
        ("f16", "float", 16, "tensor", None, True),
        ("q8_0", "rtn", 8, "group", 32, True),
        ("q6_k", "rtn", 6, "group", 16, True),
        ("q5_k_m", "rtn", 5, "group", 32, False),
        ("q4_k_m", "rtn", 4, "group", 32, False),
        ("q4_1", "rtn", 4, "group", 32, False),
        ("q4_0", "rtn", 4, "group", 32, True),
    )
}
BACKEND_BITS = {
    "quanto": (2, 4, 8),
    "hqq": (2, 3, 4, 8),
    "ct": (2, 3, 4, 5, 6, 7, 8),
    "gptq": (2, 4, 8),  # 3-bit GPTQ packs codes across words; not read here
    "awq": (4,),  # gptqmodel's AWQ GEMM format is 4-bit
}
BACKEND_GROUP = {"quanto": 128, "hqq": 64, "ct": 128, "gptq": 128, "awq": 128}
SYMMETRIC_BACKENDS = ("ct", "gptq", "awq")  # gptqmodel's defaults for GPTQ and AWQ
_BACKEND = re.compile(r"^([a-z]+)-int(\d+)(?:-g(\d+))?$")


def parse_spec(text: str) -> QuantSpec:
    """Parse a spec string; raise QuailError with a one-line message on anything malformed.
    Each string is parsed once: configs keep the text (it is what results record), and every
    later call returns the same frozen spec."""
    if not isinstance(text, str):  # e.g. a YAML list item that parsed as a number
        raise QuailError(f"quantization spec {text!r} is not a spec string: write e.g. int4")
    return _parse(text)


@functools.cache
def _parse(text: str) -> QuantSpec:
    spec = text.strip().lower()
    if "+" in spec:
        return _parse_with_embeddings(spec, text)
    if spec in ("fp", "fp32", "fp16", "bf16", "none"):
        return QuantSpec(method="fp")
    match = _CODEBOOK.match(spec)
    if match:
        group = int(match.group(2) or DEFAULT_GROUP_SIZE)
        _check_group(group, text)
        return QuantSpec(method=match.group(1), bits=4, granularity="group", group_size=group)
    if spec.split("-")[0] in BACKEND_BITS or spec.startswith(("bnb-", "gguf-")):
        return _parse_backend(spec, text)
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


def _parse_with_embeddings(spec: str, text: str) -> QuantSpec:
    base, sep, embeddings = spec.partition("+emb-")
    if not sep or "+" in base or "+" in embeddings:
        raise QuailError(
            f"unknown quantization spec {text!r}: '+' only adds the embeddings' spec, as in "
            "rtn-int4-g32-asym+emb-rtn-int8-g32"
        )
    outer, inner = parse_spec(base), parse_spec(embeddings)
    if outer.is_fp:
        raise QuailError(
            f"spec {text!r} quantizes the embeddings only: quantize the linear layers too, as "
            "in int4+emb-int8"
        )
    if (outer.backend or "").startswith("gguf-"):
        raise QuailError(
            f"spec {text!r}: a GGUF file type already sets its embeddings' type (llama.cpp "
            "chooses it): drop the '+emb-' part"
        )
    if outer.backend in ("gptq", "awq"):
        raise QuailError(
            f"spec {text!r}: {outer.backend} specs do not take an '+emb-' part yet; use a "
            "per-layer backend or a reference spec for the linear layers"
        )
    if inner.is_fp or inner.backend is not None:
        raise QuailError(
            f"the embeddings' spec in {text!r} must be a reference spec such as int8 or "
            "rtn-int8-g32 (backends leave embeddings alone)"
        )
    return replace(outer, embeddings=inner)


def _parse_backend(spec: str, text: str) -> QuantSpec:
    if spec in BNB_SPECS:
        return BNB_SPECS[spec]
    if spec.startswith("gguf-"):
        if spec not in GGUF_SPECS:
            known = ", ".join(GGUF_SPECS)
            raise QuailError(f"unknown GGUF type in spec {text!r}: use one of {known}")
        return GGUF_SPECS[spec]
    match = _BACKEND.match(spec)
    if not match or match.group(1) not in BACKEND_BITS:
        raise QuailError(f"unknown quantization spec {text!r}: {_HELP}")
    backend, bits = match.group(1), int(match.group(2))
    if bits not in BACKEND_BITS[backend]:
        allowed = ", ".join(map(str, BACKEND_BITS[backend]))
        raise QuailError(f"bits out of range in spec {text!r}: {backend} supports {allowed} bits")
    if backend == "quanto" and bits == 8:  # quanto's int8 is per output channel, no groups
        if match.group(3):
            raise QuailError(f"quanto int8 is per output channel: drop the group in {text!r}")
        return QuantSpec("rtn", 8, "channel", None, True, backend)
    group = int(match.group(3) or BACKEND_GROUP[backend])
    _check_group(group, text)
    return QuantSpec("rtn", bits, "group", group, backend in SYMMETRIC_BACKENDS, backend)


def _backend_name(spec: QuantSpec) -> str:
    if spec.backend.startswith("gguf-"):
        return spec.backend
    if spec.backend.startswith("bnb"):
        kind = "int8" if spec.method == "rtn" else spec.method
        return f"bnb-{kind}" + ("-dq" if spec.backend == "bnb-dq" else "")
    group = f"-g{spec.group_size}" if spec.granularity == "group" else ""
    return f"{spec.backend}-int{spec.bits}{group}"


def _check_group(group: int, text: str) -> None:
    if group < 2:
        raise QuailError(f"group size {group} in spec {text!r} is too small: use 2 or more")
