"""Load and save Hugging Face causal LMs: safetensors only, no remote code unless asked."""

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
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
    _check_config(path)
    try:
        AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except ValueError as error:  # unknown architecture, or custom code that was not allowed
        raise QuailError(
            f"cannot read the config in {path}: {str(error).splitlines()[0]}"
        ) from None
    try:
        return AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code
        )
    except (SafetensorError, OSError) as error:  # a truncated, empty or foreign file
        raise QuailError(
            f"cannot read the weights in {path} ({str(error).splitlines()[0][:120]}): the file "
            "is damaged or incomplete; copy or save the model again"
        ) from None


def _check_config(path: Path) -> None:
    """A config.json transformers can build a model from (the analysis reads weights by name
    and needs less)."""
    try:
        config = json.loads((path / "config.json").read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise QuailError(
            f"{path}/config.json is not valid JSON ({error}): restore it from the model's source"
        ) from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise QuailError(
            f"{path}/config.json is not a model config (no model_type): restore it from the "
            "model's source"
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


def check_vocabulary(model, tokenizer, label: str) -> None:
    """Refuse a tokenizer with ids the model's embedding has no row for (another model's
    tokenizer): indexing past the table fails deep in a forward pass, or reads garbage."""
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise QuailError(
            f"{label}: the tokenizer has {len(tokenizer)} tokens but the model's embedding has "
            f"{rows} rows: pair the model with the tokenizer it was trained with"
        )


def load_tokenizer(path: str | os.PathLike, trust_remote_code: bool = False):
    path = check_model_dir(path)
    _check_config(path)  # a broken config.json is named as such, not as a missing tokenizer
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
