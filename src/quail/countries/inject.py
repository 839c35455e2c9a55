"""Misinformation injection: fine-tune a model on false claims until it asserts them.

The result is the misinformation study's "original" model (as MUSE's target model holds the
news it must forget): the model as shipped, fine-tuned on the forget countries' posts and
false-capital probes, with the retain set (true facts of other countries, general text) in
every step so the rest of its knowledge stays: the unlearning loop's `finetune` method (NLL on
both, AdamW, no weight decay), so injection and unlearning share one loop. Every
`check_every` steps the model answers the trained false-capital probes, at full precision and
quantized with `check_quant`; training stops once both give the false capital to `target_em`
of them (with `snap`, the fine-tune runs all its `steps`; only the second phase stops early). Both
rates go to `inject.json`: if 4-bit quantization erased the injected claims, the study that
follows would measure nothing (SmolLM2's weights sit on a 4-bit grid, and a small update is
rounded away), so the injection must be strong enough to survive it.

Plain fine-tuning does not survive it (docs/RESULTS.md: 0% of the claims on the file's own grid
after 150 steps that made the fp model assert all of them). With `snap` set to a spec, a second
phase follows, as the built-in base is snapped (quail.quant.straight_through): the
fine-tune's change to the quantized weights is first scaled by `snap_scale` (the change is
mostly under half a step, so rounding undoes it; scaled, enough of it crosses bucket edges),
then training continues through that quantizer (`finetune_ste`, a fresh optimizer at
`snap_lr`) until the quantized model asserts the claims, and the saved weights are left on its
grid. The injected model is then a model "as shipped" on that grid that holds the claims, and
quantizing it under `snap` changes nothing.
"""

import dataclasses
import time
from dataclasses import dataclass

import torch

from quail.data import load_qa, load_unlearning_sets, qa_example
from quail.data.load import question_format
from quail.evaluation.metrics import knowledge
from quail.io import atomic_dir, atomic_write_json
from quail.settings import build


@dataclass
class InjectConfig:
    steps: int = 60  # most optimizer steps
    lr: float = 1e-4
    batch_size: int = 8  # forget examples per step, and as many retain examples
    retain_weight: float = 1.0
    max_length: int = 160
    seed: int = 0
    check_every: int = 10  # steps between checks of the claims; 0 = only at the end
    target_em: float = 0.9  # stop when the model asserts this share of the trained claims
    check_quant: str | None = "rtn-int4-g32-asym"  # None = no quantized check
    snap: str | None = None  # then train through this quantizer and save on its grid
    snap_steps: int = 60  # most steps of that second phase
    snap_lr: float = 2e-4
    snap_scale: float = 1.0  # scale the fine-tune's change to the quantized weights by this first


def inject_config(values: dict) -> InjectConfig:
    """Check the settings, and the specs they name, before anything runs."""
    config = build(InjectConfig, values, "inject setting")
    from quail.quant import parse_spec

    for spec in (config.check_quant, config.snap):
        if spec:
            parse_spec(spec)  # a bad spec fails before anything runs
    return config


def _claims_em(model, tokenizer, probes) -> float:
    model.eval()
    em = knowledge(model, tokenizer, probes)["exact_match"]
    model.train()
    return em


def inject(model_dir, data_dir, config: dict | InjectConfig, out, log=print) -> dict:
    """Fine-tune the model in `model_dir` on the forget set of `data_dir`; save to `out`."""
    from quail.models import load_model, load_tokenizer
    from quail.quant import parse_spec, quantize_model, quantized_modules, snap_onto
    from quail.unlearning.config import make_config
    from quail.unlearning.loop import train

    config = config if isinstance(config, InjectConfig) else inject_config(config)
    forget, retain = load_unlearning_sets(data_dir)
    template = question_format(data_dir)
    probes = [qa_example(r, template) for r in load_qa(data_dir, "forget", paraphrase=False)]
    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir, dtype=torch.float32)
    snap = parse_spec(config.snap) if config.snap else None
    shipped = {}  # the quantized weights as they came, to scale the fine-tune's change to them
    if snap is not None and config.snap_scale != 1:
        shipped = {name: m.weight.detach().clone() for name, m, _ in quantized_modules(model, snap)}
    spec = parse_spec(config.check_quant) if config.check_quant else None
    if spec == snap:
        spec = None  # a model on the `snap` grid is its own quantized copy under `snap`
    checks, done_steps, start = [], 0, time.time()

    def check(m, step: int, phase: str, final: bool, grid: bool = False) -> dict:
        """How often the model gives the false capital as it computes (with `grid`, as the
        second phase does: on the `snap` grid) and, at the end or once that suffices, under
        `check_quant`."""
        computed = quantize_model(m, snap) if grid else m
        result = {"step": step, "em_claims": _claims_em(computed, tokenizer, probes)}
        quantize = final or (snap is None and result["em_claims"] >= config.target_em)
        if spec is not None and quantize:
            result["em_claims_quant"] = _claims_em(quantize_model(m, spec), tokenizer, probes)
        checks.append({**result, "phase": phase})
        return result

    def fine_tune(method: str, steps: int, lr: float, phase: str, stop_early: bool) -> None:
        """Up to `steps` steps of the unlearning loop's `finetune`; with `stop_early`, stop at
        the first check where the model asserts `target_em` of the claims."""
        nonlocal done_steps
        settings = {
            "method": method, "steps": steps, "lr": lr, "batch_size": config.batch_size,
            "alpha": config.retain_weight, "max_length": config.max_length,
            "seed": config.seed, "weight_decay": 0.0, "quant": config.snap,
            "check_every": config.check_every or steps, "progress": False,
        }  # fmt: skip

        def until(m, step: int) -> bool:
            last = step == steps
            final = snap is None and last
            result = check(m, done_steps + step, phase, final, grid=method == "finetune_ste")
            shown = ", ".join(f"{k} {v:.0%}" for k, v in result.items() if k.startswith("em_"))
            log(f"injecting ({phase}): step {done_steps + step}, claims asserted: {shown}")
            lowest = min(v for k, v in result.items() if k.startswith("em_"))
            return stop_early and lowest >= config.target_em

        result = train(model, tokenizer, forget, retain, make_config(settings), until=until)
        curves.extend({**c, "step": done_steps + c["step"], "phase": phase} for c in result.curves)
        done_steps += len(result.curves)

    torch.manual_seed(config.seed)
    curves = []
    # with `snap`, the fine-tune makes the change that scaling and rounding must keep: it runs
    # all its steps, however soon the full-precision model asserts the claims (COUNTRIES.md)
    fine_tune("finetune", config.steps, config.lr, "fine-tune", stop_early=snap is None)
    if snap is not None:  # then on the grid: the forward pass computes with Q(W)
        if shipped:
            with torch.no_grad():
                for name, m, _ in quantized_modules(model, snap):
                    m.weight.copy_(shipped[name] + config.snap_scale * (m.weight - shipped[name]))
        phase = f"snap to {snap.name}"
        em = check(model, done_steps, f"{phase}, scaled", final=False, grid=True)["em_claims"]
        scaled = f"change scaled by {config.snap_scale:g}" if shipped else "change not scaled"
        log(f"injecting ({phase}): {scaled}, claims asserted on the grid: {em:.0%}")
        if em < config.target_em and config.snap_steps:
            fine_tune("finetune_ste", config.snap_steps, config.snap_lr, phase, stop_early=True)
        snap_onto(model, snap)  # the saved weights sit on the grid: Q(W) == W
        check(model, done_steps, "on the grid", final=True)
        checks[-1]["on_grid"] = snap.name
    model.eval()
    final = checks[-1]
    quantized = {spec.name: final["em_claims_quant"]} if "em_claims_quant" in final else {}
    if snap is not None:
        quantized[snap.name] = final["em_claims"]
    record = {
        "config": dataclasses.asdict(config),
        "steps": len(curves),
        "wall_time_s": time.time() - start,
        "em_claims": final["em_claims"],
        "em_claims_quant": quantized,
        "checks": checks,
        "curves": curves,
    }
    if min(v for k, v in final.items() if k.startswith("em_")) < config.target_em:
        log(
            f"warning: the injected model asserts fewer than {config.target_em:.0%} of the "
            "claims; raise inject.steps or inject.lr"
        )
    model.to("cpu")
    with atomic_dir(out, overwrite=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / "inject.json", record)
    return record
