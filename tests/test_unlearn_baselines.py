"""The field's 2026 answers as baselines (dtu, durableun_saf, mansu): each update does what its
paper's mechanism says, on the tiny Llama."""

import copy

import pytest
import torch

import unlearn_tiny as tiny
from quail.errors import QuailError
from quail.quant import fake_quantize, parse_spec, quantize_tensor, quantized_modules
from quail.unlearning import unlearn

GRID = "rtn-int4-g16"


def run(model, method, **config):
    forget, retain = tiny.split()
    settings = {"method": method, "steps": 1, "lr": 1e-3, "batch_size": 4, "progress": False}
    return unlearn(model, forget, retain, settings | config, tokenizer=tiny.tokenizer())


def moves(before, after) -> dict[str, torch.Tensor]:
    start = dict(before.named_parameters())
    return {n: (p - start[n]).detach() for n, p in after.named_parameters()}


def test_dtu_moves_every_weight_by_exactly_lr_in_its_gradients_sign():
    original = tiny.trained_model()
    result = run(copy.deepcopy(original), "dtu", lr=1e-3)
    changes = torch.cat([d.reshape(-1).abs() for d in moves(original, result.model).values()])
    moved = changes[changes > 0]
    assert moved.numel() > 0.5 * changes.numel()
    assert torch.allclose(moved, torch.full_like(moved, 1e-3), rtol=1e-3)


def test_sam_at_radius_zero_is_the_plain_straight_through_step():
    original = tiny.trained_model()
    plain = run(copy.deepcopy(original), "ste_ga_gdr", steps=2, quant=GRID, weight_decay=0.01)
    sam = run(copy.deepcopy(original), "durableun_saf", steps=2, quant=GRID, rho=0.0)
    climbed = run(copy.deepcopy(original), "durableun_saf", steps=2, quant=GRID, rho=0.5)
    pairs = zip(plain.model.parameters(), sam.model.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    pairs = zip(sam.model.parameters(), climbed.model.parameters(), strict=True)
    assert any(not torch.equal(a, b) for a, b in pairs)


def test_sam_takes_the_perturbation_back_after_the_step():
    original = tiny.trained_model()
    result = run(copy.deepcopy(original), "durableun_saf", quant=GRID, rho=0.5, lr=1e-12)
    for d in moves(original, result.model).values():
        assert d.abs().max() < 1e-6  # ρ = 0.5 left in place would move weights by ~1e-2


def test_mansu_moves_few_weights_each_by_at_least_one_step_that_rounding_keeps():
    original = tiny.trained_model()
    result = run(copy.deepcopy(original), "mansu", quant=GRID, steps=4, sure_percentile=80)
    spec = parse_spec(GRID)
    on_grid = {n for n, _, _ in quantized_modules(original, spec)}
    changed = moves(original, result.model)
    params = dict(original.named_parameters())
    total = 0
    for name, d in changed.items():
        module = name.rsplit(".", 1)[0]
        if module not in on_grid:
            assert not d.any(), f"{name} is not on the grid and must stay put"
            continue
        moved = d != 0
        assert moved.float().mean() <= 0.2 + 1e-6  # the top 20% by attribution, at most
        step = quantize_tensor(params[name].detach(), spec).step()
        assert (d.abs()[moved] >= step[moved] * (1 - 1e-5)).all()
        before = fake_quantize(params[name].detach(), spec)
        after = fake_quantize(dict(result.model.named_parameters())[name].detach(), spec)
        assert (before != after)[moved].all()  # no move is rounded away
        total += int(moved.sum())
    assert total > 0


@pytest.mark.parametrize(
    ("quant", "message"), [(None, "pass quant=SPEC"), ("nf4,int4", "round-to-nearest grid")]
)
def test_mansu_needs_a_round_to_nearest_grid_first(quant, message):
    with pytest.raises(QuailError, match=message):
        run(tiny.trained_model(), "mansu", quant=quant)
