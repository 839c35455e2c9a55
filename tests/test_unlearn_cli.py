"""`quail unlearn`: a thin layer over quail.unlearning.unlearn; bad input is one line, exit 2."""

import json

import pytest
from typer.testing import CliRunner

import unlearn_tiny as tiny
from quail.cli import app
from quail.data import build_dataset


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("unlearn_cli")
    build_dataset(root / "data", seed=0, size="small")
    model = tiny.trained_model()
    model.save_pretrained(root / "model")
    tiny.tokenizer().save_pretrained(root / "model")
    return root


def unlearn_args(folders, out, *extra) -> list[str]:
    """`quail unlearn` on the tiny model and data folders, writing to `out`."""
    model, data = str(folders / "model"), str(folders / "data")
    return ["unlearn", "--model", model, "--data", data, "--out", str(out), *extra]


def test_unlearn_command_writes_a_model_folder_and_run_json(folders, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("steps: 5\nlr: 1.0e-3\nbatch_size: 4\n")
    out = tmp_path / "out"
    args = unlearn_args(folders, out, "--method", "quail", "--quant", "rtn-int4-g16")
    args += ["--config", str(config), "steps=3", "progress=false"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["method"] == "quail" and run["config"]["steps"] == 3
    assert run["config"]["lr"] == 1e-3 and run["config"]["quant"] == "rtn-int4-g16"
    assert (out / "model.safetensors").is_file()
    assert "warning" not in result.output  # 1e-3 is within 10x of quail's default lr


def test_quail_given_a_baselines_lr_is_warned_that_it_counts_in_grid_steps(folders, tmp_path):
    args = unlearn_args(folders, tmp_path / "out", "--method", "quail", "--quant", "rtn-int4-g16")
    result = CliRunner().invoke(app, [*args, "lr=3e-5", "steps=2", "progress=false"])
    assert result.exit_code == 0, result.output
    assert "warning: lr=3e-05 is in steps of the grid" in result.output
    assert "6e-05 of a step in 2 steps" in result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "nope"], "unknown method 'nope'"),
        (["--method", "quail_hinge"], "trains through the quantized model: pass quant=SPEC"),
        (["--method", "quail_hinge", "hinge_on=fp"], "config key 'hinge_on' was removed"),
        (["--method", "quail"], "measures forgetting in the formats you will ship"),
        (["lr=-1"], "lr must be positive"),
        (["--task", "poems"], "unknown task"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(folders, tmp_path, extra, message):
    result = CliRunner().invoke(app, unlearn_args(folders, tmp_path / "out", *extra))
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
