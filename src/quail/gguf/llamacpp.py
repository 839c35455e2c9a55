"""llama.cpp through llama-cpp-python: importing it, and its own quantizer
(`llama_model_quantize`, what the `llama-quantize` tool calls)."""

import contextlib
import ctypes
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from quail.errors import QuailError

# the llamacpp extra spelled out (the CLI's error line is rich markup, where [..] vanishes)
INSTALL = (
    f'{sys.executable} -m pip install "llama-cpp-python>=0.3.36,<0.4" sentencepiece gguf '
    "(builds llama.cpp from source: minutes; docs/QUANT.md, GGUF)"
)


def llama_cpp():
    """The llama_cpp module, or a one-line error with the install command."""
    try:
        import llama_cpp as module
    except (ImportError, OSError) as error:  # OSError: the shared library failed to load
        reason = str(error).splitlines()[0] if str(error) else "import failed"
        raise QuailError(f"GGUF needs llama-cpp-python ({reason}): run {INSTALL}") from None
    return module


def version() -> str:
    return llama_cpp().__version__


_PROGRESS = re.compile(rb"\[\s*(\d+)/\s*(\d+)\]\s+(\S+)")


@contextlib.contextmanager
def llama_log(on_line: Callable[[bytes], None]):
    """Route llama.cpp's log lines to `on_line` (and nowhere else) while the block runs."""
    lib = llama_cpp()
    from llama_cpp import _logger

    @lib.llama_log_callback
    def callback(level, text, user_data):
        on_line(text or b"")

    lib.llama_log_set(callback, ctypes.c_void_p(0))
    try:
        yield
    finally:
        lib.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))


def quantize_file(
    source: Path,
    out: Path,
    ftype: int,
    progress: Callable[[str, int, int], None] | None = None,
) -> None:
    """Quantize the GGUF `source` to `out` with llama.cpp's defaults for the file type `ftype`
    (its choice of types per tensor included, as `llama-quantize` makes it). `progress` gets
    (tensor name, done, total) as llama.cpp reports each tensor."""
    lib = llama_cpp()
    params = lib.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = os.cpu_count() or 1
    log: list[bytes] = []

    def on_line(text: bytes) -> None:
        log.append(text)
        found = _PROGRESS.search(text)
        if found and progress is not None:
            progress(found[3].decode(errors="replace"), int(found[1]), int(found[2]))

    with llama_log(on_line):
        status = lib.llama_model_quantize(
            str(source).encode(), str(out).encode(), ctypes.byref(params)
        )
    if status != 0:
        lines = [line.strip() for line in b"".join(log).decode(errors="replace").splitlines()]
        reason = next((line for line in reversed(lines) if line), f"status {status}")
        raise QuailError(f"llama.cpp could not quantize {source.name}: {reason}")
