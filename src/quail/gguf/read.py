"""Codes as a GGUF file stores them, tensor by tensor, in the type llama.cpp chose for each
(a Q4_K_M file holds Q4_K, Q6_K and F32 tensors), and the analysis of two such files
(`analyze_files`): quail.analysis's figures computed on the files' own codes."""

import contextlib
import math
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from quail.analysis.compare import AnalysisResult
from quail.analysis.stats import ChangeStats
from quail.errors import QuailError
from quail.gguf.blocks import unpack
from quail.gguf.codes import round_on
from quail.gguf.types import GGUF_TYPES, TENSOR_GRIDS
from quail.quant.spec import QuantSpec
from quail.quant.tensor import QuantizedTensor

FLOAT_TYPES = (0, 1)  # ggml's F32 and F16: the weights an fp file holds


def open_file(path):
    """A GGUF file's reader (a memory map), or a one-line error for what is not one."""
    import gguf

    path = Path(path)
    if not path.is_file():
        raise QuailError(f"{path}: no such file; give a GGUF file (quail export writes one)")
    try:
        return gguf.GGUFReader(path)
    except Exception as error:  # gguf raises ValueError on a bad magic, others when truncated
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise QuailError(
            f"{path} is not a GGUF file ({reason}): give files written by quail export or "
            "llama-quantize"
        ) from None


def _shape(tensor) -> tuple[int, ...]:
    return tuple(reversed([int(n) for n in tensor.shape]))  # ggml lists columns first


def tensor_codes(tensor) -> QuantizedTensor | None:
    """A file tensor's codes and scales; None for a type quail does not unpack (floats)."""
    import gguf

    grid = TENSOR_GRIDS.get(int(tensor.tensor_type))
    if grid is None:
        return None
    block_bytes = gguf.GGML_QUANT_SIZES[tensor.tensor_type][1]
    codes, scale, zero = unpack(np.asarray(tensor.data).reshape(-1, block_bytes), grid.name)
    label = f"gguf-{grid.name.lower()}"  # a tensor type's name, not a spec users type
    spec = QuantSpec("rtn", grid.bits, "group", grid.group, grid.symmetric, backend=label)
    return QuantizedTensor(
        spec,
        torch.Size(_shape(tensor)),
        0,
        torch.from_numpy(codes),
        torch.from_numpy(scale),
        None if zero is None else torch.from_numpy(zero),
    )


def file_codes(path) -> dict[str, QuantizedTensor]:
    """{tensor name: its codes and scales} for every tensor of a type quail unpacks
    (TENSOR_GRIDS); float tensors (norms, F16/F32 layers) are left out."""
    found = {}
    for tensor in open_file(path).tensors:
        codes = tensor_codes(tensor)
        if codes is not None:
            found[tensor.name] = codes
    return found


def _float(tensor) -> torch.Tensor:
    return torch.from_numpy(np.array(tensor.data, dtype=np.float32)).reshape(_shape(tensor))


def analyze_files(
    original,
    unlearned,
    original_fp=None,
    unlearned_fp=None,
    progress: Callable[[str, int, int], None] | None = None,
) -> AnalysisResult:
    """quail.analysis's figures (docs/ANALYSIS.md) of two GGUF files of one model and type,
    computed on the codes the files hold: every quantized tensor, in the type llama.cpp chose
    for it, K-quant super-block scales and mins included. Bucket overlap needs the files
    alone; the other figures (update survival, fixed-scale overlap, ...) need the weights both
    were quantized from: `original_fp` and `unlearned_fp`, each an F32 or F16 GGUF file or a
    model folder (then converted to F32 by llama.cpp's converter)."""
    if (original_fp is None) != (unlearned_fp is None):
        raise QuailError("give the fp weights of both models (original and unlearned), or neither")
    reader0, reader1 = open_file(original), open_file(unlearned)
    tensors0 = {t.name: t for t in reader0.tensors if int(t.tensor_type) in TENSOR_GRIDS}
    tensors1 = {t.name: t for t in reader1.tensors if int(t.tensor_type) in TENSOR_GRIDS}
    if not tensors0:
        raise QuailError(
            f"{original} holds no quantized tensors (an F32 or F16 file?): compare quantized "
            "files, and give F32 ones as the fp weights"
        )
    _check_same(tensors0, tensors1, original, unlearned)
    with contextlib.ExitStack() as stack:
        fp = None
        if original_fp is not None:
            fp = [
                _float_tensors(stack.enter_context(_fp_file(source)), tensors0)
                for source in (original_fp, unlearned_fp)
            ]
        total, layers = ChangeStats(), []
        for done, (name, tensor0) in enumerate(tensors0.items(), start=1):
            stats, q0, q1 = ChangeStats(), tensor_codes(tensor0), tensor_codes(tensors1[name])
            if fp is None:
                stats.add_codes(q0, q1)
            else:
                w0, w1 = _float(fp[0][name]), _float(fp[1][name])
                grid = TENSOR_GRIDS[int(tensor0.tensor_type)]
                stats.add_codes(q0, q1, w0, w1, round_on(w1, q0, grid))
                if not (math.isfinite(stats.change_sq) and math.isfinite(stats.original_sq)):
                    raise QuailError(f"the fp weights of {name} are not finite: check the files")
            row = {"name": name, "shape": list(q0.shape), "spec": q0.spec.name}
            layers.append(row | stats.figures())
            total.merge(stats)
            if progress is not None:
                progress(name, done, len(tensors0))
    return AnalysisResult(
        spec=_file_type(reader0),
        original=str(original),
        unlearned=str(unlearned),
        include_lm_head="output.weight" in tensors0,
        include_embeddings="token_embd.weight" in tensors0,
        layer_selection="every quantized tensor of the files",
        counts={"layers": len(layers), "elements": total.elements},
        summary=total.figures(histogram=True),
        layers=layers,
    )


def _check_same(tensors0: dict, tensors1: dict, original, unlearned) -> None:
    """The two files hold the same quantized tensors, of the same shapes and types."""
    for name, tensor in tensors0.items():
        other = tensors1.get(name)
        if other is None:
            raise QuailError(
                f"{unlearned} has no quantized tensor {name}, which {original} has: compare "
                "files of one model and one type"
            )
        if _shape(other) != _shape(tensor):
            raise QuailError(
                f"shapes differ: {name} is {_shape(tensor)} in {original} but {_shape(other)} "
                f"in {unlearned}: compare files of one model"
            )
        if other.tensor_type != tensor.tensor_type:
            raise QuailError(
                f"{name} is {tensor.tensor_type.name} in {original} but "
                f"{other.tensor_type.name} in {unlearned}: compare files of one type "
                "(quail export --type)"
            )
    extra = sorted(set(tensors1) - set(tensors0))
    if extra:
        raise QuailError(
            f"{unlearned} has quantized tensor {extra[0]}, which {original} lacks: compare "
            "files of one model and one type"
        )


def _float_tensors(path: Path, wanted: dict) -> dict:
    """The F32/F16 tensors of `path` for every tensor in `wanted`, of the same shapes."""
    found = {t.name: t for t in open_file(path).tensors if int(t.tensor_type) in FLOAT_TYPES}
    for name, tensor in wanted.items():
        if name not in found or _shape(found[name]) != _shape(tensor):
            raise QuailError(
                f"{path} holds no F32 or F16 tensor {name} of shape {_shape(tensor)}: give the "
                "fp weights of the same model (a model folder, or its F32 file)"
            )
    return found


@contextlib.contextmanager
def _fp_file(source):
    """`source` as an fp GGUF file: itself, or a model folder converted to F32 by llama.cpp's
    converter into a temporary folder, removed afterwards."""
    source = Path(source)
    if not source.is_dir():
        yield source
        return
    from quail.gguf.export import export_gguf

    tmp = Path(tempfile.mkdtemp(prefix="quail-gguf-fp-"))
    try:
        yield export_gguf(source, tmp / "model-f32.gguf", "F32", progress=lambda line: None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _file_type(reader) -> str:
    """The file type a file says it is (general.file_type), as a gguf spec's name."""
    field = reader.fields.get("general.file_type")
    ftype = int(field.parts[-1][0]) if field is not None else None
    kind = next((t for t in GGUF_TYPES.values() if t.ftype == ftype), None)
    return kind.spec if kind is not None else f"gguf file type {ftype}"
