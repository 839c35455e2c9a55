"""Reference quantizers: spec grammar, rounding bounds, fixed points, and agreement with a
naive implementation and with bitsandbytes."""

import pytest
import torch

from quail.errors import QuailError
from quail.quant import parse_spec, quantize_tensor

SPECS = [
    "int8",
    "int4",
    "rtn-int4-g128",
    "rtn-int3-g64-asym",
    "rtn-int2-tensor",
    "rtn-int5-channel-asym",
    "rtn-int8-g32-asym",
    "nf4",
    "fp4",
    "nf4-g128",
]


@pytest.mark.parametrize(
    "text, name",
    [
        ("fp", "fp"),
        ("int8", "rtn-int8-channel-sym"),
        ("int4", "rtn-int4-g64-sym"),
        ("INT4", "rtn-int4-g64-sym"),
        ("rtn-int4-g128", "rtn-int4-g128-sym"),
        ("rtn-int3-g64-asym", "rtn-int3-g64-asym"),
        ("int4-asym-g32", "rtn-int4-g32-asym"),
        ("rtn-int6-tensor", "rtn-int6-tensor-sym"),
        ("nf4", "nf4-g64"),
        ("fp4-g128", "fp4-g128"),
        ("rtn-int4-g32-asym+emb-rtn-int8-g32", "rtn-int4-g32-asym+emb-rtn-int8-g32-sym"),
        ("bnb-nf4+emb-int8", "bnb-nf4+emb-rtn-int8-channel-sym"),
    ],
)
def test_spec_grammar(text, name):
    spec = parse_spec(text)
    assert spec.name == name
    assert parse_spec(spec.name) == spec
    assert parse_spec(text) is spec  # parsed once: the same frozen spec every time


@pytest.mark.parametrize(
    "text, problem",
    [
        ("int9", "bits out of range"),
        ("rtn-int1", "bits out of range"),
        ("int4-g1", "too small"),
        ("int4-g64-g32", "unknown part"),
        ("int4-foo", "unknown part"),
        ("awq", "unknown quantization spec"),
        ("nf5", "unknown quantization spec"),
        ("int4+int8", "'\\+' only adds the embeddings' spec"),
        ("int4+emb-int8+emb-int4", "'\\+' only adds"),
        ("fp+emb-int8", "quantizes the embeddings only"),
        ("int4+emb-bnb-int8", "must be a reference spec"),
        ("int4+emb-fp", "must be a reference spec"),
        ("int4+emb-int9", "bits out of range"),
        ("gptq-int4+emb-int8", "gptq specs do not take an '\\+emb-' part"),
    ],
)
def test_bad_specs_give_one_line_errors(text, problem):
    with pytest.raises(QuailError, match=problem) as error:
        parse_spec(text)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("text", SPECS)
def test_round_trip_error_is_at_most_half_a_step(text):
    torch.manual_seed(0)
    weight = torch.randn(48, 256) * torch.rand(48, 1)  # rows of different scales
    quantized = quantize_tensor(weight, parse_spec(text))
    error = (quantized.dequantize() - weight).abs()
    assert quantized.step().shape == weight.shape
    assert (error <= quantized.step() / 2 * (1 + 1e-5) + 1e-7).all()


@pytest.mark.parametrize("text", SPECS)
def test_values_on_the_grid_are_fixed_points(text):
    spec = parse_spec(text)
    torch.manual_seed(1)
    on_grid = quantize_tensor(torch.randn(16, 128), spec)
    values = on_grid.dequantize()
    again = quantize_tensor(values, spec)
    torch.testing.assert_close(again.dequantize(), values, rtol=0, atol=1e-6)
    assert torch.equal(again.buckets, on_grid.buckets)


def test_fixed_scales_reproduce_own_quantization_and_track_crossings():
    spec = parse_spec("rtn-int4-g32-asym")
    torch.manual_seed(2)
    w0 = torch.randn(8, 64)
    q0 = quantize_tensor(w0, spec)
    assert torch.equal(quantize_tensor(w0, spec, like=q0).codes, q0.codes)
    shifted = quantize_tensor(w0 + q0.step(), spec, like=q0)  # one step up, same grid
    moved = shifted.codes.long() - q0.codes.long()
    assert ((moved == 1) | (q0.codes == 15)).all()


def test_group_size_must_divide_columns():
    with pytest.raises(QuailError, match="does not divide the 70 input columns"):
        quantize_tensor(torch.randn(4, 70), parse_spec("int4"))


def test_fp_spec_cannot_quantize_a_tensor():
    with pytest.raises(QuailError, match="no quantization"):
        quantize_tensor(torch.randn(4, 64), parse_spec("fp"))


def naive_rtn(weight, bits, group, symmetric):
    """Deliberately plain: one group at a time, python scalars, textbook formulas."""
    rows, columns = weight.shape
    codes = torch.zeros(rows, columns, dtype=torch.long)
    values = torch.zeros(rows, columns)
    group = group or columns
    for r in range(rows):
        for start in range(0, columns, group):
            chunk = [float(v) for v in weight[r, start : start + group]]
            if symmetric:
                step = max(abs(v) for v in chunk) / (2 ** (bits - 1) - 1)
                low, high, offset = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1, 0.0
            else:
                step = (max(chunk) - min(chunk)) / (2**bits - 1)
                low, high, offset = 0, 2**bits - 1, min(chunk)
            for i, v in enumerate(chunk):
                code = min(max(round((v - offset) / step), low), high)
                codes[r, start + i] = code
                values[r, start + i] = code * step + offset
    return codes, values


@pytest.mark.parametrize(
    "text, bits, group, symmetric",
    [
        ("int8", 8, None, True),
        ("rtn-int8-g16-asym", 8, 16, False),
        ("int4-g16", 4, 16, True),
        ("rtn-int4-channel-asym", 4, None, False),
    ],
)
def test_rtn_matches_a_naive_implementation(text, bits, group, symmetric):
    torch.manual_seed(3)
    weight = torch.randn(6, 48)
    quantized = quantize_tensor(weight, parse_spec(text))
    codes, values = naive_rtn(weight, bits, group, symmetric)
    mismatched = (quantized.codes.long() != codes).sum().item()
    assert mismatched == 0
    torch.testing.assert_close(quantized.dequantize(), values, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["nf4", "fp4"])
@pytest.mark.parametrize("shape", [(64, 256), (33, 70)])  # the second ends in a partial block
def test_codebook_codes_equal_bitsandbytes(kind, shape):
    functional = pytest.importorskip("bitsandbytes.functional")
    torch.manual_seed(4)
    weight = torch.randn(*shape)
    packed, state = functional.quantize_4bit(weight, blocksize=64, quant_type=kind)
    nibbles = torch.stack([packed.flatten() >> 4, packed.flatten() & 15], dim=1).flatten()
    ours = quantize_tensor(weight, parse_spec(kind))
    assert torch.equal(ours.codes.flatten(), nibbles[: weight.numel()])
    expected = functional.dequantize_4bit(packed, state)
    torch.testing.assert_close(ours.dequantize(), expected, rtol=0, atol=1e-6)
