"""quail's default: sign steps in units of the grid's median step, shipped rounded onto the
grid (update=grid_sign), on a tiny Llama whose weights sit on that grid."""

import copy

import torch

import unlearn_tiny as tiny
from quail.quant import parse_spec, quantize_model, quantize_tensor, quantized_modules
from quail.quant.model import embedding_modules
from quail.unlearning import make_config, unlearn
from quail.unlearning.signum import grid_groups
from unlearn_tiny import GRID, snapped


def test_grid_sign_keeps_the_forgetting_in_the_shipped_format_where_adamw_gives_it_back():
    """The same GA+GDR loss on a model whose weights sit on the grid, measured by the forget
    answers' loss: AdamW's steps, shipped as they are, are rounded away by the user's quantizer;
    sign steps in grid units, shipped on the grid, keep the forgetting. A test that fails if
    the mechanism is switched off."""
    original = snapped()
    forget, retain = tiny.split()
    spec = parse_spec(GRID)
    settings = {"method": "ga_gdr", "quant": GRID, "steps": 20, "batch_size": 4}

    def run(**config):
        result = unlearn(
            copy.deepcopy(original),
            forget,
            retain,
            settings | config | {"progress": False},
            tokenizer=tiny.tokenizer(),
        )
        return result.model

    adamw, shipped = run(update="adamw", lr=3e-4), run(update="grid_sign", lr=0.02)
    before = tiny.mean_nll(quantize_model(original, spec), forget)
    forgot = tiny.mean_nll(adamw, forget)
    assert forgot > 100 * before  # AdamW forgot at full precision...
    assert tiny.mean_nll(quantize_model(adamw, spec), forget) < 0.2 * forgot  # ...not on the grid
    quantized = quantize_model(shipped, spec)
    assert tiny.mean_nll(quantized, forget) > 0.8 * forgot
    assert tiny.mean_nll(quantized, retain) < 0.1
    for (name, a), b in zip(shipped.named_parameters(), quantized.parameters(), strict=True):
        assert torch.equal(a, b), name  # what the user quantizes is exactly what shipped


def test_each_part_of_the_format_moves_in_units_of_its_own_median_step():
    spec = parse_spec("rtn-int4-g16-asym+emb-rtn-int8")
    model = snapped(spec.name)
    steps = {spec.linear: [], spec.embeddings: []}
    for _, m, part in quantized_modules(model, spec):
        steps[part].append(quantize_tensor(m.weight.detach(), part).step().reshape(-1))
    median = {part: torch.cat(s).median().item() for part, s in steps.items()}
    embeddings = {id(m.weight) for _, m in embedding_modules(model)}  # and the lm_head
    groups = grid_groups(model, spec, list(model.parameters()))
    unit_of = {id(p): g["unit"] for g in groups for p in g["params"]}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    for name, p in model.named_parameters():
        # linear layers, and the norms the format keeps in float, in the linear layers' unit
        part = spec.embeddings if id(p) in embeddings else spec.linear
        assert abs(unit_of[id(p)] - median[part]) < 1e-9, name
    assert len(embeddings) == 2  # this tiny model's embedding and lm_head are not tied
    assert median[spec.embeddings] < median[spec.linear] / 4  # int8's grid is finer


def test_quail_starts_from_its_own_settings_unless_told_otherwise():
    config = make_config({"method": "quail", "quant": "int4"})
    assert (config.update, config.lr, config.steps, config.check_every) == (
        "auto",
        1.6e-3,
        1000,
        10,
    )
    assert make_config({"method": "quail", "quant": "int4", "lr": 1e-3}).lr == 1e-3
    assert make_config({"method": "ga_gdr"}).lr == 1e-5  # other methods keep the global default
