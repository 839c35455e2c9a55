"""The training loop, top to bottom, on accelerate (one CPU to many GPUs, unchanged code).

1. Everything that needs the original model θ0 happens before the first update: its cached
   outputs (reference.py), the SURE row masks and MANSU's weight masks (circuit.py).
2. Then optimizer steps: each is `grad_accum` micro-batches of forget (and retain) examples taken
   in a seeded order that depends on the step only, so `--resume` replays the same batches.
3. A step whose loss is NaN/inf or above `divergence_threshold` is never applied: the run stops
   with a message naming the last good checkpoint.
4. How a step moves the weights is the update rule: AdamW; sign steps (signum.py), for quail in
   units of the first format's median step with the model shipped rounded onto that grid; or
   sharpness-aware steps (sharpness.py). A measured run (target.py) checks its forgetting in
   every listed format every `check_every` steps, on the model it would ship, and stops on it.
"""

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from quail import interrupts
from quail.data.batches import Encoded, chunks, collate, encode, stream_indices
from quail.errors import Interrupted, QuailError
from quail.quant import (
    parse_spec,
    quantize_model,
    quantized_weights,
    ste_weights,
)
from quail.unlearning import checkpoint, sharpness
from quail.unlearning.circuit import MagnitudeFloor, circuit_masks
from quail.unlearning.config import UnlearnConfig, comparable, measured, quant_list, update_rule
from quail.unlearning.forward import forward
from quail.unlearning.losses import nll
from quail.unlearning.methods import METHODS, Step
from quail.unlearning.reference import (
    LiveReference,
    Needs,
    adapters_off,
    build_reference,
    cache_mode,
    frozen_copy,
)
from quail.unlearning.signum import Signum, grid_groups
from quail.unlearning.sure import RowMask, row_masks, row_saliency
from quail.unlearning.target import ForgetTarget, Outcome, withhold


@dataclass
class TrainResult:
    model: nn.Module
    curves: list[dict]  # per optimizer step: lr, its wall time, the loss and every term
    cache: str | None  # full, topk or live; None when no reference output was needed
    wall_time_s: float
    outcome: Outcome | None = None  # why a measured run stopped, and its checks
    resumes: list[dict] = field(default_factory=list)  # settings changed at each --resume


def train(
    model: nn.Module,
    tokenizer,
    forget: list,
    retain: list | None,
    config: UnlearnConfig,
    checkpoints: Path | None = None,
    resume: bool = False,
    holdout: list | None = None,
    until: Callable[[nn.Module, int], bool] | None = None,
) -> TrainResult:
    """Unlearn `forget` from `model` (updated in place) while keeping `retain`; a measured run
    aims forgetting at the original's score on `holdout` where given (target.py). `until(model,
    step)`, asked every `check_every` steps and at the last, stops the run when it says so (a
    fine-tune's own check: quail.countries.inject)."""
    started = time.perf_counter()
    method = METHODS[config.method]
    formats = quant_list(config)
    spec = parse_spec(formats[0]) if formats else None
    rule = update_rule(config)
    accelerator = Accelerator()
    set_seed(config.seed)
    device = accelerator.device
    pad_id = _pad_id(tokenizer)
    watched = []  # retain passages the utility floor watches, never trained on (target.py)
    if measured(config):
        retain, watched = withhold(retain, config.seed)
    forget_enc = encode(forget, tokenizer, config.max_length, "forget")
    retain_enc = (
        encode(retain, tokenizer, config.max_length, "retain") if method.retain and retain else None
    )
    if config.dtype == "bf16_pure":
        model.to(torch.bfloat16)
    model.to(device).eval()

    # 1. What θ0 contributes, measured before any update.
    needs = Needs(forget_tokens=method.npo, retain_dist=method.klr, hinge=method.hinge)
    quant_model = quantize_model(model, spec).eval() if method.hinge else None
    mode, reference = None, None
    if needs.any:
        mode, reference = _original_outputs(
            model, quant_model, needs, forget_enc, retain_enc, config, pad_id, device
        )
    mask = _sure_masks(model, forget_enc, config, pad_id, device) if method.sure else None
    if method.circuit:
        mask = circuit_masks(
            model,
            spec,
            _nll_batches(model, forget_enc, pad_id, device, config.batch_size),
            _nll_batches(model, retain_enc, pad_id, device, config.batch_size),
            config.sure_percentile,
        )
    floor = MagnitudeFloor(model, spec) if method.circuit else None
    if config.lora_r:
        model = _add_lora(model, config)
    if mode == "live":
        reference = _live_reference(model, quant_model, needs, config)
    del quant_model  # the cache or the live reference holds what it needed

    # 2. The optimizer steps.
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    if rule in ("sign", "grid_sign"):
        groups = grid_groups(model, spec, params) if rule == "grid_sign" else params
        optimizer = Signum(groups, lr=config.lr)
    else:
        optimizer = torch.optim.AdamW(
            params,
            lr=config.lr,
            weight_decay=0.0 if mask else config.weight_decay,
        )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
    row_mask = RowMask(model, mask, config.weight_decay) if mask else None
    model, optimizer = accelerator.prepare(model, optimizer)
    quantized = quantized_weights(model, accelerator.unwrap_model(model), spec) if spec else {}

    def shipped(m: nn.Module) -> nn.Module:
        """What the run hands over (and measures): update=grid_sign rounds the latent weights
        onto the first format's grid to nearest; mansu moves every weight that moved by at
        least one step of that grid (circuit.py)."""
        if floor is not None:
            return floor.apply(m)
        if rule == "grid_sign":
            return quantize_model(m, spec)
        return m

    target = None
    if measured(config):
        target = ForgetTarget(
            tokenizer,
            forget,
            retain,
            formats,
            config.target,
            config.utility_floor,
            config.seed,
            holdout,
            watched,
        )
    outcome = Outcome() if target else None

    def run(batch):
        return forward(model, batch, ste_weights(model, quantized) if method.ste else None)

    def run_quant(batch):
        return forward(model, batch, ste_weights(model, quantized))

    start, curves, last_good, spent, resumes = 0, [], None, 0.0, []
    best = None  # (points above the aims, (step, weights)) of the kept check that came closest
    if resume:
        last_good = checkpoint.latest_checkpoint(checkpoints) if checkpoints else None
        if last_good is None:
            raise QuailError(f"nothing to resume: no checkpoint in {checkpoints}")
        state = checkpoint.load_checkpoint(accelerator, last_good, model, optimizer, scheduler)
        saved, now = state["config"], comparable(config)
        changed = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
        unsafe = [k for k in changed if k not in SAFE_TO_CHANGE]
        if unsafe:
            raise QuailError(
                f"checkpoint {last_good} was made with a different {unsafe[0]} "
                f"({saved.get(unsafe[0])!r}, now {now.get(unsafe[0])!r}); only "
                f"{', '.join(sorted(SAFE_TO_CHANGE))} may change on resume: resume with the "
                "same config or start a new --out"
            )
        start, curves, spent = state["step"], state["curves"], state["wall_time_s"]
        resumes = state.get("resumes", [])
        if changed:  # a new lr or schedule takes over from the step resumed at
            _reschedule(optimizer, scheduler, config, start)
            resumes.append({"step": start, "changed": {k: [saved[k], now[k]] for k in changed}})
        if outcome is not None:
            outcome = Outcome(**state["outcome"])
        if state.get("best"):  # ranked again from its recorded scores by the current rule
            best_step = state["best"]["step"]
            scores = next(c["scores"] for c in outcome.checks if c["step"] == best_step)
            best = (
                target.shortfall(scores, outcome.original),
                (best_step, checkpoint.load_best(last_good)),
            )

    world, rank = accelerator.num_processes, accelerator.process_index
    columns = [
        TextColumn("unlearn {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[losses]}"),
    ]
    show = config.progress and accelerator.is_main_process
    kept = None  # the weights of the last check that kept the utility floor
    if outcome is not None:
        if not outcome.original:  # a fresh run: the original's scores, before any update
            outcome.original = target.measure(accelerator.unwrap_model(model), original=True)
            outcome.checks.append({"step": 0, "scores": outcome.original})
        kept = (start, _snapshot(params))

    def accumulate(batches) -> dict[str, float]:
        """Backpropagate the step's micro-batches; return each loss term's mean over them."""
        terms_sum: dict[str, float] = {}
        for micro, (forget_batch, retain_batch) in enumerate(batches):
            last_micro = micro == len(batches) - 1
            with nullcontext() if last_micro else accelerator.no_sync(model):
                s = Step(config, forget_batch, retain_batch, run, run_quant, reference)
                with _autocast(config, device):
                    terms = method.loss(s)
                accelerator.backward(sum(terms.values()) / config.grad_accum)
            for name, value in terms.items():
                terms_sum[name] = terms_sum.get(name, 0.0) + value.item() / config.grad_accum
        return terms_sum

    with Progress(*columns, disable=not show) as progress, interrupts.deferred():
        task = progress.add_task(config.method, total=config.steps, completed=start, losses="")
        for step in range(start, config.steps):
            step_started = time.perf_counter()
            batches = []
            for micro in range(config.grad_accum):
                slot = ((step * config.grad_accum + micro) * world + rank) * config.batch_size
                forget_batch = _batch(
                    forget_enc, config.seed, slot, config.batch_size, pad_id, device
                )
                retain_batch = (
                    _batch(retain_enc, config.seed + 1, slot, config.batch_size, pad_id, device)
                    if retain_enc
                    else None
                )
                batches.append((forget_batch, retain_batch))
            terms_sum = accumulate(batches)
            total = accelerator.reduce(
                torch.tensor(sum(terms_sum.values()), device=device), "mean"
            ).item()
            if not math.isfinite(total) or abs(total) > config.divergence_threshold:
                raise QuailError(
                    f"unlearning diverged at step {step + 1}: loss {total:.4g} "
                    f"(NaN/inf or above divergence_threshold={config.divergence_threshold:g}); "
                    "the update was not applied; last good checkpoint: "
                    f"{last_good or 'none (set save_every=N to keep checkpoints)'}"
                )
            if rule == "sam":  # the step's gradient is taken at the worst weights nearby
                moves = sharpness.climb(params, config.rho)
                optimizer.zero_grad(set_to_none=True)
                accumulate(batches)
                sharpness.descend(params, moves)
            if row_mask:
                row_mask.mask_grads()
            if config.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            lr = scheduler.get_last_lr()[0]
            if row_mask:
                row_mask.decay(lr)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)

            seconds = time.perf_counter() - step_started
            curves.append(
                {"step": step + 1, "lr": lr, "seconds": seconds, "loss": total, **terms_sum}
            )
            progress.update(
                task,
                advance=1,
                losses=" ".join(
                    f"{k}={v:.4f}"
                    for k, v in curves[-1].items()
                    if k not in ("step", "lr", "seconds")
                ),
            )
            checking = (step + 1) % config.check_every == 0 or step + 1 == config.steps
            if outcome is not None and checking:
                scores = target.measure(shipped(accelerator.unwrap_model(model)))
                outcome.checks.append({"step": step + 1, "scores": scores})
                curves[-1]["check"] = scores
                if target.retain_lost(scores, outcome.original):
                    _restore(params, kept[1])  # back to the last check that kept the floor
                    if outcome.backtracks < MAX_BACKTRACKS:
                        _halve_lr(optimizer, scheduler)  # half the step size, so that the path
                        outcome.backtracks += 1  # between two checks is fine enough
                        continue
                    outcome.reason, outcome.step = "utility floor", kept[0]
                    break
                # a check under the floor within the retain probes' spread, or whose watched
                # passages lost fluency, is neither kept nor handed over, but the run goes on:
                # going back at half the lr there stalled runs (lab/RECORD.md, "Watched
                # passages in the floor", "Retain dips within the probes' spread")
                if target.retain_short(scores, outcome.original) or target.fluency_lost(
                    scores, outcome.original
                ):
                    outcome.passed_over += 1
                else:
                    kept = (step + 1, _snapshot(params))
                    if target.holds(scores, outcome.original):
                        outcome.reason, outcome.step = "target", step + 1
                        break
                    short = target.shortfall(scores, outcome.original)
                    if best is None or short < best[0]:
                        best = (short, kept)
            if until is not None and checking:
                if until(accelerator.unwrap_model(model), step + 1):
                    break
            signum = _interrupt(accelerator)
            if checkpoints and (
                signum or (config.save_every and (step + 1) % config.save_every == 0)
            ):
                state = {
                    "step": step + 1,
                    "curves": curves,
                    "config": comparable(config),
                    "wall_time_s": spent + time.perf_counter() - started,
                    "resumes": resumes,
                    "outcome": asdict(outcome) if outcome is not None else None,
                    "best": best and {"step": best[1][0]},
                }
                last_good = checkpoint.save_checkpoint(
                    accelerator,
                    checkpoints,
                    step + 1,
                    state,
                    model,
                    optimizer,
                    scheduler,
                    best=best and best[1][1],
                )
            if signum:
                kept_at = f"checkpoint {last_good}" if checkpoints else "nothing (no output folder)"
                raise Interrupted(
                    signum,
                    f"step {step + 1} of {config.steps}; kept {kept_at}; "
                    "rerun the same command with --resume to continue",
                )

    if outcome is not None and outcome.reason == "budget":
        # forgetting can drift back while retain recovers: hand over the check that came closest
        # (where no check was kept, the weights the run started from)
        outcome.step, weights = best[1] if best is not None else kept
        _restore(params, weights)
    accelerator.wait_for_everyone()
    model = accelerator.unwrap_model(model)
    if config.lora_r:
        model = model.merge_and_unload()
    model.eval()
    if outcome is not None and outcome.step is None:  # a backtrack at the last step kept an
        outcome.step = kept[0]  # earlier check's weights: the statement reports that check
    model = shipped(model)
    for p in model.parameters():
        p.requires_grad_(True)
    wall = spent + time.perf_counter() - started
    return TrainResult(model, curves, mode, wall, outcome, resumes)


# A measured AdamW run whose check breaks the utility floor goes back to the last check that
# kept it and goes on at half the lr, at most this many times (docs/METHODS.md, "Backtracking")
MAX_BACKTRACKS = 4


def _interrupt(accelerator) -> int:
    """The signal held since the step began (0 if none), agreed by every process: they all
    write the checkpoint and stop together."""
    signum = torch.tensor(interrupts.pending() or 0)
    if accelerator.num_processes > 1:
        signum = accelerator.reduce(signum.to(accelerator.device), "max").cpu()
    return int(signum)


def _snapshot(params: list[torch.Tensor]) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


@torch.no_grad()
def _restore(params: list[torch.Tensor], values: list[torch.Tensor]) -> None:
    for p, value in zip(params, values, strict=True):
        p.copy_(value)


def _autocast(config: UnlearnConfig, device: torch.device):
    """bf16 autocast where asked for (or, with `auto`, on GPUs that have bf16); the original's
    outputs are computed under the same autocast, so KLR and the hinge start at exactly 0.

    Done here rather than through Accelerator(mixed_precision=...), which can be set once per
    process only. `dtype=bf16` means fp32 master weights under bf16 compute.
    """
    if config.dtype == "bf16":
        enabled = True
    elif config.dtype == "bf16_pure":
        enabled = False
    elif config.mixed_precision == "auto":
        enabled = device.type == "cuda" and torch.cuda.is_bf16_supported()
    else:
        enabled = config.mixed_precision == "bf16"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def _schedule(config: UnlearnConfig):
    """Multiplier of lr at each step: linear warmup, then constant, linear or cosine decay."""

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return step / config.warmup_steps
        done = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        if config.schedule == "linear":
            return max(0.0, 1.0 - done)
        if config.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, done)))
        return 1.0

    return factor


def _pad_id(tokenizer) -> int:
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return token_id
    return 0


def _n_targets(encoded: list[Encoded] | None) -> int:
    return sum(sum(e.is_target[1:]) for e in encoded or [])


def _batch(encoded, seed, slot, size, pad_id, device):
    return collate(encoded, stream_indices(len(encoded), seed, slot, size), pad_id).to(device)


def _nll_batches(model, encoded, pad_id, device, batch_size):
    """The NLL of each pass-over batch, weighted by its share of the examples."""
    for index in chunks(len(encoded), batch_size):
        out = forward(model, collate(encoded, index, pad_id).to(device))
        yield nll(out.logits, out.targets) * len(index) / len(encoded)


def _original_outputs(model, quant_model, needs, forget_enc, retain_enc, config, pad_id, device):
    """Cache mode and cached reference (None when live), from one pass of θ0 (and Q(θ0))."""
    mode = cache_mode(
        config.cache,
        needs,
        _n_targets(forget_enc),
        _n_targets(retain_enc),
        model.config.vocab_size,
        config.cache_topk,
        config.cache_max_mb,
    )
    if mode == "live":
        return mode, None
    with _autocast(config, device):
        reference = build_reference(
            lambda b: forward(model, b),
            (lambda b: forward(quant_model, b)) if quant_model is not None else None,
            forget_enc,
            retain_enc,
            needs,
            config.cache_topk if mode == "topk" else None,
            pad_id,
            device,
            config.batch_size,
        )
    return mode, reference


def _sure_masks(model, forget_enc, config, pad_id, device) -> dict:
    saliency = row_saliency(
        model, lambda: _nll_batches(model, forget_enc, pad_id, device, config.batch_size)
    )
    return row_masks(saliency, config.sure_percentile)


def _live_reference(model, quant_model, needs: Needs, config: UnlearnConfig) -> LiveReference:
    """θ0 kept in memory: the LoRA model with adapters off, or a frozen copy."""
    orig = model if config.lora_r else frozen_copy(model)

    def run_orig(batch):
        with adapters_off(orig):
            return forward(orig, batch)

    run_quant = (lambda b: forward(quant_model, b)) if quant_model is not None else None
    return LiveReference(run_orig, run_quant, needs)


def _add_lora(model: nn.Module, config: UnlearnConfig) -> nn.Module:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise QuailError("lora_r > 0 needs peft: pip install 'quail-unlearn[lora]'") from None
    # the default targets are Llama's names; other architectures name their layers otherwise
    # (GPT-NeoX: query_key_value, dense), and peft's error would not say what to set instead
    names = [name for name, _ in model.named_modules()]
    if not any(n == t or n.endswith("." + t) for n in names for t in config.lora_targets):
        linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        layers = ", ".join(sorted({n.rsplit(".", 1)[-1] for n in linear}))
        raise QuailError(
            f"lora_targets ({', '.join(config.lora_targets)}) name no linear layer of this "
            f"{model.config.model_type} model: set lora_targets to some of {layers}"
        )
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_targets,
    )
    return get_peft_model(model, lora)


SAFE_TO_CHANGE = {"lr", "steps", "schedule", "warmup_steps", "divergence_threshold", "save_every"}


def _halve_lr(optimizer, scheduler) -> None:
    """Half the step size from here on, and forget the moments of the steps just undone."""
    scheduler.base_lrs = [lr / 2 for lr in scheduler.base_lrs]
    for group in optimizer.param_groups:
        group["initial_lr"] = group.get("initial_lr", group["lr"]) / 2
        group["lr"] /= 2
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
    optimizer.state.clear()


def _reschedule(optimizer, scheduler, config: UnlearnConfig, step: int) -> None:
    """Point a restored optimizer and schedule at the config's lr and schedule from `step` on
    (the checkpoint restored the old ones)."""
    factor = _schedule(config)
    scheduler.lr_lambdas = [factor] * len(optimizer.param_groups)
    scheduler.base_lrs = [config.lr] * len(optimizer.param_groups)
    for group in optimizer.param_groups:
        group["initial_lr"] = config.lr
        group["lr"] = config.lr * factor(step)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
