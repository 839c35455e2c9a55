"""Real backends: spec grammar, missing extras, agreement of their grids with our reference,
and quantized models that run forward on CPU. Tiny float32 models built from config."""

import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaForCausalLM
from typer.testing import CliRunner

import tiny
from quail.cli import app
from quail.errors import QuailError
from quail.quant import load_quantized, parse_spec, quantize_model, quantize_tensor
from quail.quant.backends import BACKENDS, backend_of
from quail.quant.model import DequantizedLinear

# Backends whose rounding is plain round-to-nearest on the grid they store, so every element is
# within half its step of the weight (HQQ moves its zero point after rounding, double
# quantization rounds the scales after the codes, LLM.int8 rounds the weight to fp16 first).
NEAREST = ["bnb-nf4", "bnb-fp4", "quanto-int4-g64", "quanto-int2-g64", "quanto-int8", "ct-int4-g64"]
SPECS = [*NEAREST, "bnb-nf4-dq", "bnb-fp4-dq", "bnb-int8", "hqq-int4-g64", "hqq-int3-g32"]


def needs(spec_text: str):
    """Skip when the spec's library is not installed (CI installs them all)."""
    return pytest.importorskip(backend_of(parse_spec(spec_text)).module)


def weights(dtype=torch.float32):
    torch.manual_seed(0)
    return (torch.randn(48, 256) * torch.rand(48, 1)).to(dtype)  # rows of different scales


@pytest.mark.parametrize(
    "text, name",
    [
        ("bnb-nf4", "bnb-nf4"),
        ("BNB-FP4-DQ", "bnb-fp4-dq"),
        ("bnb-int8", "bnb-int8"),
        ("quanto-int4", "quanto-int4-g128"),
        ("quanto-int8", "quanto-int8"),
        ("hqq-int4", "hqq-int4-g64"),
        ("hqq-int3-g32", "hqq-int3-g32"),
        ("ct-int4", "ct-int4-g128"),
        ("gptq-int4", "gptq-int4-g128"),
        ("GPTQ-int8-g128", "gptq-int8-g128"),
        ("gptq-int4-g64", "gptq-int4-g64"),
        ("awq-int4-g128", "awq-int4-g128"),
    ],
)
def test_backend_spec_grammar(text, name):
    spec = parse_spec(text)
    assert spec.name == name
    assert parse_spec(spec.name) == spec
    assert spec.backend is not None and not spec.is_fp


@pytest.mark.parametrize(
    "text, problem",
    [
        ("quanto-int3", "quanto supports 2, 4, 8 bits"),
        ("hqq-int5", "hqq supports"),
        ("quanto-int8-g64", "per output channel"),
        ("hqq-int4-g1", "too small"),
        ("bnb-nf3", "unknown quantization spec"),
        ("hqq-nf4", "unknown quantization spec"),
        ("gptq-int3", "gptq supports 2, 4, 8 bits"),
        ("awq-int8", "awq supports 4 bits"),
        ("gptq-nf4", "unknown quantization spec"),
    ],
)
def test_bad_backend_specs_give_one_line_errors(text, problem):
    with pytest.raises(QuailError, match=problem) as error:
        parse_spec(text)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("prefix", sorted(BACKENDS))
def test_missing_library_names_the_extra(prefix, monkeypatch):
    examples = {"bnb": "bnb-nf4", "quanto": "quanto-int4", "hqq": "hqq-int4", "ct": "ct-int4"}
    spec = parse_spec(examples.get(prefix, f"{prefix}-int4"))
    library = BACKENDS[prefix].module
    for name in [library, *(m for m in list(sys.modules) if m.startswith(library + "."))]:
        monkeypatch.setitem(sys.modules, name, None)  # import now fails, submodules too
    monkeypatch.delitem(sys.modules, BACKENDS[prefix].adapter, raising=False)
    extra = BACKENDS[prefix].extra  # gptq and awq both come with quail-unlearn[gptq]
    with pytest.raises(QuailError, match=rf'pip install "quail-unlearn\[{extra}\]"') as error:
        quantize_tensor(torch.randn(4, 128), spec)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("text", SPECS)
def test_codes_rebuild_the_backends_values_and_stay_on_its_grid(text):
    needs(text)
    spec = parse_spec(text)
    weight = weights()
    quantized = quantize_tensor(weight, spec)
    assert quantized.codes.shape == quantized.step().shape == weight.shape
    # on the grid: rounding the dequantized values again with the same scales changes nothing
    again = quantize_tensor(quantized.dequantize(), spec, like=quantized)
    assert torch.equal(again.buckets, quantized.buckets)
    if text in NEAREST or spec.backend == "hqq":
        # fixed grid: the backend's codes are nearest on the scales it stores (ties aside)
        fixed = quantize_tensor(weight, spec, like=quantized)
        assert (fixed.codes != quantized.codes).float().mean() < 1e-3
    if text in NEAREST:
        error = (quantized.dequantize() - weight).abs()
        assert (error <= quantized.step() / 2 * (1 + 1e-5) + 1e-7).all()


@pytest.mark.parametrize("kind", ["nf4", "fp4"])
@pytest.mark.parametrize("double", [False, True])
def test_bitsandbytes_nibbles_equal_our_codebook_codes(kind, double):
    functional = pytest.importorskip("bitsandbytes.functional")
    weight = weights()[:33, :70]  # ends in a partial block
    spec = parse_spec(f"bnb-{kind}" + ("-dq" if double else ""))
    ours = quantize_tensor(weight, parse_spec(kind))
    theirs = quantize_tensor(weight, spec)
    assert torch.equal(theirs.codes, ours.codes)  # codes are rounded on the exact absmax
    packed, state = functional.quantize_4bit(
        weight, blocksize=64, quant_type=kind, compress_statistics=double
    )
    expected = functional.dequantize_4bit(packed, state)
    torch.testing.assert_close(theirs.dequantize(), expected, rtol=0, atol=1e-6)
    if not double:
        torch.testing.assert_close(theirs.scale, ours.scale, rtol=0, atol=0)


def test_llm_int8_is_our_per_channel_int8_of_the_fp16_weight():
    needs("bnb-int8")
    weight = weights()
    theirs = quantize_tensor(weight, parse_spec("bnb-int8"))
    ours = quantize_tensor(weight.to(torch.float16), parse_spec("int8"))
    torch.testing.assert_close(theirs.scale, ours.scale, rtol=1e-6, atol=0)
    differ = theirs.codes.long() - ours.codes.long()
    assert differ.abs().max() <= 1 and (differ != 0).float().mean() < 1e-3  # ties only


@pytest.mark.parametrize(
    "text, ours", [("quanto-int4-g64", "int4-g64-asym"), ("quanto-int8", "int8")]
)
def test_quanto_equals_our_rtn_in_float32(text, ours):
    needs(text)
    weight = weights()
    theirs, mine = (
        quantize_tensor(weight, parse_spec(text)),
        quantize_tensor(weight, parse_spec(ours)),
    )
    assert torch.equal(theirs.codes.long(), mine.codes.long())
    torch.testing.assert_close(theirs.dequantize(), mine.dequantize(), rtol=0, atol=1e-6)


def test_quanto_in_bfloat16_rounds_its_scales_to_bfloat16():
    needs("quanto-int4")
    weight = weights(torch.bfloat16)
    theirs = quantize_tensor(weight, parse_spec("quanto-int4-g64"))
    mine = quantize_tensor(weight, parse_spec("int4-g64-asym"))
    differ = theirs.codes.long() - mine.codes.long()
    assert differ.abs().max() <= 1 and (differ != 0).float().mean() < 0.05
    assert ((theirs.dequantize() - mine.dequantize()).abs() <= 1.1 * mine.step()).all()


def test_compressed_tensors_step_is_absmax_over_7_5():
    needs("ct-int4")
    weight = weights()
    theirs = quantize_tensor(weight, parse_spec("ct-int4-g64"))
    mine = quantize_tensor(weight, parse_spec("int4-g64"))
    torch.testing.assert_close(theirs.scale, mine.scale * 7 / 7.5, rtol=1e-6, atol=0)
    assert theirs.codes.min() == -8 and theirs.codes.max() == 7


def test_compressed_tensors_layer_is_unpacked_once_and_computes_the_frozen_layer():
    needs("ct-int4")
    from compressed_tensors.quantization import QuantizationStatus
    from compressed_tensors.quantization.lifecycle.forward import fake_quantize

    from quail.quant.backends import ct

    spec = parse_spec("ct-int4-g64")
    linear = torch.nn.Linear(256, 48, bias=False)
    linear.weight.data = weights()
    scale, zero_point = ct.qparams(linear.weight, spec)
    expected = fake_quantize(linear.weight.detach(), scale, zero_point, ct.arguments(spec))
    layer = ct.convert(linear, spec)
    assert layer.quantization_status == QuantizationStatus.DECOMPRESSED  # no per-call rounding
    assert torch.equal(layer.weight, expected)  # what the frozen layer computes on every call


def test_hqq_starts_from_our_grid_and_moves_only_its_zero():
    needs("hqq-int4")
    weight = weights()
    theirs = quantize_tensor(weight, parse_spec("hqq-int4-g64"))
    mine = quantize_tensor(weight, parse_spec("int4-g64-asym"))
    torch.testing.assert_close(theirs.scale, mine.scale, rtol=1e-6, atol=0)
    assert ((theirs.dequantize() - mine.dequantize()).abs() < mine.step()).all()
    squared = lambda q: (q.dequantize() - weight).pow(2).mean()  # noqa: E731
    assert squared(theirs) <= squared(mine)  # the optimised zero fits at least as well


def tiny_llama() -> LlamaForCausalLM:
    return tiny.tiny_llama(num_hidden_layers=1, max_position_embeddings=32)


# How close the backend's own layers come to our fake-quantized copy on the same grid: exact
# where the backend dequantizes in float32; bitsandbytes' CPU 4-bit kernel and LLM.int8
# (which also quantizes activations to int8) differ by more.
FORWARD = {
    "bnb-nf4": 0.02,
    "bnb-fp4-dq": 0.02,
    "bnb-int8": 0.05,
    "quanto-int4-g32": 1e-5,
    "quanto-int8": 1e-5,
    "hqq-int4-g32": 1e-5,
    "ct-int4-g32": 1e-5,
}


@pytest.mark.parametrize("text", sorted(FORWARD))
def test_backend_model_runs_forward_on_cpu(text):
    needs(text)
    spec = parse_spec(text)
    model = tiny_llama()
    before = {name: param.clone() for name, param in model.named_parameters()}
    native = load_quantized(model, spec)
    fake = quantize_model(model, spec)
    layer = native.model.layers[0].mlp.up_proj
    assert type(layer) is not torch.nn.Linear or hasattr(layer, "weight_scale")
    tokens = torch.randint(0, 128, (2, 12))
    with torch.no_grad():
        logits, expected = native(tokens).logits, fake(tokens).logits
    assert torch.isfinite(logits).all()
    assert (logits - expected).abs().max() <= FORWARD[text]
    for name, param in model.named_parameters():  # the source model is untouched
        assert torch.equal(param, before[name]), name


def test_a_backend_spec_with_an_emb_part_quantizes_the_embeddings_too():
    needs("bnb-nf4")
    model = tiny_llama()
    native = load_quantized(model, parse_spec("bnb-nf4+emb-int8"), include_lm_head=True)
    plain = load_quantized(model, parse_spec("bnb-nf4"))
    assert type(native.model.layers[0].mlp.up_proj) is type(plain.model.layers[0].mlp.up_proj)
    int8 = parse_spec("int8")
    for name in ("model.embed_tokens", "lm_head"):  # lm_head stays a Linear, on our int8 grid
        weight = model.get_submodule(name).weight
        expected = quantize_tensor(weight, int8).dequantize()
        assert torch.equal(native.get_submodule(name).weight, expected), name


@pytest.mark.parametrize("text", ["hqq-int4-g32", "quanto-int4-g32", "quanto-int8", "bnb-nf4"])
def test_dequantize_once_gives_the_backends_outputs_bit_for_bit(text):
    """Evaluation's shortcut: layers that dequantize their weight on every call get it
    dequantized once; the logits must not move at all. Others (bnb) keep their own layer."""
    needs(text)
    # 576 columns, as SmolLM2's: at that width a bias fused into the matmul (nn.Linear's addmm)
    # rounds differently from the backends' matmul-then-add
    model = tiny.tiny_llama(num_hidden_layers=1, hidden_size=576, intermediate_size=256)
    with torch.no_grad():  # a bias, which the backends add after their matmul
        model.model.layers[0].mlp.up_proj.bias = torch.nn.Parameter(torch.randn(256))
    native = load_quantized(model, parse_spec(text))
    once = load_quantized(model, parse_spec(text), dequantize_once=True)
    replaced = type(once.model.layers[0].mlp.up_proj) is DequantizedLinear
    assert replaced == (not text.startswith("bnb"))
    assert type(native.model.layers[0].mlp.up_proj) is not DequantizedLinear
    for tokens in (torch.randint(0, 128, (3, 12)), torch.randint(0, 128, (16, 1))):
        with torch.no_grad():
            assert torch.equal(once(tokens).logits, native(tokens).logits)


def test_load_quantized_reads_a_folder_and_checks_groups(tmp_path):
    needs("hqq-int4")
    tiny_llama().save_pretrained(tmp_path)
    native = load_quantized(tmp_path, parse_spec("hqq-int4-g32"))
    assert type(native.model.layers[0].self_attn.q_proj).__name__ == "HQQLinear"
    assert type(native.lm_head) is torch.nn.Linear  # lm_head stays full precision by default
    with pytest.raises(QuailError, match="does not divide the 64 input columns"):
        load_quantized(tmp_path, parse_spec("hqq-int4-g128"))


def test_cli_quantize_writes_the_backends_grid(tmp_path):
    needs("quanto-int4")
    model = tiny_llama()
    model.save_pretrained(tmp_path / "model")
    out = tmp_path / "out"
    args = ["quantize", str(tmp_path / "model"), "--quant", "quanto-int4-g32", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    written = AutoModelForCausalLM.from_pretrained(out).model.layers[0].mlp.down_proj.weight
    expected = quantize_tensor(
        model.model.layers[0].mlp.down_proj.weight, parse_spec("quanto-int4-g32")
    )
    torch.testing.assert_close(written, expected.dequantize(), rtol=0, atol=0)


@pytest.mark.parametrize("text", ["bnb-nf4-dq", "hqq-int4-g32"])
def test_analysis_measures_overlap_on_the_backends_grid(text):
    needs(text)
    from quail.analysis import analyze

    model = tiny_llama()
    assert analyze(model, model, text).summary["bucket_overlap"] == 1.0
    moved = tiny_llama()
    with torch.no_grad():
        for param in moved.parameters():
            param.add_(torch.randn_like(param) * 1e-2)
    assert analyze(model, moved, text).summary["bucket_overlap"] < 0.9
