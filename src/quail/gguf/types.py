"""The GGUF file types quail exports and evaluates, and the numbers llama.cpp knows them by."""

from dataclasses import dataclass

from quail.errors import QuailError


@dataclass(frozen=True)
class GgufType:
    name: str  # what `quail export --type` takes, as llama-quantize spells it
    ftype: int  # llama.cpp's llama_ftype (the file type)
    tensor_type: int  # ggml_type of the file type's main tensors (per-tensor codes use it)
    block: int  # elements per ggml block of that tensor type (a row must hold whole blocks)

    @property
    def spec(self) -> str:
        return f"gguf-{self.name.lower()}"


# llama.h's LLAMA_FTYPE_* and ggml.h's GGML_TYPE_* values (stable: they are in every file)
GGUF_TYPES = {
    t.name: t
    for t in (
        GgufType("F32", 0, 0, 1),
        GgufType("F16", 1, 1, 1),
        GgufType("Q8_0", 7, 8, 32),
        GgufType("Q6_K", 18, 14, 256),
        GgufType("Q5_K_M", 17, 13, 256),
        GgufType("Q4_K_M", 15, 12, 256),
        GgufType("Q4_1", 3, 3, 32),
        GgufType("Q4_0", 2, 2, 32),
    )
}


def gguf_type(name: str) -> GgufType:
    """A type by its llama-quantize name (any case) or its spec (gguf-q4_k_m)."""
    key = name.strip().upper().removeprefix("GGUF-")
    if key not in GGUF_TYPES:
        raise QuailError(f"unknown GGUF type {name!r}: use one of {', '.join(GGUF_TYPES)}")
    return GGUF_TYPES[key]


@dataclass(frozen=True)
class TensorGrid:
    """A quantized ggml tensor type as quail's groups: `group` elements share a scale."""

    name: str
    bits: int
    group: int
    symmetric: bool  # no zero point (codes signed); else codes unsigned plus a float zero
    block: int  # elements per ggml block: a row must hold whole blocks


# ggml_type → grid, for the types quail unpacks (blocks.py)
TENSOR_GRIDS = {
    8: TensorGrid("Q8_0", 8, 32, True, 32),
    6: TensorGrid("Q5_0", 5, 32, True, 32),
    7: TensorGrid("Q5_1", 5, 32, False, 32),
    2: TensorGrid("Q4_0", 4, 32, True, 32),
    3: TensorGrid("Q4_1", 4, 32, False, 32),
    12: TensorGrid("Q4_K", 4, 32, False, 256),
    13: TensorGrid("Q5_K", 5, 32, False, 256),
    14: TensorGrid("Q6_K", 6, 16, True, 256),
}
# what llama_model_quantize stores a tensor as when its rows do not hold whole super-blocks
# (llama-quant.cpp, tensor_type_fallback): SmolLM2-135M's rows of 576, for one
FALLBACK = {12: 6, 13: 7, 14: 8}


def tensor_grid(tensor_type: int, columns: int) -> tuple[int, TensorGrid]:
    """(ggml type, grid) that llama.cpp quantizes a row of `columns` to when asked for
    `tensor_type`; None for the grid when it stores the row as F16 instead."""
    if columns % TENSOR_GRIDS[tensor_type].block:
        tensor_type = FALLBACK.get(tensor_type, tensor_type)
    grid = TENSOR_GRIDS[tensor_type]
    return tensor_type, (grid if columns % grid.block == 0 else None)
