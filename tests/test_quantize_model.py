"""quantize_model and `quail quantize` on a tiny Llama built from config."""

import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaForCausalLM
from typer.testing import CliRunner

import tiny
from quail.cli import app
from quail.quant import parse_spec, quantize_model, quantize_tensor


def tiny_llama(tie: bool = False) -> LlamaForCausalLM:
    return tiny.tiny_llama(tie_word_embeddings=tie)


def test_linear_weights_are_replaced_by_their_dequantized_values():
    model = tiny_llama()
    spec = parse_spec("int4-g32")
    quantized = quantize_model(model, spec)
    original = dict(model.named_parameters())
    changed = []
    for name, param in quantized.named_parameters():
        if name.endswith("proj.weight"):
            expected = quantize_tensor(original[name], spec).dequantize()
            torch.testing.assert_close(param, expected, rtol=0, atol=0)
            changed.append(name)
        else:  # norms, embeddings and lm_head are left alone by default
            assert torch.equal(param, original[name]), name
    assert len(changed) == 2 * 7
    assert not torch.equal(
        model.model.layers[0].mlp.up_proj.weight, quantized.model.layers[0].mlp.up_proj.weight
    )


def test_lm_head_and_embeddings_can_be_included():
    model = tiny_llama()
    quantized = quantize_model(model, parse_spec("nf4"), True, True)
    for name in ("lm_head.weight", "model.embed_tokens.weight"):
        weight = dict(model.named_parameters())[name]
        expected = quantize_tensor(weight, parse_spec("nf4")).dequantize()
        assert torch.equal(dict(quantized.named_parameters())[name], expected)


@pytest.mark.parametrize("tie", [False, True])
def test_an_emb_part_quantizes_embeddings_and_lm_head_under_their_own_spec(tie):
    model = tiny_llama(tie)
    spec = parse_spec("int4-g32+emb-int8")
    quantized = dict(quantize_model(model, spec).named_parameters(remove_duplicate=False))
    for name, weight in model.named_parameters(remove_duplicate=False):
        if "embed" in name or "lm_head" in name:
            under = parse_spec("int8")
        elif name.endswith("proj.weight"):
            under = parse_spec("int4-g32")
        else:
            assert torch.equal(quantized[name], weight), name  # norms
            continue
        assert torch.equal(quantized[name], quantize_tensor(weight, under).dequantize()), name
    # the flags change nothing: the part decides for embeddings and lm_head
    flagged = quantize_model(model, spec, include_lm_head=True, include_embeddings=True)
    for name, weight in flagged.named_parameters(remove_duplicate=False):
        assert torch.equal(weight, quantized[name]), name


def test_fp_spec_returns_an_identical_copy():
    model = tiny_llama()
    copy = quantize_model(model, parse_spec("fp"))
    assert copy is not model
    for (_, a), (_, b) in zip(model.named_parameters(), copy.named_parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.fixture
def model_dir(tmp_path):
    path = tmp_path / "model"
    tiny_llama().save_pretrained(path)
    return path


def test_cli_writes_a_folder_that_loads_in_plain_transformers(model_dir, tmp_path):
    out = tmp_path / "int8"
    result = CliRunner().invoke(
        app, ["quantize", str(model_dir), "--quant", "int8", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    loaded = AutoModelForCausalLM.from_pretrained(out)
    expected = quantize_model(AutoModelForCausalLM.from_pretrained(model_dir), parse_spec("int8"))
    for (name, a), (_, b) in zip(
        loaded.named_parameters(), expected.named_parameters(), strict=True
    ):
        assert torch.equal(a, b), name
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_cli_prints_no_warnings_of_libraries_it_does_not_use(model_dir, tmp_path):
    """transformers imports torchao whenever it builds a model; torchao's CUDA-extension and
    enum-registration warnings used to open every command's output on CPU machines."""
    pytest.importorskip("torchao")  # installed with the gptq extra; without it nothing to quiet
    command = [sys.executable, "-m", "quail.cli", "quantize", str(model_dir)]
    command += ["--quant", "int8", "--out", str(tmp_path / "int8")]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "torchao" not in result.stderr and "Enum subclass" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda m, t: [str(t / "missing"), "--quant", "int4"], "does not exist"),
        (lambda m, t: [str(t), "--quant", "int4"], "no config.json"),
        (lambda m, t: [str(m), "--quant", "int1"], "bits out of range"),
        (lambda m, t: [str(m), "--quant", "gguf"], "unknown quantization spec"),
        (lambda m, t: [str(m), "--quant", "int4-g48"], "does not divide"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(
    model_dir, tmp_path, make_args, message
):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["quantize", *make_args(model_dir, tmp_path), "--out", str(out)]
    )
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_refuses_nan_weights_naming_the_layer(tmp_path):
    model = tiny.tiny_llama()
    with torch.no_grad():
        model.model.layers[0].self_attn.q_proj.weight[2, 5] = float("inf")
    model.save_pretrained(tmp_path / "broken")
    out = tmp_path / "out"
    args = ["quantize", str(tmp_path / "broken"), "--quant", "int4", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "NaN or inf weights in model.layers.0.self_attn.q_proj" in result.output
    assert not out.exists()


def test_cli_refuses_to_overwrite_without_asking(model_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["quantize", str(model_dir), "--quant", "int4", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "not empty" in result.output
    assert (out / "keep.txt").read_text() == "mine"
    assert CliRunner().invoke(app, [*args, "--overwrite"]).exit_code == 0
    assert (out / "model.safetensors").exists() and not (out / "keep.txt").exists()
