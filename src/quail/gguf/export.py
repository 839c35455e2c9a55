"""`quail export --format gguf`: a Hugging Face folder written as a GGUF file by llama.cpp's own
converter (to F32) and llama.cpp's own quantizer (to the type asked for), so the file is the
one `convert_hf_to_gguf.py` followed by `llama-quantize` writes."""

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from quail.errors import QuailError
from quail.gguf import converter
from quail.gguf.llamacpp import llama_cpp, quantize_file
from quail.gguf.types import gguf_type
from quail.io import check_output_file


def check_export(model_dir: Path, out: Path) -> None:
    """Refuse, before any work, what export cannot do: no model folder, an output in the way,
    no llama.cpp."""
    if not (Path(model_dir) / "config.json").is_file():
        raise QuailError(f"{model_dir} is not a Hugging Face model folder (no config.json)")
    check_output_file(out, "--out")
    if Path(out).exists():
        raise QuailError(f"--out {out} exists: choose another path or delete it")
    llama_cpp()


def export_gguf(
    model_dir: str | Path,
    out: str | Path,
    type_name: str = "Q4_K_M",
    progress: Callable[[str], None] = print,
) -> Path:
    """Write `model_dir` as a GGUF file of type `type_name` (F32, F16, Q8_0, Q6_K, Q5_K_M,
    Q4_K_M, Q4_1, Q4_0) at `out`. The file appears whole or not at all."""
    model_dir, out = Path(model_dir), Path(out)
    kind = gguf_type(type_name)
    check_export(model_dir, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        f32 = tmp / "model-f32.gguf"
        converter.convert(model_dir, f32, "f32", lambda line: progress(f"converting: {line}"))
        if kind.name == "F32":
            written = f32
        else:
            written = tmp / out.name

            def report(name: str, done: int, total: int) -> None:
                progress(f"quantizing {done}/{total} to {kind.name}: {name}")

            quantize_file(f32, written, kind.ftype, report)
        written.replace(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
