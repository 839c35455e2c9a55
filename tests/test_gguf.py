"""GGUF specs and export: what runs without llama.cpp (spec grammar, block unpacking against
the gguf package's own quantizer and dequantizer, the one-line errors of a missing build)."""

import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from quail.cli import app
from quail.errors import QuailError
from quail.quant import parse_spec
from quail.quant.spec import GGUF_SPECS

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType as T  # noqa: E402

from quail.gguf.blocks import unpack  # noqa: E402


@pytest.mark.parametrize("name", list(GGUF_SPECS))
def test_gguf_specs_parse_and_name_themselves(name):
    spec = parse_spec(name.upper())
    assert spec.name == name
    assert parse_spec(spec.name) == spec
    assert not spec.is_fp


def test_gguf_spec_errors_are_one_line():
    with pytest.raises(QuailError, match="unknown GGUF type"):
        parse_spec("gguf-q3_k_s")
    with pytest.raises(QuailError, match="embeddings"):
        parse_spec("gguf-q4_0+emb-int8")


def _weights(rows=8, columns=256, seed=0):
    generator = np.random.default_rng(seed)
    weights = generator.standard_normal((rows, columns)).astype(np.float32)
    weights[:, 5] *= 6  # an outlier column, as trained weights have
    return weights


@pytest.mark.parametrize("kind", [T.Q8_0, T.Q5_0, T.Q5_1, T.Q4_0, T.Q4_1])
def test_unpacked_codes_give_the_gguf_package_values_bit_for_bit(kind):
    """The gguf package's numpy port of llama.cpp's reference quantizer writes the blocks;
    quail's codes · scales (+ zeros) are the dequantized values, exactly."""
    weights = _weights()
    blocks = gguf.quants.quantize(weights, kind)
    per_block = gguf.GGML_QUANT_SIZES[kind][1]
    codes, scale, zero = unpack(blocks.reshape(-1, per_block), kind.name)
    values = codes.astype(np.float32) * scale + (0 if zero is None else zero)
    expected = gguf.quants.dequantize(blocks, kind)
    assert np.array_equal(values.reshape(weights.shape), expected)
    assert (scale >= 0).all()


def test_q4_0_is_a_grid_of_absmax_over_8_with_the_extreme_exact():
    """Q4_0's step is the group's absmax / 8 (quail's rtn-int4-sym uses / 7), signed so that
    the extreme element gets code ±8 and is exact; the other side stops at 7 steps, so values
    there beyond 7.5 steps are clipped (error up to one step), all others within half a step."""
    weights = _weights()
    blocks = gguf.quants.quantize(weights, T.Q4_0)
    codes, scale, _ = unpack(blocks.reshape(-1, 18), "Q4_0")
    groups = weights.reshape(-1, 32)
    absmax = np.abs(groups).max(axis=1, keepdims=True)
    assert np.allclose(scale, absmax / 8, rtol=2**-10)
    assert (np.abs(codes).max(axis=1) == 8).all()
    error = np.abs(codes * scale - groups)
    slack = absmax * 2**-10  # the scale is stored in float16
    inside = np.abs(groups) <= 7.5 * scale
    assert (error[inside] <= (scale / 2 + slack).repeat(32, 1)[inside]).all()
    assert (error <= scale + slack).all()
    assert (~inside).any()  # the clipped case occurs in this draw


def test_export_without_llama_cpp_is_one_line_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp now fails
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    out = tmp_path / "model.gguf"
    result = CliRunner().invoke(app, ["export", str(tmp_path / "model"), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "pip install" in result.output and "llama-cpp-python" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()
    with pytest.raises(QuailError, match="pip install"):
        from quail.quant import quantize_tensor

        quantize_tensor(torch.ones(4, 32), parse_spec("gguf-q8_0"))


def test_export_refuses_bad_input_before_any_work(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(tmp_path), "--out", str(tmp_path / "m.gguf")])
    assert result.exit_code == 2 and "no config.json" in result.output
    result = runner.invoke(
        app, ["export", str(tmp_path), "--out", str(tmp_path / "m.gguf"), "--type", "Q3_K_S"]
    )
    assert result.exit_code == 2 and "unknown GGUF type" in result.output
    result = runner.invoke(
        app, ["export", str(tmp_path), "--out", str(tmp_path / "m"), "--format", "onnx"]
    )
    assert result.exit_code == 2 and "unknown --format" in result.output
