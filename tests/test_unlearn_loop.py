"""The loop's promises: outputs, resume, divergence guard, one-line config errors."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

import unlearn_tiny as tiny
from quail.errors import QuailError
from quail.unlearning import loop, make_config, unlearn
from quail.unlearning.config import load_config

CONFIG = {
    "method": "quail_hinge",
    "quant": "rtn-int4-g16",
    "margin": 0.2,
    "steps": 6,
    "lr": 3e-3,
    "batch_size": 3,
    "grad_accum": 2,
    "schedule": "cosine",
    "warmup_steps": 2,
    "progress": False,
}


def weights(folder):
    return load_file(str(folder / "model.safetensors"))


def go(out, resume=False, **overrides):
    forget, retain = tiny.split()
    return unlearn(
        tiny.trained_model(),
        forget,
        retain,
        {**CONFIG, **overrides},
        tokenizer=tiny.tokenizer(),
        out=out,
        resume=resume,
    )


def test_output_folder_loads_in_transformers_with_run_json(tmp_path):
    result = go(tmp_path / "out")
    out = tmp_path / "out"
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "run.json"} <= names
    model = AutoModelForCausalLM.from_pretrained(out)
    for (_, a), (_, b) in zip(
        model.named_parameters(), result.model.named_parameters(), strict=True
    ):
        assert torch.equal(a, b)
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["method"] == "quail_hinge" and run["seed"] == 0
    assert len(run["curves"]) == 6 and {"forget", "retain", "hinge", "lr"} <= set(run["curves"][0])
    assert {"torch", "transformers", "accelerate"} <= set(run["environment"])
    assert run["wall_time_s"] > 0
    assert not list(tmp_path.glob(".out.tmp-*"))


def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(tmp_path, monkeypatch):
    go(tmp_path / "straight")
    with tiny.interrupted_after(monkeypatch, 2 * 2 * 4):  # (forget + retain) x grad_accum x 4
        go(tmp_path / "resumed", save_every=3)
    assert (tmp_path / "resumed.checkpoints" / "step-000003").is_dir()
    assert not (tmp_path / "resumed").exists()
    result = go(tmp_path / "resumed", resume=True, save_every=3)
    assert [c["step"] for c in result.curves] == [1, 2, 3, 4, 5, 6]
    straight, resumed = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name
    assert not (tmp_path / "resumed.checkpoints").exists()


def test_resume_without_checkpoint_or_with_another_config_is_refused(tmp_path):
    with pytest.raises(QuailError, match="nothing to resume"):
        go(tmp_path / "none", resume=True, save_every=3)
    with pytest.raises(QuailError, match="diverged"):
        go(tmp_path / "a", save_every=2, divergence_threshold=0.5, lr=1.0, steps=50)
    with pytest.raises(QuailError, match="different alpha"):
        go(tmp_path / "a", resume=True, save_every=2, lr=1.0, steps=50, alpha=2.0)


def test_the_divergence_checkpoint_resumes_with_a_smaller_lr_and_the_change_is_recorded(
    tmp_path,
):
    with pytest.raises(QuailError, match="diverged"):
        go(tmp_path / "a", save_every=2, divergence_threshold=0.5, lr=1.0, steps=50)
    resumed = go(tmp_path / "a", resume=True, save_every=2, lr=1e-4)
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    (resume,) = run["resumes"]
    changed = {"lr": [1.0, 1e-4], "divergence_threshold": [0.5, 1e4], "steps": [50, 6]}
    assert resume["changed"] == changed and resume["step"] >= 2
    assert len(resumed.curves) == 6
    after = [c["lr"] for c in resumed.curves[resume["step"] :]]
    assert max(after) <= 1e-4 and all(math.isfinite(c["loss"]) for c in resumed.curves)


class Planted:
    """A pickle payload: unpickling it writes a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def checkpoint_after_three_steps(tmp_path, monkeypatch, **overrides):
    with tiny.interrupted_after(monkeypatch, 3 * CONFIG["grad_accum"] * 2):  # in step 4
        go(tmp_path / "out", save_every=3, **overrides)
    return tmp_path / "out.checkpoints" / "step-000003"


def test_checkpoints_hold_only_safetensors_and_json_and_a_planted_pickle_is_refused(
    tmp_path, monkeypatch
):
    import pickle

    folder = checkpoint_after_three_steps(tmp_path, monkeypatch)
    assert sorted(p.suffix for p in folder.iterdir()) == [".json"] + [".safetensors"] * 3
    marker = tmp_path / "ran"
    (folder / "custom_checkpoint_0.pkl").write_bytes(pickle.dumps(Planted(marker)))
    with pytest.raises(QuailError, match="custom_checkpoint_0.pkl, which quail never writes"):
        go(tmp_path / "out", resume=True, save_every=3)
    assert not marker.exists()


def test_a_checkpoint_that_cannot_be_written_leaves_nothing(tmp_path, monkeypatch):
    import errno

    from quail.unlearning import checkpoint

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_model", disk_full)
    with pytest.raises(OSError, match="No space left on device writing checkpoint"):
        go(tmp_path / "out", save_every=2)
    assert not list((tmp_path / "out.checkpoints").iterdir())
    assert not (tmp_path / "out").exists()


def test_a_damaged_checkpoint_is_one_line(tmp_path, monkeypatch):
    folder = checkpoint_after_three_steps(tmp_path, monkeypatch)
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(QuailError, match="cannot be read"):
        go(tmp_path / "out", resume=True, save_every=3)


def test_divergence_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(QuailError) as err:
        go(
            tmp_path / "out",
            method="ga",
            lr=0.5,
            steps=200,
            save_every=2,
            divergence_threshold=30.0,
            max_grad_norm=0.0,
        )
    message = str(err.value)
    assert "diverged at step" in message and "\n" not in message
    assert "last good checkpoint" in message and "step-" in message
    kept = list((tmp_path / "out.checkpoints").glob("step-*"))
    assert len(kept) == 1 and str(kept[0]) in message
    assert not (tmp_path / "out").exists()


def test_divergence_on_nan_without_checkpoints(monkeypatch):
    real_loss = loop.METHODS["ga"].loss

    def nan_loss(s):
        return {"forget": real_loss(s)["forget"] * float("nan")}

    monkeypatch.setitem(loop.METHODS, "ga", loop.METHODS["ga"].__class__(nan_loss))
    forget, retain = tiny.split()
    with pytest.raises(QuailError, match=r"diverged at step 1: loss nan.*none"):
        unlearn(
            tiny.trained_model(),
            forget,
            retain,
            {"method": "ga", "progress": False},
            tokenizer=tiny.tokenizer(),
        )


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"method": "forget_everything"}, "unknown method 'forget_everything'"),
        ({"lr": -1e-5}, "lr must be positive"),
        ({"method": "quail_hinge"}, "trains through the quantized model: pass quant=SPEC"),
        ({"method": "quail_npo", "quant": "fp"}, "trains through the quantized model"),
        ({"method": "quail"}, "measures forgetting in the formats you will ship"),
        ({"method": "quail", "quant": "fp"}, "measures forgetting in the formats"),
        ({"method": "ga_gdr", "update": "grid_sign", "quant": "fp"}, "in units of a quantization"),
        ({"method": "quail", "quant": "nf4"}, "is not one: list an rtn spec first"),
        (
            {"method": "quail_hinge", "quant": "int4", "margin": None},
            "config key 'margin' must be float",
        ),
        ({"method": "ga_gdr", "update": "grid_sign"}, "pass quant=SPEC"),
        ({"method": "quail_feedback"}, "unknown method 'quail_feedback'"),
        ({"method": "ga_gdr", "update": "flip", "quant": "int4"}, "config 'update' is 'flip'"),
        ({"method": "ga_gdr", "measure": True, "quant": "fp"}, "measures forgetting"),
        ({"quant": ","}, "quant is empty"),
        ({"target": 1.5}, r"config 'target' must be in \[0, 1\]"),
        ({"divergence_threshold": -1}, "divergence_threshold must be positive"),
        ({"lr": float("nan")}, "lr must be positive"),
        ({"method": "ste_ga_gdr"}, "pass quant=SPEC"),
        ({"cache": "disk"}, "config 'cache' is 'disk'; choose one of"),
        ({"distance": "l2"}, "config key 'distance' was removed with the hinge forms that lost"),
        ({"margin_multiple": 3, "lr": 1e-5}, "config key 'margin_multiple' was removed"),
        ({"steps": "many"}, "config key 'steps' must be int"),
        ({"learning_rate": 1e-5}, "unknown config key 'learning_rate'; known keys: alpha"),
        ({"stpes": 5}, "unknown config key 'stpes'; did you mean 'steps'"),
        ({"quant": "int42"}, "int42"),
        ({"method": "sure_ga_gdr", "lora_r": 4}, "lora_r > 0 cannot be combined"),
        ({"method": "quail_hinge", "quant": "int4", "lora_r": 4}, "lora_r > 0 cannot be combined"),
        ({"method": "quail", "quant": "int4", "lora_r": 4}, "lora_r > 0 cannot be combined"),
    ],
)
def test_bad_configs_give_one_line_errors(values, match):
    with pytest.raises(QuailError, match=match) as err:
        make_config(values)
    assert "\n" not in str(err.value)


def test_missing_retain_set_is_a_one_line_error():
    forget, _ = tiny.split()
    with pytest.raises(QuailError, match="needs a retain set") as err:
        unlearn(
            tiny.trained_model(), forget, None, {"method": "npo_gdr"}, tokenizer=tiny.tokenizer()
        )
    assert "\n" not in str(err.value)


def test_the_default_method_is_quail_and_asks_for_the_formats_you_ship():
    config = make_config({"quant": "int4"})
    assert (config.method, config.lr, config.steps, config.check_every) == (
        "quail",
        1.6e-3,
        1000,
        10,
    )
    with pytest.raises(QuailError, match="pass quant=SPEC.*or choose a baseline"):
        make_config({})
    assert make_config({"method": "ga_gdr"}).steps == 100  # a baseline needs no formats


def test_yaml_and_key_value_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("method: npo_klr\nlr: 1e-4\nsteps: 10\nquant: int4\nlora_targets: [q_proj]\n")
    config = load_config(
        path, ["lr=2e-5", "beta=0.2", "quant=null", "progress=false", "lora_targets=q_proj,v_proj"]
    )
    assert config.method == "npo_klr" and config.steps == 10
    assert config.lr == 2e-5 and config.beta == 0.2 and config.quant is None
    assert config.progress is False and config.lora_targets == ["q_proj", "v_proj"]
    with pytest.raises(QuailError, match="not key=value"):
        load_config(None, ["lr"])


def test_existing_output_is_not_overwritten(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(QuailError, match="not empty"):
        go(tmp_path / "out")


def test_top_level_quail_unlearn_is_the_api():
    import quail

    forget, retain = tiny.split()
    result = quail.unlearn(
        tiny.trained_model(),
        forget,
        retain,
        {"method": "ga", "steps": 1, "progress": False},
        tokenizer=tiny.tokenizer(),
    )
    assert len(result.curves) == 1


def test_environment_names_the_gpu_when_there_is_one(monkeypatch):
    from quail.environment import environment

    assert "gpu" not in environment() or torch.cuda.is_available()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: "NVIDIA H200")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    found = environment()
    assert found["gpu"] == "NVIDIA H200 x 2" and "cuda" in found


def test_an_output_that_cannot_be_written_is_refused_before_any_training(tmp_path, monkeypatch):
    import os

    (tmp_path / "a-file").write_text("x")
    started = []
    from quail.unlearning import api

    monkeypatch.setattr(api, "train", lambda *args, **kwargs: started.append(1))
    with pytest.raises(QuailError, match="is below the file"):
        go(tmp_path / "a-file" / "deeper" / "out")
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if p == tmp_path else real_access(p, mode)
    )
    with pytest.raises(QuailError, match=r"cannot write in .* \(permission denied\)"):
        go(tmp_path / "new" / "out")
    assert not started
