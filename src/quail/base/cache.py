"""Built-in models cached by a hash of their recipe and their data, so demos do not retrain.

The cache lives in `$QUAIL_CACHE` (default `~/.cache/quail`). The key covers the task, the
config, the bytes of the data files the task trains on and a format version, so any change that
matters trains a new model and an unchanged one is reused across runs and processes.
"""

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from quail.base.config import BASE_CONFIG, CLASSIFIER_CONFIG, BaseConfig
from quail.base.train import METADATA, read_metadata, train_base_model, train_claims_classifier
from quail.errors import QuailError
from quail.io import atomic_dir, cache_root

FORMAT_VERSION = 2  # 2: trained by the unlearning loop's finetune (was its own loop)
# What each task's model is trained from: data files, and manifest fields that change the text.
TASK_FILES = {
    "knowledge": ("entities.jsonl", "passages.jsonl", "qa.jsonl"),
    "claims": ("claims.jsonl",),
}
TASK_MANIFEST_FIELDS = {"knowledge": ("question_format",), "claims": ("labels",)}
TASKS = {
    "knowledge": (train_base_model, BASE_CONFIG),
    "claims": (train_claims_classifier, CLASSIFIER_CONFIG),
}


def cache_key(task: str, data_dir, config: BaseConfig) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([FORMAT_VERSION, task, config.to_dict()], sort_keys=True).encode())
    for name in TASK_FILES[task]:
        path = Path(data_dir) / name
        digest.update(name.encode() + (path.read_bytes() if path.is_file() else b"<missing>"))
    manifest_path = Path(data_dir) / "manifest.json"
    manifest = json.loads(manifest_path.read_text("utf-8")) if manifest_path.is_file() else {}
    fields = {k: manifest.get(k) for k in TASK_MANIFEST_FIELDS[task]}
    digest.update(json.dumps(fields, sort_keys=True).encode())
    return digest.hexdigest()[:20]


def cached_model(
    data_dir,
    task: str = "knowledge",
    config: BaseConfig | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> Path:
    """The folder of the built-in model for `data_dir`, trained now only if not cached yet."""
    if task not in TASKS:
        raise QuailError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    train, default = TASKS[task]
    config = config or default
    folder = cache_root() / task / cache_key(task, data_dir, config)
    if not (folder / METADATA).is_file():
        train(data_dir, folder, config, overwrite=True, log=log)
    return folder


def write_base_model(
    data_dir,
    out_dir,
    task: str = "knowledge",
    overwrite: bool = False,
    log: Callable[[str], None] = lambda s: None,
    config: BaseConfig | None = None,
) -> dict:
    """Copy the (cached, or trained now) built-in model for `data_dir` to `out_dir`; return
    its measured accuracies."""
    with atomic_dir(out_dir, overwrite) as tmp:
        source = cached_model(data_dir, task, config, log=log)
        shutil.copytree(source, tmp, dirs_exist_ok=True)
    return read_metadata(out_dir)["metrics"]
