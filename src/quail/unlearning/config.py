"""The run configuration: one typed dataclass, loaded from YAML and overridable by `key=value`.

Flat on purpose, so that every field can be overridden from the command line by its name.
"""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from quail.errors import QuailError
from quail.quant import parse_spec
from quail.settings import build, read_yaml, with_overrides
from quail.unlearning.methods import METHODS

CHOICES = {
    "dtype": ("fp32", "bf16", "bf16_pure"),
    "mixed_precision": ("auto", "no", "bf16"),
    "cache": ("auto", "full", "topk", "live"),
    "schedule": ("constant", "linear", "cosine"),
    "update": ("auto", "adamw", "sign", "grid_sign", "sam"),
}

# Settings of hinge forms that lost to quail_hinge's (lab/RECORD.md, 2026-11-28, "QUAIL hinge:
# distance and form") and were removed: an old config naming one is told so.
REMOVED = ("distance", "hinge_on", "layer_margins", "margin_from", "margin_multiple")


@dataclass
class UnlearnConfig:
    """Everything a run needs besides the model and the data. Defaults are a sane small run."""

    method: str = "quail"  # the one that keeps its forgetting in the formats you ship
    steps: int = 100  # optimizer steps
    lr: float = 1e-5
    batch_size: int = 8  # forget examples per micro-batch (and retain examples per micro-batch)
    grad_accum: int = 1
    weight_decay: float = 0.01
    schedule: str = "constant"
    warmup_steps: int = 0
    max_grad_norm: float = 1.0  # 0 disables clipping
    seed: int = 0
    max_length: int = 256

    alpha: float = 1.0  # weight of the retain term (GDR / KLR)
    beta: float = 0.1  # NPO inverse temperature
    gamma: float = 1.0  # weight of the QUAIL hinge

    # The formats the model will ship in, comma-separated: the first is the grid training aims
    # at (the hinge, STE, update=grid_sign, mansu); all are measured when the run
    # measures its forgetting (`quant_list`).
    quant: str | None = None
    # The hinge: the quantized model rates each forget answer token at least `margin` nats below
    # the quantized original.
    margin: float = 1.0

    sure_percentile: float = 90.0  # SURE: rows above this percentile of saliency are updated

    # How weights move: auto = the method's own (grid_sign for quail, adamw for most); adamw;
    # sign = each weight moves lr per step in its gradient's sign (signum.py); grid_sign = the
    # same in units of the first format's median step, shipped rounded onto that grid; sam =
    # AdamW on the gradient at the worst weights within `rho` (sharpness.py).
    update: str = "auto"
    rho: float = 0.05  # update=sam: radius of the weight perturbation (SAM's default)
    # Measured stopping (target.py): check forgetting every `check_every` steps at fp and in
    # every `quant` format; stop once forget <= target x the original's in all of them. A check
    # with retain < utility_floor x the original's, or where the perplexity of the retain
    # passages it watches (a quarter, withheld from training) is above the original's /
    # utility_floor, is never kept; where retain is below by more than its probes' spread, the
    # run goes back to the last kept check at half the lr (target.py). quail always does.
    measure: bool = False
    target: float = 0.1
    utility_floor: float = 0.85
    check_every: int = 1

    dtype: str = "fp32"  # weight storage: fp32, bf16 (fp32 master), bf16_pure
    mixed_precision: str = "auto"  # bf16 autocast: auto (GPUs with bf16), no, bf16
    cache: str = "auto"  # frozen original's outputs: auto, full, topk, live
    cache_topk: int = 64
    cache_max_mb: float = 1024.0

    lora_r: int = 0  # 0 = full fine-tuning
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )

    save_every: int = 0  # checkpoint every N optimizer steps; 0 = never
    divergence_threshold: float = 1e4  # |loss| above this (or NaN/inf) stops the run
    progress: bool = True


def make_config(values: dict | None = None, overrides: list[str] | tuple[str, ...] = ()):
    """Build a config from a dict (e.g. parsed YAML) then `key=value` strings, and validate it."""
    merged = with_overrides(values or {}, overrides)
    method = METHODS.get(merged.get("method", UnlearnConfig.method))
    merged = dict(method.defaults if method else ()) | merged  # the method's starting point
    removed = sorted(set(merged) & set(REMOVED))
    if removed:
        raise QuailError(
            f"config key '{removed[0]}' was removed with the hinge forms that lost "
            "(docs/METHODS.md, 'QUAIL hinge'): quail_hinge always hinges the answer's "
            "log-probability on the quantized model by a fixed margin; delete the key"
        )
    config = build(UnlearnConfig, merged)
    validate(config)
    return config


def load_config(path: str | Path | None = None, overrides=()) -> UnlearnConfig:
    """Read a YAML file of config keys (if given) and apply `key=value` overrides."""
    return make_config(read_yaml(path) if path is not None else {}, overrides)


def validate(config: UnlearnConfig) -> None:
    """Reject configs that cannot run, with one line naming the key and the fix."""
    if config.method not in METHODS:
        raise QuailError(f"unknown method '{config.method}'; choose one of {', '.join(METHODS)}")
    for name, allowed in CHOICES.items():
        if getattr(config, name) not in allowed:
            raise QuailError(
                f"config '{name}' is {getattr(config, name)!r}; choose one of {', '.join(allowed)}"
            )
    if not config.lr > 0:  # NaN too
        raise QuailError(f"lr must be positive, got {config.lr}")
    for name in ("target", "utility_floor"):
        if not 0 <= getattr(config, name) <= 1:
            raise QuailError(f"config '{name}' must be in [0, 1], got {getattr(config, name)}")
    for name in ("steps", "batch_size", "grad_accum", "max_length", "cache_topk", "check_every"):
        if getattr(config, name) < 1:
            raise QuailError(f"config '{name}' must be at least 1, got {getattr(config, name)}")
    for name in (
        "weight_decay",
        "warmup_steps",
        "max_grad_norm",
        "alpha",
        "gamma",
        "lora_r",
        "rho",
    ):
        if getattr(config, name) < 0:
            raise QuailError(f"config '{name}' must be >= 0, got {getattr(config, name)}")
    if not config.divergence_threshold > 0:
        raise QuailError(
            f"divergence_threshold must be positive, got {config.divergence_threshold}: it is "
            "the loss magnitude that stops a run (default 1e4)"
        )
    if config.save_every < 0:
        raise QuailError(f"save_every must be >= 0, got {config.save_every}")
    if config.beta <= 0:
        raise QuailError(f"beta must be positive, got {config.beta}")
    if not 0 <= config.sure_percentile < 100:
        raise QuailError(f"sure_percentile must be in [0, 100), got {config.sure_percentile}")
    if config.margin < 0:
        raise QuailError(f"margin must be >= 0, got {config.margin}")
    method = METHODS[config.method]
    specs = [parse_spec(text) for text in quant_list(config)]
    spec = specs[0] if specs else None
    quantized = spec is not None and not spec.is_fp
    if config.quant is not None and not specs:
        raise QuailError("quant is empty: name a spec (e.g. quant=int4) or leave it out")
    if measured(config) and not any(not s.is_fp for s in specs):
        raise QuailError(
            f"method '{config.method}' measures forgetting in the formats you will ship: pass "
            "quant=SPEC[,SPEC...] (e.g. quant=rtn-int4-g32-asym,nf4; --quant on the command "
            "line), or choose a baseline that does not (method=ga_gdr)"
        )
    on_steps = update_rule(config) == "grid_sign" or method.circuit
    if on_steps:
        what = f"method '{config.method}'" if method.circuit else f"update={update_rule(config)}"
        if not quantized:
            raise QuailError(
                f"{what} moves weights in units of a quantization step: "
                "pass quant=SPEC, the format you will ship first (e.g. rtn-int4-g32-asym)"
            )
        if spec.method != "rtn" or spec.backend is not None:
            raise QuailError(
                f"{what} moves weights on a round-to-nearest grid, and "
                f"{spec.name} is not one: list an rtn spec first (e.g. "
                f"quant=rtn-int4-g32-asym,{spec.name})"
            )
    if (method.ste or method.hinge) and not quantized:
        raise QuailError(
            f"method '{config.method}' trains through the quantized model: pass quant=SPEC "
            "(e.g. quant=int4)"
        )
    if config.lora_r and (
        method.ste
        or method.hinge
        or method.sure
        or method.circuit
        or update_rule(config) != "adamw"
    ):
        raise QuailError(
            f"lora_r > 0 cannot be combined with method '{config.method}': quantization and "
            "row masks act on full weights; set lora_r=0"
        )


def quant_list(config: UnlearnConfig) -> list[str]:
    """The `quant` specs in the order given; the first is the grid training aims at."""
    return [text.strip() for text in (config.quant or "").split(",") if text.strip()]


def update_rule(config: UnlearnConfig) -> str:
    return METHODS[config.method].update if config.update == "auto" else config.update


def lr_warning(config: UnlearnConfig) -> str | None:
    """Where sign steps on the grid get an lr far below quail's: it counts in steps of the grid,
    and a baseline's lr (1e-5 to 1e-4) then moves no weight across a bucket (a run seen to do
    nothing for 600 steps)."""
    default = dict(METHODS["quail"].defaults)["lr"]
    if update_rule(config) != "grid_sign" or config.lr >= default / 10:
        return None
    return (
        f"lr={config.lr:g} is in steps of the grid for update=grid_sign ({config.method}'s "
        f"default {default:g}): at {config.lr * config.steps:.2g} of a step in {config.steps} "
        "steps, few weights can leave their bucket and the shipped model barely changes; drop "
        "lr to use the default"
    )


def measured(config: UnlearnConfig) -> bool:
    return config.measure or METHODS[config.method].measured


def to_dict(config: UnlearnConfig) -> dict:
    return dataclasses.asdict(config)


def comparable(config: UnlearnConfig) -> dict:
    """The settings a model was made with, display options aside: what a checkpoint must match
    on resume, and a study's finished cell on a rerun."""
    values = to_dict(config)
    values.pop("progress")
    return values
