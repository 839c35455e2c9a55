"""Codes as a GGUF file stores them, tensor by tensor, in the type llama.cpp chose for each
(a Q4_K_M file holds Q4_K, Q6_K and F32 tensors), and the comparison of two such files: bucket
overlap on the real codes, update survival against the models' full-precision weights."""

import numpy as np
import torch

from quail.gguf.blocks import unpack
from quail.gguf.types import TENSOR_GRIDS
from quail.quant.spec import QuantSpec
from quail.quant.tensor import QuantizedTensor


def file_codes(path) -> dict[str, QuantizedTensor]:
    """{tensor name: its codes and scales} for every tensor of a type quail unpacks
    (TENSOR_GRIDS); float tensors (norms, F16/F32 layers) are left out."""
    import gguf

    found = {}
    for tensor in gguf.GGUFReader(path).tensors:
        grid = TENSOR_GRIDS.get(int(tensor.tensor_type))
        if grid is None:
            continue
        block_bytes = gguf.GGML_QUANT_SIZES[tensor.tensor_type][1]
        codes, scale, zero = unpack(np.asarray(tensor.data).reshape(-1, block_bytes), grid.name)
        label = f"gguf-{grid.name.lower()}"  # a tensor type's name, not a spec users type
        spec = QuantSpec("rtn", grid.bits, "group", grid.group, grid.symmetric, backend=label)
        shape = torch.Size(reversed([int(n) for n in tensor.shape]))  # ggml lists columns first
        found[tensor.name] = QuantizedTensor(
            spec,
            shape,
            0,
            torch.from_numpy(codes),
            torch.from_numpy(scale),
            None if zero is None else torch.from_numpy(zero),
        )
    return found


def float_weights(path) -> dict[str, torch.Tensor]:
    """The float32 tensors of an F32 GGUF file (what the converter writes before quantizing)."""
    import gguf

    return {
        t.name: torch.from_numpy(np.array(t.data, dtype=np.float32)).reshape(
            tuple(reversed([int(n) for n in t.shape]))
        )
        for t in gguf.GGUFReader(path).tensors
        if t.tensor_type == gguf.GGMLQuantizationType.F32
    }


def compare_files(original, unlearned, original_f32=None, unlearned_f32=None) -> dict:
    """Per tensor and overall: the type llama.cpp stored it in, bucket overlap (codes equal, each
    file with its own scales) and, given both models' F32 files, update survival
    ⟨Q(W1) − Q(W0), W1 − W0⟩ / ‖W1 − W0‖² with Q the files' own dequantized values."""
    codes0, codes1 = file_codes(original), file_codes(unlearned)
    fp0 = float_weights(original_f32) if original_f32 else {}
    fp1 = float_weights(unlearned_f32) if unlearned_f32 else {}
    layers, same, total, inner, norm = [], 0, 0, 0.0, 0.0
    for name, q0 in codes0.items():
        q1 = codes1.get(name)
        if q1 is None or q1.spec != q0.spec:
            continue  # llama.cpp chose different types: no common buckets
        equal = int((q0.codes == q1.codes).sum())
        row = {"name": name, "type": q0.spec.name, "bucket_overlap": equal / q0.codes.numel()}
        same, total = same + equal, total + q0.codes.numel()
        if name in fp0 and name in fp1:
            change = (fp1[name] - fp0[name]).double()
            kept = (q1.dequantize() - q0.dequantize()).double()
            dot, sq = float((kept * change).sum()), float((change * change).sum())
            row["update_survival"] = dot / sq if sq else None
            inner, norm = inner + dot, norm + sq
        layers.append(row)
    summary = {"bucket_overlap": same / total if total else None}
    if fp0 and fp1:
        summary["update_survival"] = inner / norm if norm else None
    return {"summary": summary, "layers": layers}
