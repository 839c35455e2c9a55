"""Checkpoints for `--resume`: tensors in safetensors, everything else in JSON, nothing pickled.

They live beside the output folder (`OUT.checkpoints/step-NNNNNN`), because the output folder
itself only appears, complete, at the end. Each is written under a temporary name and renamed,
and only the newest is kept, so the newest on disk is always whole and good.

A checkpoint folder holds exactly these files, and one holding anything else is refused (a
pickle planted there would otherwise be one `torch.load` away from running):

    model.safetensors       the parameters (shared tensors, such as tied embeddings, once)
    best.safetensors        the weights of a measured run's check that came closest (loop.py)
    optimizer.safetensors   the optimizer's per-parameter tensors, `{index}.{name}`
    rng-{rank}.safetensors  torch's random state, per process (CPU, then each GPU)
    trainer_state.json      step, curves, config, and the optimizer's and scheduler's scalars
"""

import json
import re
import shutil
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model

from quail.errors import QuailError
from quail.io import os_error

STATE = "trainer_state.json"
FILES = re.compile(r"(model|optimizer|best)\.safetensors|rng-\d+\.safetensors|trainer_state\.json")


def checkpoint_root(out: Path) -> Path:
    return out.with_name(out.name + ".checkpoints")


def latest_checkpoint(root: Path) -> Path | None:
    found = sorted(root.glob("step-*")) if root.is_dir() else []
    return found[-1] if found else None


def save_checkpoint(accelerator, root, step, state, model, optimizer, scheduler, best=None):
    """Write step `step`'s checkpoint (with `best`, a list of parameter values, beside it); a
    failure (disk full, no permission) leaves no partial folder behind and the previous
    checkpoint in place."""
    path, tmp = root / f"step-{step:06d}", root / f".step-{step:06d}.tmp"
    try:
        if accelerator.is_main_process:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        accelerator.wait_for_everyone()
        save_file(_rng_state(), str(tmp / f"rng-{accelerator.process_index}.safetensors"))
        if accelerator.is_main_process:
            save_model(accelerator.unwrap_model(model), str(tmp / "model.safetensors"))
            tensors, optimizer_json = _split_optimizer(optimizer.state_dict())
            save_file(tensors, str(tmp / "optimizer.safetensors"))
            if best is not None:
                save_file({str(i): t for i, t in enumerate(best)}, str(tmp / "best.safetensors"))
            record = state | {"optimizer": optimizer_json, "scheduler": scheduler.state_dict()}
            (tmp / STATE).write_text(json.dumps(record))
            tmp.rename(path)
            for old in root.glob("step-*"):
                if old != path:
                    shutil.rmtree(old)
    except (OSError, SafetensorError) as error:  # one line in the CLI; the last one stays
        shutil.rmtree(tmp, ignore_errors=True)
        cause = os_error(error)
        if cause is None:
            raise
        raise OSError(cause.errno, f"{cause.strerror} writing checkpoint", str(path)) from None
    accelerator.wait_for_everyone()
    return path


def load_checkpoint(accelerator: Accelerator, path: Path, model, optimizer, scheduler):
    """Restore what `save_checkpoint` wrote; return the trainer state."""
    unexpected = sorted(p.name for p in path.iterdir() if not FILES.fullmatch(p.name))
    if unexpected:
        raise QuailError(
            f"checkpoint {path} holds {unexpected[0]}, which quail never writes (checkpoints "
            "are safetensors and JSON only, so nothing in them can run code): delete "
            f"{path.parent} and start again"
        )
    try:
        state = json.loads((path / STATE).read_text("utf-8"))
        load_model(accelerator.unwrap_model(model), str(path / "model.safetensors"))
        tensors = load_file(str(path / "optimizer.safetensors"))
        optimizer.load_state_dict(_join_optimizer(tensors, state.pop("optimizer")))
        scheduler.load_state_dict(state.pop("scheduler"))
        rng = path / f"rng-{accelerator.process_index}.safetensors"
        if rng.is_file():
            _set_rng_state(load_file(str(rng)))
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as error:
        raise QuailError(
            f"checkpoint {path} cannot be read ({str(error).splitlines()[0][:120]}); delete "
            f"{path.parent} and start again"
        ) from None
    return state


def load_best(path: Path) -> list[torch.Tensor]:
    """The parameter values `save_checkpoint` kept as `best`, in the model's parameter order."""
    tensors = load_file(str(path / "best.safetensors"))
    return [tensors[str(i)] for i in range(len(tensors))]


def _split_optimizer(state_dict: dict) -> tuple[dict, dict]:
    """An optimizer state dict as safetensors tensors plus JSON for everything else."""
    tensors, scalars = {}, {}
    for index, values in state_dict["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"scalars": scalars, "param_groups": state_dict["param_groups"]}


def _join_optimizer(tensors: dict, saved: dict) -> dict:
    state: dict = {}
    for key, value in list(tensors.items()) + list(saved["scalars"].items()):
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": saved["param_groups"]}


def _rng_state() -> dict[str, torch.Tensor]:
    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            states[f"cuda{i}"] = s
    return states


def _set_rng_state(states: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(states["cpu"])
    cuda = [states[f"cuda{i}"] for i in range(len(states) - 1)]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
