"""ggml's own quantizer and dequantizer for one tensor, called in the library llama-cpp-python
ships (`ggml_quantize_chunk` is what llama_model_quantize runs on each tensor; `to_float` is
how llama.cpp reads a block back)."""

import ctypes
import functools

import numpy as np

from quail.gguf.llamacpp import llama_cpp


class _TypeTraits(ctypes.Structure):  # ggml.h, struct ggml_type_traits
    _fields_ = [
        ("type_name", ctypes.c_char_p),
        ("blck_size", ctypes.c_int64),
        ("blck_size_interleave", ctypes.c_int64),
        ("type_size", ctypes.c_size_t),
        ("is_quantized", ctypes.c_bool),
        ("to_float", ctypes.c_void_p),
        ("from_float_ref", ctypes.c_void_p),
    ]


_TO_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


def _lib():
    llama_cpp()  # a missing build fails here with the install command, every time
    return _bound()


@functools.cache
def _bound():
    from llama_cpp._ggml import libggml

    libggml.ggml_quantize_chunk.argtypes = [
        ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
        ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
    ]  # fmt: skip
    libggml.ggml_quantize_chunk.restype = ctypes.c_size_t
    libggml.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
    libggml.ggml_row_size.restype = ctypes.c_size_t
    libggml.ggml_get_type_traits.argtypes = [ctypes.c_int]
    libggml.ggml_get_type_traits.restype = ctypes.POINTER(_TypeTraits)
    return libggml


def quantize_rows(rows: np.ndarray, tensor_type: int) -> np.ndarray:
    """ggml's blocks of a float32 (rows, columns) matrix, as (rows, bytes per row) uint8. The
    caller checks that the columns hold whole blocks (ggml aborts the process otherwise)."""
    lib = _lib()
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    n_rows, n_columns = rows.shape
    out = np.empty((n_rows, lib.ggml_row_size(tensor_type, n_columns)), dtype=np.uint8)
    written = lib.ggml_quantize_chunk(
        tensor_type, rows.ctypes.data, out.ctypes.data, 0, n_rows, n_columns, None
    )
    assert written == out.size, (written, out.size)
    return out


def dequantize_rows(blocks: np.ndarray, tensor_type: int, n_columns: int) -> np.ndarray:
    """llama.cpp's float32 values of ggml blocks laid out as `quantize_rows` returns them."""
    traits = _lib().ggml_get_type_traits(tensor_type).contents
    blocks = np.ascontiguousarray(blocks, dtype=np.uint8)
    out = np.empty((blocks.shape[0], n_columns), dtype=np.float32)
    _TO_FLOAT(traits.to_float)(blocks.ctypes.data, out.ctypes.data, out.size)
    return out
