"""`analyze`: compare an original and an unlearned model layer by layer under a quantization spec.

Each layer is processed in chunks of whole rows (whole quantization groups), so memory stays at
a few chunks of float32 however large the tensor. Two cases read a tensor in one chunk:
per-tensor granularity (one absmax for the tensor) and backend specs (the library owns the
layout; bitsandbytes' double quantization, for one, offsets absmax by the tensor-wide mean).
"""

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from quail.analysis.stats import ChangeStats
from quail.analysis.weights import open_weights
from quail.errors import QuailError
from quail.quant import QuantSpec, parse_spec

CHUNK_ELEMENTS = 1 << 22  # 16 MB of float32 per operand: big enough for fast kernels, small
# enough that temporaries stay in the allocator's reused memory rather than fresh pages


@dataclass
class AnalysisResult:
    """What `quail analyze` prints and writes; `to_dict()` is the JSON (docs/ANALYSIS.md)."""

    spec: str
    original: str
    unlearned: str
    include_lm_head: bool
    include_embeddings: bool
    layer_selection: str
    counts: dict
    summary: dict
    layers: list[dict]

    def to_dict(self) -> dict:
        return {"schema_version": 1, **asdict(self)}


def analyze(
    original,
    unlearned,
    spec: str | QuantSpec,
    include_lm_head: bool = False,
    include_embeddings: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> AnalysisResult:
    """Bucket overlap, weight-change statistics and update survival of `unlearned` against
    `original` (each an nn.Module or a model folder path) under `spec`.

    A spec with an `+emb-` part adds the embeddings and the lm_head, each under that part.
    `progress(layer_name, done, total)` is called after each layer.
    """
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    if spec.is_fp:
        raise QuailError("spec 'fp' means no quantization: analyse under a spec such as int4")
    linear_spec = spec.linear
    specs = {}  # layers under another spec: the embeddings of an `+emb-` spec
    if spec.embeddings is not None:
        plain = open_weights(original, False, False).shapes
        include_lm_head = include_embeddings = True
    weights0 = open_weights(original, include_lm_head, include_embeddings)
    if spec.embeddings is not None:
        specs = {name: spec.embeddings for name in weights0.shapes if name not in plain}
    weights1 = open_weights(unlearned, include_lm_head, include_embeddings)
    if not weights0.shapes:
        raise QuailError(f"{weights0.label} has no quantizable weights: nothing to analyse")
    check_same_layers(weights0, weights1)
    for name, shape in weights0.shapes.items():
        check_groups(name, shape, specs.get(name, linear_spec))

    total, layers = ChangeStats(), []
    for done, (name, shape) in enumerate(weights0.shapes.items(), start=1):
        stats, layer_spec = ChangeStats(), specs.get(name, linear_spec)
        with weights0.open(name) as rows0, weights1.open(name) as rows1:
            for start, stop in row_chunks(shape, layer_spec):
                stats.add(rows0[start:stop], rows1[start:stop], layer_spec)
            if not (math.isfinite(stats.change_sq) and math.isfinite(stats.original_sq)):
                sides = (("original", weights0, rows0), ("unlearned", weights1, rows1))
                raise QuailError(non_finite(name, shape, sides))
        layers.append(
            {"name": name, "shape": list(shape), "spec": layer_spec.name, **stats.figures()}
        )
        total.merge(stats)
        if progress is not None:
            progress(name, done, len(weights0.shapes))
    return AnalysisResult(
        spec=spec.name,
        original=weights0.label,
        unlearned=weights1.label,
        include_lm_head=include_lm_head,
        include_embeddings=include_embeddings,
        layer_selection=weights0.selection,
        counts={"layers": len(layers), "elements": total.elements},
        summary=total.figures(histogram=True),
        layers=layers,
    )


def check_same_layers(weights0, weights1) -> None:
    for name, shape in weights0.shapes.items():
        other = weights1.shapes.get(name)
        if other is None:
            raise QuailError(
                f"{weights1.label} has no layer {name}, which {weights0.label} has: "
                "compare two checkpoints of the same architecture"
            )
        if other != shape:
            raise QuailError(
                f"shapes differ: {name} is {shape} in {weights0.label} but {other} in "
                f"{weights1.label}: compare two checkpoints of the same architecture"
            )
    extra = sorted(set(weights1.shapes) - set(weights0.shapes))
    if extra:
        raise QuailError(
            f"{weights1.label} has layer {extra[0]}, which {weights0.label} lacks: "
            "compare two checkpoints of the same architecture"
        )


def non_finite(name: str, shape: tuple[int, ...], sides) -> str:
    """The error for a layer whose sums came out NaN or inf: which model holds non-finite
    weights (buckets and steps mean nothing there), read again only now that it failed."""
    for role, weights, rows in sides:
        if not torch.isfinite(rows[0 : shape[0]].float()).all():
            return (
                f"the {role} model {weights.label} has NaN or inf weights in {name}: "
                "quantization buckets are undefined there; analyse a checkpoint from before "
                "the values broke"
            )
    return (
        f"the weights of {name} are too large for float32 sums (|w| above ~1e19): "
        "analyse a checkpoint with finite, usual-sized weights"
    )


def check_groups(name: str, shape: tuple[int, ...], spec: QuantSpec) -> None:
    """Fail before any work, naming the layer, rather than on the first chunk of it."""
    columns = math.prod(shape[1:])
    reference_groups = spec.backend is None and spec.granularity == "group"
    if spec.method == "rtn" and reference_groups and columns % spec.group_size:
        raise QuailError(
            f"group size {spec.group_size} does not divide the {columns} input columns of "
            f"{name} {shape}: pick a group size that divides {columns}"
        )


def row_chunks(shape: tuple[int, ...], spec: QuantSpec):
    """(start, stop) row ranges of about CHUNK_ELEMENTS that never split a quantization group."""
    rows, columns = shape[0], max(1, math.prod(shape[1:]))
    whole = spec.backend is not None or (spec.method == "rtn" and spec.granularity == "tensor")
    if len(shape) < 2 or whole:
        step = rows
    else:
        step = max(1, CHUNK_ELEMENTS // columns)
        if spec.method in ("nf4", "fp4"):  # blocks run over the flattened tensor
            align = spec.group_size // math.gcd(columns, spec.group_size)
            step = max(align, step // align * align)
    for start in range(0, rows, step):
        yield start, min(start + step, rows)
