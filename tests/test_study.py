"""`quail run` at toy size: every file with its documented schema, resumable, and a report
that a headless browser opens with every image loaded."""

import base64
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from typer.testing import CliRunner

from quail.base.tokenizer import train_tokenizer
from quail.cli import app
from quail.data import build_dataset, load_passages, load_qa
from quail.errors import QuailError
from quail.report.plots import layer_label
from quail.study import load_study_config, report_study, run_study, study_config
from quail.study.config import MethodRun

CONFIG = """
name: toy
data: {data}
base: {base}
specs: [fp, int4-g16+emb-int8]  # an +emb- spec: cells, plots and tables named by it
eval_limit: 4
trace_every: 1
unlearn: {{steps: 2, lr: 1.0e-3, batch_size: 2, progress: false}}
methods:
  - ga_gdr
  - {{name: quail-m1, method: quail, overrides: {{steps: 2, check_every: 1, lr: 0.3}}}}
"""
SPEC = "rtn-int4-g16-sym+emb-rtn-int8-channel-sym"


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A small data set and a tiny random Llama with a tokenizer trained on it."""
    root = tmp_path_factory.mktemp("toy")
    data = build_dataset(root / "data", seed=0, size="small")
    texts = [r["text"] for r in load_passages(data)] + [r["question"] for r in load_qa(data)]
    texts += [r["answer"] for r in load_qa(data)] + ["Question : Answer :"]
    tokenizer = train_tokenizer(texts)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    config_path = root / "toy.yaml"
    config_path.write_text(CONFIG.format(data=data, base=root / "base"))
    return config_path


@pytest.fixture(scope="module")
def study(toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "out"
    result = CliRunner().invoke(app, ["run", str(toy), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_every_file_is_written_with_the_documented_schema(study):
    out, printed = study
    for name in ("results.json", "results.md", "report.html", "study.json"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    assert results["schema_version"] == 1
    assert results["specs"] == ["fp", SPEC]
    assert results["headline_metric"] == "knowmem_forget"
    assert set(results["methods"]) == {"ga_gdr", "quail-m1"}
    for metrics in [results["original"]["metrics"]] + [
        m["metrics"] for m in results["methods"].values()
    ]:
        assert set(metrics) == {"fp", SPEC}
        for spec, scores in metrics.items():
            assert 0 <= scores["knowmem_forget"] <= 100 and 0 <= scores["em_retain"] <= 1
            assert scores["ppl_retain"] > 1
            assert ("kld_retain" in scores) == (spec != "fp")  # fidelity to the model at fp
    method = results["methods"]["quail-m1"]
    recovery = method["recovery"][SPEC]["knowmem_forget"]
    assert set(recovery) == {"value", "reason"}
    summary = method["analysis"][SPEC]["summary"]
    assert 0 <= summary["bucket_overlap"] <= 1 and summary["bucket_overlap"] < 1.0
    layers = {layer["name"]: layer["spec"] for layer in method["analysis"][SPEC]["layers"]}
    assert layers["model.embed_tokens"] == layers["lm_head"] == "rtn-int8-channel-sym"
    assert method["unlearn"]["config"]["steps"] == 2  # its own overrides, not the shared ones
    traced = results["methods"]["ga_gdr"]["unlearn"]
    assert [check["step"] for check in traced["checks"]] == [0, 1, 2]  # trace_every: 1
    assert set(traced["checks"][-1]["scores"]) == {"fp", "rtn-int4-g16-sym"}  # the grid it aims at
    assert traced["config"]["lr"] == 1e-3 and method["unlearn"]["config"]["lr"] == 0.3
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert plots == [
        f"change_histogram_{SPEC}.png",
        "frontier.png",
        f"layer_overlap_{SPEC}.png",
        "recovery.png",
    ]
    table = (out / "results.md").read_text()
    assert f"| quail-m1 | {SPEC} |" in table and "Bucket overlap" in table
    assert "KLD retain" in table and "PPL ratio retain" in table
    assert "quail-m1" in printed  # the table is printed at the end


def test_a_rerun_resumes_without_recomputing(study, toy):
    """Also a study recorded before a config key existed (here `retrain`, at its default)."""
    out, _ = study
    cell = out / "cells" / "ga_gdr" / "eval-fp.json"
    before = cell.stat().st_mtime_ns
    record = json.loads((out / "study.json").read_text())
    del record["retrain"]
    (out / "study.json").write_text(json.dumps(record))
    run_study(load_study_config(toy), out, log=lambda line: None)
    assert cell.stat().st_mtime_ns == before


def test_a_resume_refuses_data_changed_since_the_study_began(study, toy, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(study[0], out)
    record = out / "data.sha256.json"
    hashes = json.loads(record.read_text())
    assert set(hashes) >= {"qa.jsonl", "manifest.json"}
    record.write_text(json.dumps(hashes | {"qa.jsonl": "0" * 64}))  # as if qa.jsonl was edited
    with pytest.raises(QuailError, match="qa.jsonl changed since this study began"):
        run_study(load_study_config(toy), out, log=lambda line: None)


def test_two_processes_give_one_study(study, toy, tmp_path):
    """Two CPU processes (torchrun; accelerate's `--cpu` launcher starts only one): both
    unlearn, the main one evaluates and writes; the original's evaluation (no training
    involved) equals the one-process run's."""
    out = tmp_path / "out"
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command = [*launch, "-m", "quail.cli", "run", str(toy), "--out", str(out)]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((out / "results.json").read_text())
    single = json.loads((study[0] / "results.json").read_text())
    assert set(results["methods"]) == {"ga_gdr", "quail-m1"}
    assert results["original"] == single["original"]
    assert done.stdout.count("unlearning with ga_gdr") == 1  # the main process speaks for all
    runs = [
        json.loads((out / "cells" / m / "model" / "run.json").read_text())
        for m in results["methods"]
    ]
    assert {r["processes"] for r in runs} == {2}


def test_a_different_config_in_the_same_folder_is_refused(study, toy):
    out, _ = study
    with pytest.raises(QuailError, match="different eval_limit"):
        run_study(load_study_config(toy, ["eval_limit=3"]), out, log=lambda line: None)
    with pytest.raises(QuailError, match="method ga_gdr was unlearned with lr=0.001, the config"):
        run_study(load_study_config(toy, ["unlearn.lr=2e-3"]), out, log=lambda line: None)


def test_a_rerun_may_add_a_method_and_a_spec_and_reuses_every_finished_cell(study, toy, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(study[0], out)
    cells = sorted((out / "cells").rglob("*.json"))
    before = {p: p.stat().st_mtime_ns for p in cells}
    # a display option is not a setting the models were made with
    config = load_study_config(toy, ["specs=fp,int4-g16+emb-int8,int8", "unlearn.progress=true"])
    config.methods.append(MethodRun("ga", "ga"))
    results = run_study(config, out, log=lambda line: None)
    assert {p: p.stat().st_mtime_ns for p in cells} == before  # nothing recomputed
    assert list(results["methods"]) == ["ga_gdr", "quail-m1", "ga"]
    assert set(results["methods"]["ga_gdr"]["metrics"]) == {"fp", SPEC, "rtn-int8-channel-sym"}
    assert json.loads((out / "study.json").read_text())["methods"][-1]["name"] == "ga"
    config.methods[1].overrides["lr"] = 0.1  # quail-m1 is finished: changing it is refused
    with pytest.raises(QuailError, match="method quail-m1 was unlearned with lr=0.3"):
        run_study(config, out, log=lambda line: None)


def test_report_of_an_unfinished_study_shows_what_is_written(study, tmp_path):
    """`quail report` on a study stopped mid-way: the finished cells as a finished study shows
    them, the missing ones listed and shown as "–", a method without fp left out, no
    results.json; `quail run` then resumes it."""
    out = tmp_path / "out"
    shutil.copytree(study[0], out)
    finished = json.loads((out / "results.json").read_text())
    (out / "results.json").unlink()
    (out / "cells" / "ga_gdr" / f"eval-{SPEC}.json").unlink()
    (out / "cells" / "quail-m1" / "eval-fp.json").unlink()
    result = CliRunner().invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 cells not written yet" in result.output
    assert not (out / "results.json").exists()
    page = (out / "results.md").read_text()
    assert "unfinished study: 2 cells not written yet" in page
    assert "quail-m1" not in page  # no fp evaluation: no recovery to show
    row = next(line for line in page.splitlines() if line.startswith("| ga_gdr |"))
    ga = finished["methods"]["ga_gdr"]["metrics"]["fp"]["knowmem_forget"]
    assert row == f"| ga_gdr | {ga:.2f} | – |"
    results = json.loads(json.dumps(report_study(out)))
    assert results["missing"] == [f"cells/ga_gdr/eval-{SPEC}.json", "cells/quail-m1/eval-fp.json"]
    assert results["original"] == finished["original"]


def test_report_needs_a_study_folder(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "holds no study" in result.output and "\n" not in result.output.strip()


def test_report_is_self_contained(study):
    out, _ = study
    page = (out / "report.html").read_text()
    assert "http://" not in page and "https://" not in page
    assert page.count("data:image/png;base64,") == 4


def test_every_image_is_linked_and_the_recovery_heatmap_leads(study):
    """results.md links each plot, report.html inlines each byte for byte; both pages show the
    recovery heatmap before any table."""
    out, _ = study
    markdown, page = (out / "results.md").read_text(), (out / "report.html").read_text()
    linked = re.findall(r"!\[[^\]]*\]\((plots/[^)]+)\)", markdown)
    assert sorted(linked) == sorted(f"plots/{p.name}" for p in (out / "plots").iterdir())
    assert linked[0] == "plots/recovery.png"
    assert markdown.index(linked[0]) < markdown.index("\n| ")
    inlined = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', page)
    assert sorted(alt for alt, _ in inlined) == sorted(p.stem for p in (out / "plots").iterdir())
    assert inlined[0][0] == "recovery" and page.index("<img") < page.index("<table")
    for alt, data in inlined:
        assert base64.b64decode(data) == (out / "plots" / f"{alt}.png").read_bytes()


def test_layers_are_labelled_by_block_and_module():
    assert layer_label("model.layers.3.self_attn.q_proj") == "3.q_proj"
    assert layer_label("blk.12.ffn_up.weight") == "12.ffn_up"  # a GGUF file's tensor
    assert layer_label("lm_head") == "lm_head"


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_report_opens_in_headless_chromium_with_every_image_loaded(study, tmp_path):
    out, _ = study
    script = (
        "JSON.stringify({images: [...document.images].map(i => i.complete && i.naturalWidth > 0),"
        " rows: document.querySelectorAll('#results tr').length})"
    )
    page = tmp_path / "check.html"
    page.write_text(
        (out / "report.html")
        .read_text()
        .replace(
            "</body>",
            f"<pre id='probe'></pre><script>window.onload = () => "
            f"document.getElementById('probe').textContent = {script};</script></body>",
        )
    )
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    probe = json.loads(dom.split('<pre id="probe">', 1)[1].split("</pre>", 1)[0])
    assert probe["images"] == [True, True, True, True]
    assert probe["rows"] == 1 + 3 * 2  # header + (original, two methods) x two precisions


def test_dotted_overrides_set_one_entry_of_a_mapping():
    config = study_config(
        {"methods": ["ga"], "unlearn": {"lr": 1e-5, "steps": 3}},
        ["unlearn.lr=3.0e-5", "eval_limit=7", "specs=[fp, int8]"],
    )
    assert config.unlearn == {"lr": 3e-5, "steps": 3}
    assert config.eval_limit == 7 and config.specs == ["fp", "rtn-int8-channel-sym"]


def test_a_quail_run_given_a_baselines_lr_is_warned_of_before_any_work():
    from quail.study.runner import _warn_lr

    config = study_config(
        {
            "methods": [
                "ga_gdr",
                "quail",
                {"name": "quail_slow", "method": "quail", "overrides": {"lr": 1e-5}},
            ],
            "unlearn": {"lr": 1e-5, "steps": 10},
            "analysis_specs": ["int4"],
        }
    )
    lines = []
    _warn_lr(config, lines.append)
    assert len(lines) == 1 and lines[0].startswith("warning: quail_slow: lr=1e-05 is in steps")


def test_quail_keeps_its_own_settings_over_the_baselines_shared_budget():
    """A study's shared `unlearn` sizes the baselines; quail starts from its own lr, steps and
    check frequency whatever the study says, and only its own overrides change them."""
    from quail.study.config import unlearn_settings
    from quail.unlearning import make_config

    config = study_config(
        {
            "methods": [
                "ga_gdr",
                "quail",
                {"name": "quail_fast", "method": "quail", "overrides": {"lr": 1e-4}},
            ],
            "unlearn": {"lr": 1e-5, "steps": 10, "batch_size": 4},
            "analysis_specs": ["int4"],
        }
    )
    made = {run.name: make_config(unlearn_settings(config, run)) for run in config.methods}
    assert (made["ga_gdr"].lr, made["ga_gdr"].steps) == (1e-5, 10)
    quail = made["quail"]
    assert (quail.lr, quail.steps, quail.check_every, quail.batch_size) == (1.6e-3, 1000, 10, 4)
    assert (made["quail_fast"].lr, made["quail_fast"].steps) == (1e-4, 1000)


@pytest.mark.parametrize(
    "values, problem",
    [
        ({"methods": []}, "lists no methods"),
        ({"methods": ["gaa"]}, "unknown method"),
        ({"methods": ["ga"], "colour": 1}, "unknown study config key"),
        ({"methods": ["ga"], "specs": ["int9"]}, "bits out of range"),
        ({"methods": ["ga", "ga"]}, "unique"),
        ({"methods": ["ga"], "headline_metric": "em_retain"}, "not a forget metric"),
        ({"methods": "ga,gaa"}, "unknown method 'gaa'"),  # a string is a comma list
        ({"methods": 5}, "'methods' must be a list"),
        ({"methods": ["ga"], "specs": 5}, "'specs' must be a list"),
        ({"methods": ["ga"], "specs": ["fp", 5]}, "'specs' must be a list of strings"),
        ({"methods": ["ga"], "analysis_specs": ["int4", 4]}, "'analysis_specs' must be a list"),
        ({"methods": ["ga"], "unlearn": [1]}, "'unlearn' must be a mapping"),
        ({"methods": ["ga"], "eval_limit": "all"}, "'eval_limit' must be int"),
        ({"methods": ["ga"], "trace_every": -1}, "trace_every must be a whole number"),
        ({"methods": ["ga"], "sepcs": ["int4"]}, "did you mean 'specs'"),
        ({"methods": ["ga"], "eval_limit": -5}, "eval_limit must be a whole number >= 1"),
        ({"methods": ["ga"], "eval_limit": 0}, "eval_limit must be a whole number >= 1"),
    ],
)
def test_bad_study_configs(values, problem):
    with pytest.raises(QuailError, match=problem):
        study_config(values)


@pytest.mark.parametrize(
    ("spec", "library", "adapter", "message"),
    [
        ("gguf-q4_k_m", "llama_cpp", None, "GGUF needs llama-cpp-python"),
        ("bnb-nf4", "bitsandbytes", "quail.quant.backends.bnb", "pip install"),
    ],
)
def test_a_spec_whose_library_is_missing_stops_the_study_before_any_work(
    monkeypatch, tmp_path, spec, library, adapter, message
):
    from typer.testing import CliRunner

    from quail.cli import app

    monkeypatch.setitem(sys.modules, library, None)  # `import library` now fails
    if adapter:
        monkeypatch.delitem(sys.modules, adapter, raising=False)
    config = tmp_path / "study.yaml"
    config.write_text(f"methods: [ga_gdr]\nspecs: [fp, {spec}]\n")
    result = CliRunner().invoke(app, ["run", str(config), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()  # nothing claimed, nothing built


def test_a_missing_tofu_reference_stops_the_study_before_any_work(tmp_path):
    from typer.testing import CliRunner

    from quail.cli import app

    config = tmp_path / "study.yaml"
    config.write_text("methods: [ga_gdr]\ntofu_reference: no-such-model\n")
    result = CliRunner().invoke(app, ["run", str(config), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "is not a model folder" in result.output, result.output
    assert not (tmp_path / "out").exists()
