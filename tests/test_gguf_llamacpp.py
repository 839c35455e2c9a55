"""GGUF checked where it runs: files written by llama.cpp's own converter and quantizer, codes
compared with quail's reference grids, logits and metrics computed inside llama.cpp.

`make test` (and so CI) installs the llamacpp extra and fetches the converter first. Skipped
without llama-cpp-python, without sentencepiece (the converter reads Llama tokenizers with it)
and without llama.cpp's converter on this machine (`$QUAIL_LLAMA_CPP`, or the copy `quail
export` fetches into the cache): nothing is downloaded here.
"""

import copy
import io
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tiny import tiny_llama

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
spm = pytest.importorskip("sentencepiece", reason="sentencepiece is not installed")
gguf = pytest.importorskip("gguf", reason="gguf is not installed")

from quail.gguf import converter  # noqa: E402

if not converter.local_script().is_file():
    pytest.skip(
        "llama.cpp's converter is not on this machine: set QUAIL_LLAMA_CPP to a llama.cpp "
        "source folder, or run quail export once (it fetches the converter)",
        allow_module_level=True,
    )

from gguf import GGMLQuantizationType as T  # noqa: E402
from transformers import LlamaTokenizer  # noqa: E402

from quail.analysis import analyze  # noqa: E402
from quail.cli import app  # noqa: E402
from quail.data.examples import Example  # noqa: E402
from quail.evaluation import EvalData, evaluate  # noqa: E402
from quail.gguf import GGUF_TYPES, converted, export_gguf  # noqa: E402
from quail.gguf.blocks import unpack  # noqa: E402
from quail.gguf.ggml import dequantize_rows, quantize_rows  # noqa: E402
from quail.gguf.llamacpp import quantize_file  # noqa: E402
from quail.gguf.read import analyze_files, file_codes  # noqa: E402
from quail.gguf.runtime import GgufModel  # noqa: E402
from quail.quant import parse_spec, quantize_tensor  # noqa: E402

WORDS = "ada lives in paris . bo works as a pilot . cy lives in rome . di works as a baker ."
PROBES = [Example("ada lives in", " paris"), Example("bo works as a", " pilot")]
PASSAGES = ["cy lives in rome . di works as a baker .", "ada works as a pilot in paris ."]


def _tokenizer_model() -> bytes:
    """A tiny sentencepiece BPE model trained here, in memory (no download)."""
    words = WORDS.split()
    sentences = [" ".join(words[i : i + 6]) for i in range(0, len(words), 2)] * 10
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=out, vocab_size=48, model_type="bpe",
        character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2,
        hard_vocab_limit=False,
    )  # fmt: skip
    return out.getvalue()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny Llama with a sentencepiece tokenizer, saved as a Hugging Face folder."""
    path = tmp_path_factory.mktemp("tiny-llama")
    (path / "tokenizer.model").write_bytes(_tokenizer_model())
    tokenizer = LlamaTokenizer.from_pretrained(path)
    model = tiny_llama(0, vocab_size=len(tokenizer), max_position_embeddings=64)
    with torch.no_grad():  # norms not all ones, so a mix-up of them would show
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path, model, tokenizer


@pytest.fixture(scope="module")
def f32_file(folder, tmp_path_factory):
    return export_gguf(folder[0], tmp_path_factory.mktemp("gguf") / "f32.gguf", "F32", print)


def _tensor(path, name):
    reader = gguf.GGUFReader(path)
    return next(t for t in reader.tensors if t.name == name), reader


def test_f32_file_logits_match_transformers(folder, f32_file):
    """llama.cpp's forward on the F32 file against transformers' on the same weights."""
    _, model, tokenizer = folder
    ids = tokenizer(WORDS)["input_ids"]
    llama = GgufModel(f32_file)
    ours = llama.logits(ids)
    with torch.no_grad():
        theirs = model(torch.tensor([ids])).logits[0].numpy()
    llama.close()
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() < 1e-3 * max(1.0, np.abs(theirs).max())
    assert (ours.argmax(-1) == theirs.argmax(-1)).all()


@pytest.mark.parametrize("name", list(GGUF_TYPES))
def test_every_type_is_written_by_llama_quantize(f32_file, tmp_path, name):
    kind = GGUF_TYPES[name]
    out = tmp_path / f"{name}.gguf"
    seen = []
    if name == "F32":
        out = f32_file
    else:
        quantize_file(f32_file, out, kind.ftype, lambda *args: seen.append(args))
        assert seen and seen[-1][1] == seen[-1][2]  # progress reached the last tensor
    reader = gguf.GGUFReader(out)
    assert int(reader.fields["general.file_type"].parts[-1][0]) == kind.ftype
    types = {t.tensor_type for t in reader.tensors if len(t.shape) == 2}
    if name in ("F32", "F16", "Q8_0", "Q4_1", "Q4_0"):  # rows of 64 hold these blocks
        assert kind.tensor_type in types


# (file type, quail's reference spec whose codes it should reproduce)
AGREEMENT = {"Q8_0": "rtn-int8-g32", "Q4_1": "rtn-int4-g32-asym"}


@pytest.mark.parametrize("name", ["Q8_0", "Q4_1", "Q4_0"])
def test_file_codes_against_quail(folder, f32_file, tmp_path, name):
    """Codes read from llama.cpp's file (ffn_up: not permuted by the converter) are the
    per-tensor gguf spec's codes bit for bit, and quail's reference grid's up to ties and the
    float16 storage of scales."""
    _, model, _ = folder
    kind = GGUF_TYPES[name]
    out = tmp_path / "q.gguf"
    quantize_file(f32_file, out, kind.ftype)
    tensor, _ = _tensor(out, "blk.0.ffn_up.weight")
    assert tensor.tensor_type == kind.tensor_type
    block_bytes = gguf.GGML_QUANT_SIZES[T(kind.tensor_type)][1]
    codes, scale, zero = unpack(np.asarray(tensor.data).reshape(-1, block_bytes), name)
    weight = model.model.layers[0].mlp.up_proj.weight.detach()
    per_tensor = quantize_tensor(weight, parse_spec(f"gguf-{name.lower()}"))
    assert torch.equal(per_tensor.codes.reshape(-1, 32), torch.from_numpy(codes).to(torch.int64))
    assert torch.equal(per_tensor.scale, torch.from_numpy(scale))
    if name == "Q4_0":  # a grid of absmax / 8, not quail's absmax / 7: no reference twin
        absmax = weight.reshape(-1, 32).abs().amax(1, keepdim=True)
        assert torch.allclose(per_tensor.scale, absmax / 8, rtol=2**-10)
        return
    reference = quantize_tensor(weight, parse_spec(AGREEMENT[name]))
    same = (reference.codes.reshape(-1, 32).numpy() == codes).mean()
    assert same >= 0.999, same
    assert torch.allclose(per_tensor.scale, reference.scale, rtol=2**-10)
    values = per_tensor.dequantize()
    bound = 0.5 * reference.step() + 2**-10 * weight.abs().amax()
    assert ((values - weight).abs() <= bound + 2**-10 * reference.step()).all()


@pytest.mark.parametrize("name", ["Q4_K", "Q5_K", "Q6_K", "Q8_0", "Q5_0", "Q5_1", "Q4_0", "Q4_1"])
def test_quail_reads_blocks_as_llama_cpp_does(name):
    """K-quant super-blocks (scales and mins included) unpacked by quail give llama.cpp's own
    dequantized values (ggml's to_float) and the gguf package's, bit for bit."""
    kind = T[name]
    weights = np.random.default_rng(1).standard_normal((4, 512)).astype(np.float32)
    weights[:, 7] *= 8
    blocks = quantize_rows(weights, kind.value)
    block_bytes = gguf.GGML_QUANT_SIZES[kind][1]
    codes, scale, zero = unpack(blocks.reshape(-1, block_bytes), name)
    ours = (codes.astype(np.float32) * scale + (0 if zero is None else zero)).reshape(4, 512)
    llama = dequantize_rows(blocks, kind.value, 512)
    assert np.array_equal(ours, llama)
    assert np.array_equal(gguf.quants.dequantize(blocks, kind), llama)
    assert np.abs(llama - weights).max() < np.abs(weights).max() / 4  # a quantization, not noise


def test_evaluate_runs_the_probes_inside_llama_cpp(folder):
    """gguf-f32 answers as full precision does (same prompts, scorer, greedy tokens); a
    quantized file moves perplexity a little, not a lot."""
    _, model, tokenizer = folder
    data = EvalData(qa={"forget": PROBES}, passages={"forget": PASSAGES, "retain": PASSAGES})
    results = evaluate(model, data, ["fp", "gguf-f32", "gguf-q4_0"], tokenizer)
    fp, f32, q4 = results["fp"], results["gguf-f32"], results["gguf-q4_0"]
    assert set(f32) == set(q4) == set(fp) | {"kld_retain", "top1_retain", "ppl_ratio_retain"}
    assert f32["kld_retain"] < 1e-6 and f32["top1_retain"] == 1.0  # llama.cpp's F32 is fp
    assert f32["ppl_ratio_retain"] == pytest.approx(1, abs=1e-4)
    assert q4["kld_retain"] > 100 * f32["kld_retain"]
    assert q4["ppl_ratio_retain"] == pytest.approx(q4["ppl_retain"] / fp["ppl_retain"], rel=1e-4)
    for metric in ("knowmem_forget", "em_forget", "verbmem_forget"):
        assert f32[metric] == fp[metric]
    assert f32["ppl_retain"] == pytest.approx(fp["ppl_retain"], rel=1e-4)
    assert q4["ppl_retain"] != f32["ppl_retain"]
    assert q4["ppl_retain"] == pytest.approx(fp["ppl_retain"], rel=0.2)


def test_gguf_specs_of_one_model_share_one_conversion(folder, monkeypatch):
    """The converter runs once for every type of one model, across calls; a model changed in
    place is converted again; a type quantized from the kept file scores as from a fresh one."""
    _, model, tokenizer = folder
    converted.forget()
    calls = []
    real = converter.convert
    monkeypatch.setattr(converter, "convert", lambda *args: calls.append(args) or real(*args))
    data = EvalData(passages={"retain": PASSAGES})
    first = evaluate(model, data, ["gguf-f32", "gguf-q8_0"], tokenizer)
    evaluate(model, data, ["gguf-q4_0"], tokenizer)
    assert len(calls) == 1
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.model.layers[0].mlp.up_proj.weight[0, 0] += 1
    moved = evaluate(changed, data, ["gguf-q8_0"], tokenizer)
    assert len(calls) == 2 and moved["gguf-q8_0"] != first["gguf-q8_0"]
    converted.forget()
    fresh = evaluate(model, data, ["gguf-q8_0"], tokenizer)
    assert len(calls) == 3 and fresh["gguf-q8_0"] == first["gguf-q8_0"]


def test_cli_export_writes_the_file_whole(folder, tmp_path):
    out = tmp_path / "model.gguf"
    result = CliRunner().invoke(
        app, ["export", str(folder[0]), "--type", "Q4_K_M", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert int(gguf.GGUFReader(out).fields["general.file_type"].parts[-1][0]) == 15
    assert [p.name for p in tmp_path.iterdir()] == ["model.gguf"]  # no temporary left over


def test_cli_export_of_an_unknown_architecture_is_one_line(folder, tmp_path):
    source = tmp_path / "model"
    source.mkdir()
    for item in folder[0].iterdir():
        (source / item.name).write_bytes(item.read_bytes())
    config = (source / "config.json").read_text()
    (source / "config.json").write_text(config.replace("LlamaForCausalLM", "NoSuchForCausalLM"))
    out = tmp_path / "model.gguf"
    result = CliRunner().invoke(app, ["export", str(source), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "not supported" in result.output and "Traceback" not in result.output
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize(
    ("name", "stored"), [("Q4_K_M", "Q5_0"), ("Q5_K_M", "Q5_1"), ("Q6_K", "Q8_0")]
)
def test_k_quant_specs_per_tensor_follow_llama_cpp_fallback(
    folder, f32_file, tmp_path, name, stored
):
    """Rows of 64 hold no 256-element super-block: llama.cpp stores such tensors in a 32-block
    type, and the per-tensor spec gives that type's codes, equal to the file's."""
    _, model, _ = folder
    out = tmp_path / "k.gguf"
    quantize_file(f32_file, out, GGUF_TYPES[name].ftype)
    from_file = file_codes(out)["blk.0.ffn_up.weight"]
    assert from_file.spec.backend == f"gguf-{stored.lower()}"
    weight = model.model.layers[0].mlp.up_proj.weight.detach()
    per_tensor = quantize_tensor(weight, parse_spec(f"gguf-{name.lower()}"))
    assert torch.equal(per_tensor.codes.to(torch.int64), from_file.codes.to(torch.int64))
    assert torch.equal(per_tensor.dequantize(), from_file.dequantize())


def _changed_copy(folder, out, **sizes):
    """The folder's model (resized by `sizes`, weights redrawn) and a slightly changed copy
    of it, saved with the folder's tokenizer: an original and its "unlearned" model."""
    path, model, tokenizer = folder
    if sizes:
        model = tiny_llama(1, vocab_size=len(tokenizer), max_position_embeddings=64, **sizes)
    changed = tiny_llama(0, vocab_size=len(tokenizer), max_position_embeddings=64, **sizes)
    changed.load_state_dict(model.state_dict())
    with torch.no_grad():
        for p in changed.parameters():
            p.add_(torch.randn_like(p) * p.abs().mean() * 0.05)
    for name, m in (("original", model), ("changed", changed)):
        m.save_pretrained(out / name)
        tokenizer.save_pretrained(out / name)
    return out / "original", out / "changed"


def test_file_analysis_agrees_with_per_tensor_analysis(folder, tmp_path):
    """Two models exported by llama.cpp, analysed on the codes their files hold, give the
    bucket overlaps and update survival quail's analysis computes per tensor on the folders."""
    path, other = _changed_copy(folder, tmp_path)
    files = {}
    for label, source in (("a", path), ("b", other)):
        for kind in ("F32", "Q4_0"):
            files[label, kind] = export_gguf(source, tmp_path / f"{label}-{kind}.gguf", kind, print)
    compared = analyze_files(
        files["a", "Q4_0"], files["b", "Q4_0"], files["a", "F32"], files["b", "F32"]
    )
    per_tensor = analyze(path, other, "gguf-q4_0")
    ours = {row["name"]: row for row in per_tensor.layers}
    names = {"ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj", "attn_v": "self_attn.v_proj"}
    checked = 0
    for row in compared.layers:
        block, index, kind = (row["name"].split(".") + ["", ""])[:3]
        if block == "blk" and kind in names:
            mine = ours[f"model.layers.{index}.{names[kind]}"]
            for figure in ("bucket_overlap", "fixed_scale_overlap", "half_step_fraction"):
                assert row[figure] == pytest.approx(mine[figure], abs=1e-12)
            assert row["update_survival"] == pytest.approx(mine["update_survival"], rel=1e-4)
            checked += 1
    assert checked == 6
    assert 0 < compared.summary["bucket_overlap"] < 1


def test_cli_analyze_reads_k_quant_files_against_the_folders(folder, tmp_path):
    """Rows of 256 hold K-quant super-blocks: a Q4_K_M file's ffn_down is Q4_K or Q6_K. The
    CLI reads the files' codes; given the model folders it converts them to F32 for the
    weights, and survival per tensor is the gguf package's dequantized values' by hand."""
    path, other = _changed_copy(folder, tmp_path, intermediate_size=256)
    a, b = (export_gguf(s, tmp_path / f"{s.name}.gguf", "Q4_K_M", print) for s in (path, other))
    out = tmp_path / "analysis.json"
    args = ["analyze", str(a), str(b), "--original-fp", str(path), "--unlearned-fp", str(other)]
    result = CliRunner().invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    assert written["spec"] == "gguf-q4_k_m"
    types = {row["name"]: row["spec"] for row in written["layers"]}
    assert types["blk.0.ffn_down.weight"] in ("gguf-q4_k", "gguf-q6_k")
    assert "gguf-q4_k" in types.values()
    f32 = {s: export_gguf(s, tmp_path / f"{s.name}-f32.gguf", "F32", print) for s in (path, other)}
    for row in written["layers"]:
        if row["spec"] not in ("gguf-q4_k", "gguf-q6_k"):
            continue
        (q0, _), (q1, _) = (_tensor(f, row["name"]) for f in (a, b))
        (w0, _), (w1, _) = (_tensor(f32[s], row["name"]) for s in (path, other))
        kept = gguf.quants.dequantize(q1.data, q1.tensor_type) - gguf.quants.dequantize(
            q0.data, q0.tensor_type
        )
        change = np.asarray(w1.data, np.float64) - np.asarray(w0.data, np.float64)
        expected = float((kept * change).sum() / (change * change).sum())
        assert row["update_survival"] == pytest.approx(expected, rel=1e-4)
        assert 0 < row["bucket_overlap"] < 1
