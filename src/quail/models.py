"""Load and save Hugging Face causal LMs: safetensors only, no remote code unless asked."""

import os
import shutil
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from quail.errors import QuailError
from quail.io import atomic_dir

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def check_model_dir(path: str | os.PathLike) -> Path:
    """Fail early, in one line, on anything that is not a safetensors model folder."""
    path = Path(path)
    if not path.exists():
        raise QuailError(f"model folder {path} does not exist: check the path")
    if not path.is_dir():
        raise QuailError(f"{path} is a file, not a model folder: pass the folder holding it")
    if not (path / "config.json").is_file():
        raise QuailError(
            f"{path} is not a Hugging Face model folder (no config.json): "
            "pass a folder written by save_pretrained"
        )
    if not any(path.glob("*.safetensors")):
        if any(path.glob("*.bin")) or any(path.glob("*.pt")):
            raise QuailError(
                f"{path} holds only pickle weights, which quail does not load: "
                "re-save it with save_pretrained(..., safe_serialization=True)"
            )
        raise QuailError(f"{path} has no .safetensors weights: pass a complete model folder")
    return path


def load_model(
    path: str | os.PathLike,
    dtype: torch.dtype | str = "auto",
    trust_remote_code: bool = False,
):
    """Load a causal LM from a folder, refusing pickle weights and remote code by default."""
    path = check_model_dir(path)
    try:
        AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except ValueError as error:  # unknown architecture, or custom code that was not allowed
        raise QuailError(
            f"cannot read the config in {path}: {str(error).splitlines()[0]}"
        ) from None
    return AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code
    )


def check_finite(model, label: str) -> None:
    """Refuse a model with NaN or inf weights (a run that diverged): every figure computed from
    it would be NaN or meaningless, and a quantizer has no grid for such values."""
    for name, param in model.named_parameters():
        if not torch.isfinite(param).all():
            raise QuailError(
                f"{label} has NaN or inf weights in {name}: use a checkpoint from before the "
                "values broke (unlearning stops on a diverging loss; lower lr)"
            )


def load_tokenizer(path: str | os.PathLike, trust_remote_code: bool = False):
    path = check_model_dir(path)
    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        raise QuailError(
            f"no usable tokenizer in {path} ({str(error).splitlines()[0]}): save one beside the "
            "model with tokenizer.save_pretrained"
        ) from None


def save_model(model, out_dir, source_dir=None, overwrite: bool = False) -> Path:
    """Write `model` as safetensors, with the non-weight files of `source_dir` (tokenizer,
    generation config) copied beside it, so the folder loads in plain transformers."""
    with atomic_dir(out_dir, overwrite) as tmp:
        if source_dir is not None:
            copy_non_weight_files(source_dir, tmp)
        model.save_pretrained(tmp, safe_serialization=True)
    return Path(out_dir)


def copy_non_weight_files(source_dir, target_dir) -> None:
    for item in Path(source_dir).iterdir():
        if (
            item.is_file()
            and not item.name.endswith(WEIGHT_SUFFIXES)
            and (item.name not in WEIGHT_INDEXES)
        ):
            shutil.copy2(item, Path(target_dir) / item.name)
