"""GGUF files as llama.cpp writes and runs them: export through llama.cpp's own converter and
quantizer (`export`), evaluation inside llama.cpp (`runtime`), and llama.cpp's codes per tensor
(`codes`, the `gguf-*` specs' backend). llama.cpp comes from llama-cpp-python (the `llamacpp`
extra); see docs/QUANT.md, "GGUF"."""

from quail.gguf.export import export_gguf
from quail.gguf.types import GGUF_TYPES, GgufType, gguf_type

__all__ = ["GGUF_TYPES", "GgufType", "export_gguf", "gguf_type"]
