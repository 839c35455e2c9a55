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


def _write(path, tensors: dict, kind=None, file_type=None):
    """A GGUF file of `tensors` ({name: float32 array}), quantized to `kind` by the gguf
    package's numpy port of llama.cpp's quantizer (None: F32), plus a 1-D norm left in F32."""
    writer = gguf.GGUFWriter(str(path), "llama")
    if file_type is not None:
        writer.add_file_type(file_type)
    for name, weights in tensors.items():
        if kind is None:
            writer.add_tensor(name, weights)
        else:
            writer.add_tensor(name, gguf.quants.quantize(weights, kind), raw_dtype=kind)
    writer.add_tensor("output_norm.weight", np.ones(32, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def pair(tmp_path):
    """Two models' weights (the second a small change of the first) as Q8_0 and F32 files."""
    w0 = {f"blk.{i}.ffn_up.weight": _weights(16, 64, seed=i) for i in range(2)}
    rng = np.random.default_rng(9)
    w1 = {n: w + 0.02 * rng.standard_normal(w.shape).astype(np.float32) for n, w in w0.items()}
    files = {}
    for label, weights in (("a", w0), ("b", w1)):
        files[label] = _write(tmp_path / f"{label}.gguf", weights, T.Q8_0, file_type=7)
        files[label, "fp"] = _write(tmp_path / f"{label}-f32.gguf", weights)
    return files, w0, w1


def test_file_analysis_figures_from_the_files_codes(pair):
    """Overlap of the codes the files hold, and survival against the F32 files' weights, equal
    the gguf package's own dequantized values' by hand."""
    from quail.gguf.read import analyze_files

    files, w0, w1 = pair
    result = analyze_files(files["a"], files["b"], files["a", "fp"], files["b", "fp"])
    assert result.spec == "gguf-q8_0" and result.layer_selection.startswith("every quantized")
    inner = norm = 0.0
    for row in result.layers:
        name = row["name"]
        q0, q1 = (gguf.quants.quantize(w[name], T.Q8_0) for w in (w0, w1))
        same = (q0.reshape(-1, 34)[:, 2:] == q1.reshape(-1, 34)[:, 2:]).mean()
        assert row["bucket_overlap"] == pytest.approx(same, abs=1e-12) and 0 < same < 1
        change = (w1[name] - w0[name]).astype(np.float64)
        kept = gguf.quants.dequantize(q1, T.Q8_0) - gguf.quants.dequantize(q0, T.Q8_0)
        dot, sq = float((kept * change).sum()), float((change * change).sum())
        assert row["update_survival"] == pytest.approx(dot / sq, rel=1e-5)
        assert row["spec"] == "gguf-q8_0" and row["fixed_scale_overlap"] > 0
        inner, norm = inner + dot, norm + sq
    assert [row["name"] for row in result.layers] == list(w0)  # the F32 norm left out
    assert result.summary["update_survival"] == pytest.approx(inner / norm, rel=1e-5)
    codes_only = analyze_files(files["a"], files["b"])
    assert codes_only.summary["bucket_overlap"] == result.summary["bucket_overlap"]
    assert codes_only.summary["update_survival"] is None
    assert codes_only.summary["fixed_scale_overlap"] is None


def test_cli_analyze_of_files_and_its_one_line_errors(pair, tmp_path):
    files, w0, _ = pair
    runner = CliRunner()

    def run(*args):
        return runner.invoke(app, ["analyze", *map(str, args)], env={"COLUMNS": "200"})

    result = run(files["a"], files["b"], "--json", tmp_path / "out.json")
    assert result.exit_code == 0, result.output
    assert "bucket overlap" in result.output and "--original-fp" in result.output
    fp = ("--original-fp", files["a", "fp"], "--unlearned-fp", files["b", "fp"])
    result = run(files["a"], files["b"], *fp)
    assert result.exit_code == 0 and "update survival" in result.output, result.output
    (tmp_path / "notes.txt").write_text("not a model")
    other_type = _write(tmp_path / "c.gguf", w0, T.Q4_0)
    one_tensor = _write(tmp_path / "d.gguf", dict(list(w0.items())[:1]), T.Q8_0)
    for args, message in [
        ((tmp_path / "notes.txt", files["b"]), "is not a GGUF file"),
        ((files["a"], other_type), "is Q8_0 in"),
        ((files["a"], one_tensor), "has no quantized tensor blk.1.ffn_up.weight"),
        ((files["a", "fp"], files["b", "fp"]), "holds no quantized tensors"),
        ((files["a"], tmp_path), "not one of each"),
        ((files["a"], files["b"], "--quant", "int4"), "drop --quant"),
        ((files["a"], files["b"], "--original-fp", files["a", "fp"]), "or neither"),
        ((files["a"], files["b"], "--original-fp", one_tensor, "--unlearned-fp", one_tensor),
         "holds no F32 or F16 tensor blk.0.ffn_up.weight"),
        ((tmp_path, tmp_path), "give --quant SPEC"),
    ]:  # fmt: skip
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_evaluate_checks_llama_cpp_before_loading_anything(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if the extra were not installed
    args = ["evaluate", str(tmp_path / "no-model"), "--data", str(tmp_path / "no-data")]
    result = CliRunner().invoke(app, [*args, "--quant", "fp,gguf-q4_k_m"])
    assert result.exit_code == 2 and "GGUF needs llama-cpp-python" in result.output, result.output
