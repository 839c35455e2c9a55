"""Error-feedback rounding onto the shipped grid (update=project, `quail_feedback`), on random
layers and on a tiny Llama whose weights sit on that grid."""

import copy

import pytest
import torch

import unlearn_tiny as tiny
from quail.data.batches import encode
from quail.quant import fake_quantize, parse_spec, quantize_model, quantize_tensor
from quail.unlearning import projection, unlearn
from quail.unlearning.projection import round_with_feedback
from unlearn_tiny import GRID, snapped


def layer(spec: str, seed: int = 0):
    """A weight on `spec`'s grid; the same weight after a structured change of 0.4 of a step
    (sign pattern of rank one, under the half step nearest rounding erases; a group's extremes,
    which set its scale, stay); and inputs of low effective rank, as a layer's activations are."""
    torch.manual_seed(seed)
    part = parse_spec(spec).linear
    original = fake_quantize(torch.randn(16, 64), part)
    step = quantize_tensor(original, part).step()
    groups = original.reshape(-1, part.group_size or original.shape[1])
    ends = (groups == groups.amax(1, keepdim=True)) | (groups == groups.amin(1, keepdim=True))
    if part.symmetric:
        ends = groups.abs() == groups.abs().amax(1, keepdim=True)
    change = 0.4 * step * torch.sign(torch.randn(16, 1) @ torch.randn(1, 64))
    moved = original + torch.where(ends.reshape(original.shape), 0.0, change)
    x = torch.randn(512, 3) @ torch.randn(3, 64) + 0.05 * torch.randn(512, 64)
    return part, original, moved, x


@pytest.mark.parametrize("spec", ["rtn-int4-g16", "rtn-int4-g16-asym", "rtn-int3-channel"])
def test_the_result_is_on_the_original_grid_and_quantizing_it_changes_nothing(spec):
    part, original, moved, x = layer(spec)
    rounded = round_with_feedback(moved, original, part, (x.T @ x).double())
    grid, again = quantize_tensor(original, part), quantize_tensor(rounded, part)
    assert torch.equal(grid.scale, again.scale)
    assert grid.zero is None or torch.equal(grid.zero, again.zero)
    if part.symmetric:
        assert torch.equal(again.dequantize(), rounded)
    else:  # asymmetric RTN recomputes (max - min) / 15: idempotent only to a float's last bit
        assert torch.allclose(again.dequantize(), rounded, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("spec", ["rtn-int4-g16", "rtn-int4-g16-asym", "rtn-int3-channel"])
def test_feedback_keeps_what_nearest_rounding_erases(spec, seed):
    """Nearest rounding of the change gives (nearly) the original back, and the layer's change
    is lost; error feedback reproduces the changed layer's outputs at least twice as closely."""
    part, original, moved, x = layer(spec, seed)
    nearest = fake_quantize(moved, part)
    rounded = round_with_feedback(moved, original, part, (x.T @ x).double())

    def error(w):
        return (x @ (moved - w).T).norm()

    assert error(nearest) > 0.9 * error(original)  # nearest rounding lost the change
    assert error(rounded) < 0.5 * error(nearest)


@pytest.mark.parametrize("spec", ["rtn-int4-g16", "rtn-int4-g16-asym", "rtn-int3-tensor"])
def test_layers_rounded_together_and_in_blocks_round_as_each_alone(spec, monkeypatch):
    """Rounding several layers in one batch, and carrying errors a block of columns at a time,
    are ways to go faster: the codes are those of one layer, one column at a time."""
    layers = [layer(spec, seed) for seed in range(3)]
    part = layers[0][0]
    grams = [(x.T @ x).double() for *_, x in layers]
    monkeypatch.setattr(projection, "BLOCK", 1)
    alone = [
        round_with_feedback(moved, original, part, gram)
        for (_, original, moved, _), gram in zip(layers, grams, strict=True)
    ]
    monkeypatch.setattr(projection, "BLOCK", 24)  # 64 columns: two full blocks and a part
    together = round_with_feedback(
        torch.stack([m for _, _, m, _ in layers]),
        torch.stack([o for _, o, _, _ in layers]),
        part,
        torch.stack(grams),
    )
    for one, batched in zip(alone, together, strict=True):
        assert torch.allclose(one, batched, atol=1e-6)
    assert not torch.equal(together[0], layers[0][1])  # something moved


def test_project_keeps_the_forgetting_in_the_shipped_format_where_adamw_gives_it_back():
    """The same GA+GDR steps on a model whose weights sit on the grid, measured by the forget
    answers' loss: shipped as is (update=adamw; the user's quantizer rounds to nearest), the
    grid model gives most of the forgetting back; shipped by error feedback (update=project) it
    keeps it. A test that fails if the mechanism is switched off."""
    original = snapped()
    forget, retain = tiny.split()
    spec = parse_spec(GRID)
    settings = {"quant": GRID, "steps": 20, "lr": 3e-4, "batch_size": 4, "progress": False}
    runs = {
        update: unlearn(
            copy.deepcopy(original),
            forget,
            retain,
            settings | {"method": "ga_gdr", "update": update},
            tokenizer=tiny.tokenizer(),
        ).model
        for update in ("adamw", "project")
    }
    before = tiny.mean_nll(quantize_model(original, spec), forget)
    forgot = tiny.mean_nll(runs["adamw"], forget)
    assert forgot > 100 * before  # GA+GDR forgot at full precision...
    assert tiny.mean_nll(quantize_model(runs["adamw"], spec), forget) < 0.2 * forgot  # ...not here
    shipped = runs["project"]
    assert tiny.mean_nll(quantize_model(shipped, spec), forget) > 0.8 * forgot
    assert tiny.mean_nll(quantize_model(shipped, spec), retain) < 0.1
    quantized = quantize_model(shipped, spec)
    for (name, a), (_, b) in zip(
        shipped.named_parameters(), quantized.named_parameters(), strict=True
    ):
        assert torch.equal(a, b), name  # what the user quantizes is exactly what shipped


@pytest.mark.parametrize("spec", ["rtn-int4-tensor", "rtn-int4-g16-asym"])
def test_layers_that_share_an_input_keep_their_own_grids(spec):
    """q, k and v share one Gram matrix and are rounded as one matrix, but each keeps its own
    scale: quantizing the shipped model again changes nothing, per tensor included."""
    from quail.quant import quantized_modules
    from quail.unlearning.projection import project

    original = snapped(spec)
    forget, _ = tiny.split()
    linears = {
        name: (module.weight.detach().clone(), part)
        for name, module, part in quantized_modules(original, parse_spec(spec))
        if isinstance(module, torch.nn.Linear)
    }
    moved = copy.deepcopy(original)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, module in moved.named_modules():
            if name in linears:
                module.weight.add_(1e-3 * torch.randn_like(module.weight))
    tok = tiny.tokenizer()
    shipped = project(moved, linears, encode(forget, tok, 32, "forget"), tok.pad_token_id)
    again = quantize_model(shipped, parse_spec(spec))
    changed = 0
    for (name, a), (_, b) in zip(shipped.named_parameters(), again.named_parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name
        changed += int(not torch.equal(a, dict(original.named_parameters())[name]))
    assert changed > 0


def test_a_broken_utility_floor_sends_the_run_back_at_half_the_lr():
    """A check below the floor restores the last check that kept it and goes on at half the
    lr (a trajectory fine enough to stop on), instead of ending there; at most MAX_BACKTRACKS
    times. A floor of 1.0 breaks at the first retain loss, so the run has to back off."""
    from quail.unlearning.loop import MAX_BACKTRACKS

    forget, retain = tiny.split()
    settings = {"method": "quail_feedback", "quant": GRID, "steps": 16, "check_every": 2}
    settings |= {"lr": 3e-3}
    settings |= {"utility_floor": 1.0, "target": 0.0, "batch_size": 4, "progress": False}
    result = unlearn(snapped(), forget, retain, settings, tokenizer=tiny.tokenizer())
    outcome, lrs = result.outcome, [c["lr"] for c in result.curves]
    floor = outcome.original["fp"]["retain"]
    assert 1 <= outcome.backtracks <= MAX_BACKTRACKS
    broke = [c["step"] for c in outcome.checks[1:] if c["scores"]["fp"]["retain"] < floor]
    assert broke and len(result.curves) > broke[0]  # it went on past the first broken check
    halvings = len(set(lrs)) - 1
    assert set(lrs) == {3e-3 / 2**k for k in range(halvings + 1)}
    assert outcome.backtracks - 1 <= halvings <= outcome.backtracks
    kept = [c for c in outcome.checks if c["step"] == outcome.step]
    assert all(c["scores"]["fp"]["retain"] >= floor for c in kept)  # what it returns kept it
