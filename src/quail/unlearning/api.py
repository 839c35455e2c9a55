"""`unlearn()`: load, check, train, save. What the CLI and notebooks call."""

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import PartialState
from torch import nn

from quail.data.examples import Example
from quail.environment import environment
from quail.errors import QuailError
from quail.io import atomic_dir, atomic_write_json, check_output_dir
from quail.models import check_vocabulary, load_model, load_tokenizer
from quail.unlearning.checkpoint import checkpoint_root
from quail.unlearning.config import UnlearnConfig, load_config, make_config, measured, to_dict
from quail.unlearning.loop import train
from quail.unlearning.methods import METHODS
from quail.unlearning.target import Outcome


@dataclass
class UnlearnResult:
    model: nn.Module  # the unlearned model (LoRA merged), in the storage dtype of the run
    tokenizer: object
    config: UnlearnConfig
    curves: list[dict]  # per optimizer step: step, lr, loss and each loss term
    cache: str | None
    wall_time_s: float
    out: Path | None  # the saved Hugging Face folder (with run.json), if any
    outcome: Outcome | None = None  # a measured run: why it stopped, what each check saw
    statement: str | None = None  # that, in one line


def unlearn(
    model: str | Path | nn.Module,
    forget: list[Example],
    retain: list[Example] | None = None,
    config: UnlearnConfig | dict | str | Path | None = None,
    *,
    tokenizer=None,
    out: str | Path | None = None,
    resume: bool = False,
    holdout: list[Example] | None = None,
) -> UnlearnResult:
    """Unlearn `forget` from a model folder or an in-memory model.

    An in-memory model is trained in place (copy it first to keep the original). With `out`,
    the result is saved as a Hugging Face folder plus `run.json`, written to a temporary
    sibling and moved into place (a folder that exists is complete). Checkpoints (`save_every`)
    go to `OUT.checkpoints/` and are removed after success; `resume=True` continues from the
    newest of them. `holdout`: examples of the forget set's kind the model never trained on (a
    classifier's test set; a misinformation folder's never-injected posts and claims). A
    measured run then aims its answers at the original's score on held-out answers instead of
    `target` x its own, and, where both have passages, the forget passages at being hard to
    tell from the held-out ones (Min-K% AUC near 0.5).
    """
    config = _as_config(config)
    method = METHODS[config.method]
    if not forget:
        raise QuailError("the forget set is empty: nothing to unlearn")
    if method.retain and not retain:
        raise QuailError(
            f"method '{config.method}' needs a retain set; pass one or use a method without a "
            "retain term (ga, npo)"
        )
    if holdout and not measured(config):
        raise QuailError(
            f"held-out examples set the aim of a measured run, and '{config.method}' does not "
            "measure: use method quail, or measure=true with quant=SPEC"
        )
    out = check_output_dir(out) if out is not None else None
    if config.save_every and out is None:
        raise QuailError("save_every needs an output folder (out=...) to put checkpoints beside")
    if isinstance(model, (str, Path)):
        tokenizer = tokenizer or load_tokenizer(model)
        model = load_model(model, dtype=torch.float32)
    elif tokenizer is None:
        raise QuailError("pass tokenizer=... along with an in-memory model")
    check_vocabulary(model, tokenizer, "the model to unlearn")

    root = checkpoint_root(out) if out is not None else None
    result = train(model, tokenizer, forget, retain, config, root, resume, holdout)
    model = result.model
    statement = _statement(config, result.outcome)
    if config.dtype != "fp32":
        model.to(torch.bfloat16)
    if out is not None and PartialState().is_main_process:
        run = _run_record(config, result, statement, len(forget), len(retain or []))
        _save(model, tokenizer, run, out)
        if root.exists():
            shutil.rmtree(root)
    PartialState().wait_for_everyone()
    return UnlearnResult(
        model,
        tokenizer,
        config,
        result.curves,
        result.cache,
        result.wall_time_s,
        out,
        result.outcome,
        statement,
    )


def _statement(config: UnlearnConfig, outcome: Outcome | None) -> str | None:
    return None if outcome is None else outcome.statement(config.target, config.utility_floor)


def _as_config(config) -> UnlearnConfig:
    if config is None:
        return make_config()
    if isinstance(config, UnlearnConfig):
        return make_config(to_dict(config))
    if isinstance(config, dict):
        return make_config(config)
    return load_config(config)


def _run_record(config, result, statement: str | None, n_forget: int, n_retain: int) -> dict:
    return {
        "config": to_dict(config),
        "seed": config.seed,
        "method": config.method,
        "n_forget": n_forget,
        "n_retain": n_retain,
        "cache": result.cache,
        "environment": environment(),
        "device": str(next(result.model.parameters()).device),
        "processes": PartialState().num_processes,
        "wall_time_s": result.wall_time_s,
        "resumes": result.resumes,
        "stop": None if result.outcome is None else asdict(result.outcome),
        "stop_statement": statement,
        "curves": result.curves,
    }


def _save(model: nn.Module, tokenizer, run: dict, out: Path) -> None:
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / "run.json", run)
