"""GPTQ and AWQ through gptqmodel on CPU: a tiny Llama quantized once per method (a second or
two each), then checked against the full-precision model and round-to-nearest on the same grid.

gptqmodel's AWQ clip search needs every layer's output width to be a multiple of 64, so the
model has 4 key/value heads of 16 (k/v 64 wide) instead of test_backends' 2."""

import copy
import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import LlamaForCausalLM

import tiny
from quail.errors import QuailError
from quail.quant import load_quantized, parse_spec, quantize_model, quantize_tensor

pytest.importorskip("gptqmodel")
from quail.quant.backends import gptq  # noqa: E402

# First-layer projections, errors measured on the fp model's inputs: exactly GPTQ's for q/k/v
# (they read the embeddings); GPTQ saw the quantized attention's output for gate/up.
LAYER0 = [
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
]


def tiny_llama() -> LlamaForCausalLM:
    return tiny.tiny_llama(num_key_value_heads=4)  # AWQ needs output widths that are x64


def samples() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randint(0, 128, (32,), generator=generator) for _ in range(16)]


@pytest.fixture(scope="module", params=["gptq-int4-g32", "awq-int4-g32"])
def quantized(request, tmp_path_factory):
    """(spec, fp model, checkpoint folder, gptqmodel's model loaded from it)."""
    spec, model = parse_spec(request.param), tiny_llama()
    folder = tmp_path_factory.mktemp(spec.backend) / "quantized"
    gptq.quantize_to_folder(model, spec, samples(), folder)
    return spec, model, folder, gptq.load_folder(folder, spec, gptq._dtype(model, spec))


def logits(model, dtype=torch.float32):
    tokens = torch.stack(samples()[:4])
    with torch.no_grad():
        return model(tokens).logits.to(dtype)


def dequantized_weights(folder) -> dict[str, torch.Tensor]:
    """{layer name: dequantized weight (out, in), float32} and {name + '.scale': per-element
    step} read from a gptqmodel checkpoint: GPTQ's v1 format (codes packed along the input
    dimension, zero points stored minus one) or AWQ's GEMM format (packed along the output
    dimension in the order 0 2 4 6 1 3 5 7). A reader of our own, so the checks below do not
    take gptqmodel's word for what its checkpoint holds."""
    config = json.loads((folder / "quantize_config.json").read_text("utf-8"))
    bits, awq = config["bits"], config.get("quant_method", "gptq") == "awq"
    tensors = {}
    for path in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(path))
    per_word, mask = 32 // bits, 2**bits - 1
    shifts = torch.arange(per_word, dtype=torch.int32) * bits
    order = [0, 2, 4, 6, 1, 3, 5, 7] if awq else list(range(per_word))
    inverse = [order.index(i) for i in range(per_word)]

    def unpack(packed: torch.Tensor, along_rows: bool) -> torch.Tensor:
        values = (packed[..., None] >> shifts) & mask  # (..., per_word)
        values = values[..., inverse] if awq else values
        if along_rows:  # (rows/pw, cols, pw) -> (rows, cols)
            return values.permute(0, 2, 1).reshape(-1, packed.shape[1])
        return values.reshape(packed.shape[0], -1)

    weights = {}
    for key in tensors:
        if not key.endswith(".qweight"):
            continue
        name = key.removesuffix(".qweight")
        scales = tensors[f"{name}.scales"].float()  # (groups, out)
        zeros = unpack(tensors[f"{name}.qzeros"], along_rows=False)
        q = unpack(tensors[key], along_rows=not awq)  # (in, out)
        if not awq:
            zeros = (zeros + 1) & mask  # v1 stores zero − 1
        columns = q.shape[0]
        group = tensors.get(f"{name}.g_idx")
        group = group.long() if group is not None else torch.arange(columns) // config["group_size"]
        step = scales[group]  # (in, out)
        weights[name] = ((q - zeros[group]).float() * step).T.contiguous()
        weights[name + ".scale"] = step.T.contiguous()
    assert weights and all(torch.isfinite(w).all() for w in weights.values()), folder
    return weights


def checkpoint_model(model, folder, native):
    """The fp model holding the checkpoint's dequantized weights (and, for AWQ, the norms it
    rescaled): what the native layers should compute."""
    fake, weights = copy.deepcopy(model), dequantized_weights(folder)
    state = native.state_dict()
    with torch.no_grad():
        for name, param in fake.named_parameters():
            module = name.removesuffix(".weight")
            if module in weights:
                param.copy_(weights[module])
            elif name in state and state[name].shape == param.shape:
                param.copy_(state[name].float())
    return fake, weights


def test_quantized_model_runs_forward_close_to_full_precision(quantized):
    spec, model, _, native = quantized
    assert type(native.model.layers[0].mlp.up_proj).__name__ != "Linear"
    assert type(native.lm_head) is torch.nn.Linear  # the output layer stays full precision
    assert native.dtype == (torch.float32 if spec.backend == "gptq" else torch.float16)
    out, fp = logits(native), logits(model)
    assert torch.isfinite(out).all()
    # measured: 0.059 (GPTQ), 0.069 (AWQ) where RTN on the same grid gives 0.079 / 0.071
    assert (out - fp).abs().max() < 0.15
    before = tiny_llama()  # the source model was not modified
    for name, param in model.named_parameters():
        assert torch.equal(param, before.state_dict()[name]), name


def test_native_layers_compute_the_checkpoints_weights(quantized):
    _, model, folder, native = quantized
    fake, _ = checkpoint_model(model, folder, native)
    # gptqmodel's CPU kernels: fused int4 (GPTQ, float32 in and out), float16 (AWQ)
    assert (logits(native) - logits(fake)).abs().max() < 1e-2


def test_dequantized_weights_lie_on_the_grid(quantized):
    spec, model, folder, _ = quantized
    weights = dequantized_weights(folder)
    for name, _ in model.named_modules():
        if f"{name}.scale" not in weights:
            continue
        values, step = weights[name], weights[f"{name}.scale"]
        codes = values / step
        assert (codes - codes.round()).abs().max() < 1e-3, name
        assert codes.round().min() >= -8 and codes.round().max() <= 7, name
        ours = quantize_tensor(model.get_submodule(name).weight, spec)
        ratio = step / ours.step()
        if spec.backend == "gptq":
            # GPTQ's group scales are ours (2·absmax/15) up to the float16 they are stored in
            torch.testing.assert_close(ratio, torch.ones_like(ratio), rtol=0, atol=1e-3)
        else:
            # AWQ scales input columns by activation statistics and clips before rounding
            assert 0.5 < ratio.min() and ratio.max() < 2, name


def test_gptq_beats_round_to_nearest_on_calibration_activations(quantized):
    spec, model, folder, _ = quantized
    if spec.backend != "gptq":
        pytest.skip("AWQ rescales the weights it quantizes; its layer errors are not comparable")
    inputs = {}
    layer = model.model.layers[0]
    hooks = [
        layer.get_submodule(name).register_forward_hook(
            lambda _, args, __, name=name: inputs.setdefault(name, []).append(args[0][0])
        )
        for name in LAYER0
    ]
    with torch.no_grad():
        for tokens in samples():
            model(tokens[None])
    for hook in hooks:
        hook.remove()
    weights = dequantized_weights(folder)
    total = {"gptq": 0.0, "rtn": 0.0}
    for name in LAYER0:
        x = torch.cat(inputs[name])
        weight = layer.get_submodule(name).weight
        rtn = quantize_tensor(weight, spec).dequantize()
        errors = {
            "gptq": (x @ (weights[f"model.layers.0.{name}"] - weight).T).pow(2).sum().item(),
            "rtn": (x @ (rtn - weight).T).pow(2).sum().item(),
        }
        assert errors["gptq"] <= errors["rtn"], (name, errors)  # measured: 0.70-0.72 of it
        for key in total:
            total[key] += errors[key]
    assert total["gptq"] < 0.8 * total["rtn"]


def test_per_tensor_codes_are_round_to_nearest_on_the_grid():
    weight = torch.randn(48, 256) * torch.rand(48, 1)
    gptq_codes = quantize_tensor(weight, parse_spec("gptq-int4-g64"))
    absmax = weight.reshape(-1, 64).abs().amax(1, keepdim=True)
    torch.testing.assert_close(gptq_codes.scale, absmax / 7.5)
    assert gptq_codes.codes.min() == -8 and gptq_codes.codes.max() == 7
    error = (gptq_codes.dequantize() - weight).abs()
    assert (error <= gptq_codes.step() / 2 * (1 + 1e-5) + 1e-7).all()
    awq_codes = quantize_tensor(weight, parse_spec("awq-int4-g64"))
    ours = quantize_tensor(weight, parse_spec("rtn-int4-g64-sym"))
    assert torch.equal(awq_codes.codes, ours.codes)
    fake = quantize_model(tiny_llama(), parse_spec("gptq-int8-g64"))  # the unlearning STE path
    assert torch.isfinite(fake.model.layers[0].mlp.up_proj.weight).all()


def test_load_quantized_calibrates_on_text_with_the_tokenizer(tmp_path):
    from unlearn_tiny import tokenizer

    model, spec = tiny_llama(), parse_spec("gptq-int4-g32")
    model.save_pretrained(tmp_path)
    tokenizer().save_pretrained(tmp_path)
    texts = ["ada lives in paris", "bo works as a pilot", "cy lives in rome"] * 20
    native = load_quantized(tmp_path, spec, calibration=texts)  # the folder's tokenizer
    assert torch.isfinite(logits(native)).all()
    samples_ = gptq.calibration_samples(texts, tokenizer(), 64)
    assert sum(len(s) for s in samples_) == sum(len(t.split()) + 1 for t in texts)
    with pytest.raises(QuailError, match="pass the model's tokenizer"):
        load_quantized(model, spec, calibration=texts)
    with pytest.raises(QuailError, match="single layers"):
        gptq.convert(model.lm_head, spec)


def test_evaluate_and_analyze_accept_the_specs():
    from quail.analysis import analyze
    from quail.evaluation import EvalData, evaluate
    from unlearn_tiny import tokenizer

    passages = {"forget": ["ada lives in paris"] * 8, "retain": ["bo works as a pilot"] * 8}
    data = EvalData(passages=passages)
    model = tiny_llama()
    results = evaluate(model, data, ["fp", "gptq-int4-g32"], tokenizer())
    assert set(results) == {"fp", "gptq-int4-g32"}
    assert abs(results["gptq-int4-g32"]["verbmem_forget"] - results["fp"]["verbmem_forget"]) < 50
    assert analyze(model, model, "gptq-int4-g32").summary["bucket_overlap"] == 1.0


def test_cli_quantize_refuses_model_level_specs(tmp_path):
    from typer.testing import CliRunner

    from quail.cli import app

    tiny_llama().save_pretrained(tmp_path / "model")
    args = [
        "quantize",
        str(tmp_path / "model"),
        "--quant",
        "gptq-int4",
        "--out",
        str(tmp_path / "o"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0 and "quail evaluate --quant" in result.output
