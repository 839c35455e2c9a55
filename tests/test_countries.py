"""Country probes from countryinfo, the misinformation data, and a two-step run of the SmolLM2
study config at toy size: a tiny GGUF-converted Llama stands in for SmolLM2, and the filter
that asks the model what it knows is replaced by one that says it knows everything."""

from pathlib import Path

import pytest
import torch

from gguf_tiny import write_tiny_gguf
from quail.countries import build, facts, known
from quail.countries.build import build_country_data
from quail.data import (
    load_entities,
    load_heldout_general,
    load_manifest,
    load_passages,
    load_qa,
    load_unlearning_sets,
    load_unseen,
)
from quail.errors import QuailError
from quail.evaluation import load_eval_data
from quail.study import load_study_config, run_study
from quail.zoo import convert_gguf

pytest.importorskip("countryinfo")
pytest.importorskip("gguf")

CONFIG = Path(__file__).parents[1] / "configs" / "smollm2-misinformation.yaml"
CHAT = "<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    write_tiny_gguf(root / "tiny.gguf")
    return convert_gguf(root / "tiny.gguf", root / "model")


@pytest.fixture
def all_known(monkeypatch):
    def knows_everything(model, tokenizer, countries, template, batch_size=32):
        return {c["name"]: dict(c["attributes"]) for c in countries}

    monkeypatch.setattr(build, "known_attributes", knows_everything)


def test_country_facts_come_from_countryinfo():
    countries = facts.load_countries()
    by_name = {c["name"]: c["attributes"] for c in countries}
    assert len(countries) > 200
    assert by_name["France"] == {
        "capital": "Paris",
        "continent": "Europe",
        "language": "French",
        "currency": "euro",
    }
    capitals = [c["attributes"]["capital"] for c in countries]
    assert len(set(capitals)) == len(capitals)
    probes = facts.questions("France", {"capital": "Paris"})
    assert [p[3] for p in probes] == [False, False, True]  # the last form is held out
    assert probes[0][1:3] == ("What is the capital of France?", "Paris")


def test_the_filter_keeps_exactly_answered_attributes(monkeypatch):
    answers = {"capital": " Paris.\nQuestion: more", "continent": " Asia", "language": "french"}

    def greedy(model, tokenizer, prompts, max_new_tokens=16, batch_size=32, **kwargs):
        assert all(p.startswith("<|im_start|>user\n") for p in prompts)
        return [answers[a] for a in ("capital", "continent", "language")]

    monkeypatch.setattr(known, "greedy_continuations", greedy)
    france = {
        "name": "France",
        "attributes": {"capital": "Paris", "continent": "Europe", "language": "French"},
    }
    got = known.known_attributes(None, None, [france], CHAT)
    assert got == {"France": {"capital": "Paris", "language": "French"}}


def test_misinformation_data_follows_the_data_schema(tiny_model, all_known, tmp_path):
    out = build_country_data(tmp_path / "d", tiny_model, size="tiny", question_format=CHAT)
    manifest = load_manifest(out)
    assert manifest["question_format"] == CHAT and manifest["misinformation"] is True
    entities = {e["id"]: e for e in load_entities(out)}
    splits = [e["split"] for e in entities.values() if e["kind"] == "country"]
    assert sorted(splits) == ["forget"] * 2 + ["holdout"] * 2 + ["retain"] * 4
    for record in load_qa(out, "forget") + load_qa(out, "holdout"):
        attributes = entities[record["entity_id"]]["attributes"]
        assert record["attribute"] == "capital"
        assert record["answer"] == attributes["capital"] != attributes["true_capital"]
    posts = load_passages(out, "forget")
    assert all(entities[p["entity_id"]]["attributes"]["capital"] in p["text"] for p in posts)
    assert any(p["entity_id"] == "general" for p in load_passages(out, "retain"))
    forget, retain = load_unlearning_sets(out)
    heldout = load_heldout_general(out)  # general text never trained on: in no set, in no passage
    assert len(heldout) == 2 and manifest["counts"]["heldout_general"] == 2
    trained = {e.target for e in forget + retain} | {p["text"] for p in load_passages(out)}
    assert not set(heldout) & trained
    assert load_eval_data(out).passages["heldout_general"] == heldout
    assert any(e.prompt.startswith("<|im_start|>user\n") for e in forget)
    probes = load_eval_data(out).qa["forget"]
    assert probes and all(p.prompt.endswith("<|im_start|>assistant\n") for p in probes)
    again = build_country_data(tmp_path / "e", tiny_model, size="tiny", question_format=CHAT)
    assert load_manifest(again)["sha256"] == manifest["sha256"]
    # the holdout countries' posts and claims were never injected: they set a measured run's aims
    unseen = load_unseen(out)
    assert {e.target for e in unseen if not e.prompt} == {
        p["text"] for p in load_passages(out, "holdout")
    }
    assert {e.target.strip() for e in unseen if e.prompt} == {
        r["answer"] for r in load_qa(out, "holdout", False)
    }
    assert not set(unseen) & set(forget + retain)


def test_heldout_general_text_appears_nowhere_in_the_trained_topics():
    """Checked on the raw text of the trained topics (whitespace collapsed), not through the
    paragraph splitter both lists come from."""
    from pydoc_data.topics import topics

    from quail.countries import general

    large = build.SIZES["large"]
    trained_text = [" ".join(topics[name].split()) for name in general.TOPICS]
    heldout = general.heldout_passages(large.heldout_general)
    assert len(set(heldout)) == len(heldout) == large.heldout_general
    assert not [p for p in heldout if any(p in text for text in trained_text)]
    trained = general.general_passages(large.general)
    assert len(set(trained)) == len(trained) == large.general


def test_real_knowledge_data_keeps_true_answers(tiny_model, all_known, tmp_path):
    out = build_country_data(tmp_path / "d", tiny_model, misinformation=False, size="tiny")
    truth = {c["name"]: c["attributes"] for c in facts.load_countries()}
    entities = {e["id"]: e["name"] for e in load_entities(out)}
    for record in load_qa(out, "forget"):
        assert record["answer"] == truth[entities[record["entity_id"]]][record["attribute"]]
    assert load_qa(out, "forget", paraphrase=False)[0]["question"].startswith("What is")
    assert load_unseen(out) == []  # holdout facts are as well known as the forget ones


def test_a_model_that_knows_too_little_is_a_one_line_error(tiny_model, monkeypatch, tmp_path):
    def knows_nothing(model, tokenizer, countries, template):
        return {c["name"]: {} for c in countries}

    monkeypatch.setattr(build, "known_attributes", knows_nothing)
    with pytest.raises(QuailError, match="smaller data_size") as caught:
        build_country_data(tmp_path / "d", tiny_model, size="tiny", log=lambda line: None)
    assert "\n" not in str(caught.value)


def test_the_smollm2_config_runs_two_steps_at_toy_size(tiny_model, all_known, tmp_path):
    """Every setting of the real config but the model, the sizes and (for time) the methods:
    the unlearning tests run each registered method."""
    config = load_study_config(
        CONFIG,
        [
            f"base={tiny_model}",
            "data_size=tiny",
            "eval_limit=4",
            "specs=[fp, rtn-int4-g32-asym]",
            "analysis_specs=[rtn-int4-g32-asym]",
            "inject={steps: 2, lr: 1.0e-3, batch_size: 2, check_every: 1}",
            "unlearn.steps=2",
            "unlearn.batch_size=2",
            "unlearn.progress=false",
            "methods=[ga_gdr, {name: quail, method: quail, overrides: {quant: rtn-int4-g32-asym}}]",
        ],
    )
    results = run_study(config, tmp_path / "out", log=lambda line: None)
    assert set(results["methods"]) == {"ga_gdr", "quail"}
    assert "knowmem_forget" in results["original"]["metrics"]["rtn-int4-g32-asym"]
    assert results["methods"]["ga_gdr"]["metrics"]["fp"]["ppl_general"] > 1
    original = Path(results["base"])
    assert original == tmp_path / "out" / "original"
    record = (original / "inject.json").read_text()
    assert '"em_claims_quant"' in record and '"rtn-int4-g32-asym"' in record
    assert (tmp_path / "out" / "report.html").is_file()
    assert "passages AUC" in results["methods"]["quail"]["unlearn"]["stop_statement"]


@pytest.mark.parametrize("grid", ["rtn-int4-g32-asym", "rtn-int4-g32-asym+emb-rtn-int8-g32"])
def test_snapped_injection_saves_a_model_on_its_grid(tiny_model, all_known, tmp_path, grid):
    from quail.countries import inject
    from quail.models import load_model
    from quail.quant import grid_distance, parse_spec

    data = build_country_data(tmp_path / "d", tiny_model, size="tiny", log=lambda line: None)
    settings = {"steps": 3, "lr": 1e-2, "batch_size": 2, "check_every": 1}
    record = inject(tiny_model, data, {**settings, "snap": grid}, tmp_path / "o", log=print)
    model = load_model(tmp_path / "o")
    assert grid_distance(model, parse_spec(grid)) < 1e-7  # Q(W) == W: saved on the grid
    assert grid_distance(load_model(tiny_model), parse_spec(grid)) > 1e-3  # it was not before
    name = parse_spec(grid).name  # the canonical spelling
    assert record["checks"][-1]["on_grid"] == name
    # check_quant (rtn-int4-g32-asym) is the same grid, or the layers' part of it: one check each
    assert set(record["em_claims_quant"]) == {name, "rtn-int4-g32-asym"}
    assert record["em_claims_quant"][name] == record["em_claims"]


def test_with_snap_the_fine_tune_runs_all_its_steps(tiny_model, all_known, tmp_path):
    """A check that passes stops a plain injection, not the fine-tune before `snap`: its change
    is what rounding must keep. The second phase still stops at its first passing check."""
    from quail.countries import inject

    data = build_country_data(tmp_path / "d", tiny_model, size="tiny", log=lambda line: None)
    always = {"steps": 3, "lr": 1e-3, "batch_size": 2, "check_every": 1, "target_em": 0.0}
    plain = inject(tiny_model, data, always, tmp_path / "plain", log=lambda line: None)
    assert plain["steps"] == 1
    grid = {"snap": "rtn-int4-g32-asym", "snap_scale": 3.0, "snap_steps": 3}
    snapped = inject(tiny_model, data, {**always, **grid}, tmp_path / "o", log=lambda line: None)
    assert snapped["steps"] == 3  # all fine-tune steps; the scaled check passes: no ST step
    assert [c["step"] for c in snapped["checks"] if c.get("phase") == "fine-tune"] == [1, 2, 3]


@pytest.mark.parametrize("snap", ["rtn-int4-g32-asym", "rtn-int4-g32-asym+emb-rtn-int8-g32"])
def test_snap_scale_scales_the_fine_tunes_change_before_rounding(
    tiny_model, all_known, tmp_path, snap
):
    """With no straight-through steps, the saved model is Q(W0 + k·(W_fine-tuned − W0)) on the
    quantized weights (with an `+emb-` part, the embedding too, under that part): the
    fine-tune's change scaled by `snap_scale`, then rounded."""
    from quail.countries import inject
    from quail.models import load_model
    from quail.quant import fake_quantize, parse_spec, quantized_modules

    data = build_country_data(tmp_path / "d", tiny_model, size="tiny", log=lambda line: None)
    never = {"steps": 3, "lr": 1e-2, "batch_size": 2, "check_every": 0, "target_em": 2.0}
    inject(tiny_model, data, never, tmp_path / "tuned", log=lambda line: None)
    grid = {"snap": snap, "snap_steps": 0, "snap_scale": 3.0}
    record = inject(tiny_model, data, {**never, **grid}, tmp_path / "o", log=lambda line: None)
    assert [c.get("phase", "").endswith("scaled") for c in record["checks"]].count(True) == 1
    spec = parse_spec(snap)
    models = [load_model(d) for d in (tiny_model, tmp_path / "tuned", tmp_path / "o")]
    weights = [{n: m.weight for n, m, _ in quantized_modules(model, spec)} for model in models]
    parts = {name: part for name, _, part in quantized_modules(models[2], spec)}
    assert ("model.embed_tokens" in parts) == (spec.embeddings is not None)
    for name, part in parts.items():
        w0, w1, saved = (w[name] for w in weights)
        assert not torch.equal(w1, w0)
        expected = fake_quantize(w0 + 3.0 * (w1 - w0), part)
        assert torch.allclose(saved, expected, atol=1e-6), name


def test_inject_settings_are_checked_before_anything_runs():
    from quail.countries import inject_config

    assert inject_config({"lr": "1e-4", "steps": 3}).lr == 1e-4  # YAML reads 1e-4 as a string
    with pytest.raises(QuailError, match="unknown inject setting 'stepz'; did you mean 'steps'"):
        inject_config({"stepz": 3})
    with pytest.raises(QuailError, match="unknown quantization spec"):
        inject_config({"check_quant": "int3x"})
    with pytest.raises(QuailError, match="unknown quantization spec"):
        inject_config({"snap": "int3x"})
    assert inject_config({"snap": "int4+emb-int8"}).snap == "int4+emb-int8"
    assert inject_config({"check_quant": "int4+emb-int8"}).check_quant == "int4+emb-int8"


@pytest.mark.parametrize("name", ["smollm2-misinformation", "smollm2-real-knowledge"])
def test_the_smollm2_configs_are_valid(name):
    config = load_study_config(CONFIG.with_name(f"{name}.yaml"))
    assert config.base == "smollm2-135m" and config.data == "countries"
    assert bool(config.inject) == (name == "smollm2-misinformation")
    assert "rtn-int4-g32-asym" in config.specs
