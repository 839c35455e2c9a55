"""One conversion per model: the F32 GGUF file llama.cpp's converter writes of an in-memory
model, kept for the next `gguf-*` spec of the same model, so that each further type costs a
quantization (a second or so) rather than another run of the converter.

The file is keyed by a fingerprint of what the converter reads: the config, every weight's
bytes and the tokenizer's saved files; a model changed in place (a check inside an unlearning
run) gets a fresh conversion. Only the last model's file is kept, in a temporary folder that is
removed when another model is converted or the process exits.
"""

import atexit
import hashlib
import shutil
import tempfile
from pathlib import Path

import torch

_KEPT: dict[str, Path] = {}  # fingerprint: F32 file (one entry at most)


def f32_file(model, tokenizer, log=lambda line: None) -> Path:
    """The F32 GGUF file of `model` and `tokenizer`: converted now, or kept from the last call
    for the same model."""
    from quail.gguf import converter

    work = Path(tempfile.mkdtemp(prefix="quail-gguf-f32-"))
    try:
        tokenizer.save_pretrained(work / "model")
        key = fingerprint(model, work / "model")
        if key in _KEPT and _KEPT[key].is_file():
            shutil.rmtree(work)
            return _KEPT[key]
        model.save_pretrained(work / "model", safe_serialization=True)
        converter.convert(work / "model", work / "model-f32.gguf", "f32", log)
        shutil.rmtree(work / "model")
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    forget()
    _KEPT[key] = work / "model-f32.gguf"
    return _KEPT[key]


def fingerprint(model, tokenizer_dir: Path) -> str:
    """sha256 of the model's config, its weights (names, dtypes, shapes, bytes) and the
    files of its saved tokenizer."""
    digest = hashlib.sha256(model.config.to_json_string().encode())
    for name, tensor in model.state_dict().items():
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}".encode())
        flat = tensor.detach().contiguous().reshape(-1).view(torch.uint8)
        digest.update(flat.cpu().numpy().data)
    for path in sorted(tokenizer_dir.iterdir()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def forget() -> None:
    """Remove the kept file (the next gguf spec converts again)."""
    for path in _KEPT.values():
        shutil.rmtree(path.parent, ignore_errors=True)
    _KEPT.clear()


atexit.register(forget)
