"""Checkpoints for `--resume`: accelerate's full training state plus a small JSON of our own.

They live beside the output folder (`OUT.checkpoints/step-NNNNNN`), because the output folder
itself only appears, complete, at the end. Each is written under a temporary name and renamed,
and only the newest is kept, so the newest on disk is always whole and good.
"""

import json
import shutil
from pathlib import Path

from accelerate import Accelerator

STATE = "trainer_state.json"


def checkpoint_root(out: Path) -> Path:
    return out.with_name(out.name + ".checkpoints")


def latest_checkpoint(root: Path) -> Path | None:
    found = sorted(root.glob("step-*")) if root.is_dir() else []
    return found[-1] if found else None


def save_checkpoint(accelerator: Accelerator, root: Path, step: int, state: dict) -> Path:
    path, tmp = root / f"step-{step:06d}", root / f".step-{step:06d}.tmp"
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    if accelerator.is_main_process:
        (tmp / STATE).write_text(json.dumps(state))
        tmp.rename(path)
        for old in root.glob("step-*"):
            if old != path:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return path


def load_checkpoint(accelerator: Accelerator, path: Path) -> dict:
    accelerator.load_state(str(path))
    return json.loads((path / STATE).read_text())
