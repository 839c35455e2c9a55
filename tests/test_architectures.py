"""Every common architecture through the whole chain (issue 23): unlearn with each method
family, quantize under the reference specs and every CPU backend, analyze, evaluate, LoRA.

Tiny random models built from config (tests/arch_tiny.py): Llama, Qwen2, Qwen3, Mistral,
Gemma2, Gemma3 (text), Phi-3, OLMo2 and GPT-NeoX, tied and untied embeddings, grouped-query
attention, each trained on the tiny facts and snapped onto GRID. One model per architecture
and one run per (architecture, method) are shared by every test that reads them.
"""

import functools

import pytest
import torch
from torch import nn

import arch_tiny
import unlearn_tiny
from arch_tiny import ARCHS, GRID
from quail.analysis import analyze
from quail.errors import QuailError
from quail.evaluation import EvalData, evaluate
from quail.evaluation.lm import greedy_continuations
from quail.quant import load_quantized, parse_spec, quantizable_modules, quantize_model
from quail.quant.backends import backend_of
from quail.unlearning import unlearn

SETTINGS = {"steps": 3, "lr": 1e-3, "batch_size": 4, "quant": GRID, "progress": False}
# quail: one check after two steps of 0.3 of the grid's median step (enough for some weights to
# cross half a step); no utility floor, so the check cannot send it back to the original's
# weights and the shipped model is the rounded one
QUAIL = {"steps": 2, "check_every": 2, "utility_floor": 0.0, "lr": 0.3}
PLAIN_METHODS = ["ga_gdr", "npo_gdr", "sure_ga_gdr", "ste_ga_gdr", "quail_hinge"]


@pytest.fixture(scope="module", params=list(ARCHS))
def arch(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def original(arch) -> nn.Module:
    return arch_tiny.trained(arch)


@functools.cache
def run(arch: str, method: str):
    """`method` on a fresh copy of the architecture's trained model (once per process)."""
    forget, retain = arch_tiny.split()
    settings = SETTINGS | {"method": method} | (QUAIL if method == "quail" else {})
    model = arch_tiny.trained(arch)
    return unlearn(model, forget, retain, settings, tokenizer=unlearn_tiny.tokenizer())


def linear_names(model: nn.Module) -> list[str]:
    return [name for name, _ in quantizable_modules(model)]


def same_parameters(a: nn.Module, b: nn.Module) -> list[str]:
    """The names of the parameters that differ between two models of one architecture."""
    other = dict(b.named_parameters())
    return [name for name, p in a.named_parameters() if not torch.equal(p, other[name])]


def test_the_tiny_model_is_the_architecture_it_claims(arch, original):
    """The matrix covers what it says: tied or untied, grouped-query attention, a model that
    knows its facts and sits exactly on GRID."""
    tied = original.get_output_embeddings().weight is original.get_input_embeddings().weight
    assert tied == ARCHS[arch].tied
    config = original.config
    heads, kv_heads = config.num_attention_heads, getattr(config, "num_key_value_heads", None)
    assert (kv_heads is not None and kv_heads < heads) == ARCHS[arch].gqa
    assert arch_tiny.mean_nll(original, arch_tiny.facts()) < 0.1
    assert same_parameters(original, quantize_model(original, parse_spec(GRID))) == []


@pytest.mark.parametrize("method", PLAIN_METHODS)
def test_each_method_unlearns_and_analysis_covers_every_layer(arch, original, method):
    result = run(arch, method)
    model, forget = result.model, arch_tiny.split()[0]
    assert type(model) is type(original)
    assert len(result.curves) == SETTINGS["steps"]
    assert all(torch.isfinite(torch.tensor(c["loss"])) for c in result.curves)
    assert arch_tiny.mean_nll(model, forget) > arch_tiny.mean_nll(original, forget)
    threads = torch.get_num_threads()
    report = analyze(original, model, GRID)
    assert torch.get_num_threads() == threads  # the fused kernel's OpenMP pool left it alone
    assert [layer["name"] for layer in report.layers] == linear_names(original)
    # three small AdamW steps leave most weights in their buckets
    assert 0.9 < report.summary["bucket_overlap"] <= 1.0


def test_quail_ships_exactly_on_its_grid(arch, original):
    """Sign steps and the rounding onto the grid handle every linear layer of the architecture
    (fused qkv and gate/up projections, biases, norms around them): quantizing the shipped
    model again changes nothing, and whole codes moved in every layer."""
    result = run(arch, "quail")
    shipped = result.model
    assert same_parameters(shipped, quantize_model(shipped, parse_spec(GRID))) == []
    report = analyze(original, shipped, GRID)
    assert [layer["name"] for layer in report.layers] == linear_names(original)
    assert report.summary["bucket_overlap"] < 0.99
    assert all(layer["bucket_overlap"] < 1.0 for layer in report.layers)
    checks = result.outcome.checks
    assert [c["step"] for c in checks] == [0, QUAIL["steps"]]
    assert all(c["scores"]["fp"] == c["scores"][GRID] for c in checks)


@pytest.mark.parametrize("name", ["llama", "qwen2"])  # untied, tied
def test_quail_ships_embeddings_on_their_grid_too(name):
    """An '+emb-' part's embeddings (and a tied lm_head) ship rounded onto their own grid too,
    so quantizing the shipped model under the spec changes nothing."""
    forget, retain = arch_tiny.split()
    spec = f"{GRID}+emb-rtn-int8-g32"
    settings = SETTINGS | QUAIL | {"method": "quail", "quant": spec}
    shipped = unlearn(
        arch_tiny.trained(name), forget, retain, settings, tokenizer=unlearn_tiny.tokenizer()
    ).model
    again = quantize_model(shipped, parse_spec(spec))
    for (key, value), (_, quantized) in zip(
        shipped.named_parameters(), again.named_parameters(), strict=True
    ):  # a grid point re-quantizes to itself up to a float's last bit when the original's
        assert torch.allclose(value, quantized, rtol=0, atol=1e-7), key  # scale is not exact


def lora_settings(arch: str) -> dict:
    targets = ARCHS[arch].lora_targets
    settings = SETTINGS | {"method": "ga_gdr", "steps": 2, "lr": 1e-2, "lora_r": 4}
    return settings | ({"lora_targets": list(targets)} if targets else {})


def test_lora_changes_only_the_layers_it_targets(arch, original):
    settings = lora_settings(arch)
    forget, retain = arch_tiny.split()
    model = unlearn(
        arch_tiny.trained(arch), forget, retain, settings, tokenizer=unlearn_tiny.tokenizer()
    ).model
    assert type(model) is type(original)  # merged and unwrapped
    assert not [name for name, _ in model.named_parameters() if "lora" in name]
    targets = settings.get("lora_targets", ["q_proj", "k_proj", "v_proj", "o_proj"])
    changed = {name.removesuffix(".weight") for name in same_parameters(model, original)}
    targeted = {n for n in linear_names(original) if n.rsplit(".", 1)[-1] in targets}
    assert targeted and changed == targeted


def test_lora_targets_an_architecture_lacks_give_one_line():
    """GPT-NeoX has none of the default targets (q_proj, k_proj, v_proj, o_proj): one line
    naming the setting and the layers it could name."""
    forget, retain = arch_tiny.split()
    settings = SETTINGS | {"method": "ga_gdr", "steps": 1, "lora_r": 4}
    with pytest.raises(QuailError, match="lora_targets") as error:
        unlearn(
            arch_tiny.trained("gpt_neox"),
            forget,
            retain,
            settings,
            tokenizer=unlearn_tiny.tokenizer(),
        )
    assert "\n" not in str(error.value)
    assert "query_key_value" in str(error.value) and "gpt_neox" in str(error.value)


# How close each backend's own layers come to our fake-quantized copy on the same grid (as in
# test_backends.FORWARD): exact where the backend dequantizes in float32. bitsandbytes' CPU
# 4-bit kernel computes in bfloat16 on CPUs that have it (AVX512-BF16: up to 0.039 where logits
# reach 6.5, 2026-12-07), so its bound is bfloat16's 2^-7 relative to the largest logit. A
# wrong grid is 10-20x further off (our copy against fp: 0.17-0.93).
RELATIVE_TO_LOGITS = {"bnb-nf4"}
FORWARD = {
    GRID: 0.0,
    "nf4": 0.0,
    "bnb-nf4": 2**-7,
    "quanto-int4-g32": 1e-4,
    "hqq-int4-g32": 1e-4,
    "ct-int4-g32": 1e-4,
}
GPTQ = "gptq-int4-g32"


@pytest.mark.parametrize("text", [*FORWARD, GPTQ])
def test_the_unlearned_model_quantizes_under_every_spec(arch, text):
    """ga_gdr's model under each reference spec and backend: every linear layer but the
    output layer is the backend's own (compressed-tensors decompresses into the Linear it was
    given, which then carries its scales), the embeddings are left alone, the logits are finite
    and those of our copy on the same grid (GPTQ, calibrated on these very facts: closer to
    full precision than round-to-nearest on its grid)."""
    spec = parse_spec(text)
    if spec.backend is not None:
        pytest.importorskip(backend_of(spec).module)
    model, tok = run(arch, "ga_gdr").model, unlearn_tiny.tokenizer()
    texts = [e.prompt + e.target for e in arch_tiny.facts()]
    native = load_quantized(model, spec, calibration=texts, tokenizer=tok)
    modules = dict(native.named_modules())
    for name in linear_names(model) if spec.backend is not None else []:
        if name in modules:
            layer = modules[name]
            assert type(layer) is not nn.Linear or hasattr(layer, "weight_scale"), name
        else:  # gptqmodel splits Phi-3's gate_up_proj into gate_proj and up_proj
            block = native.get_submodule(name.rpartition(".")[0])
            assert not [c for c in block.children() if type(c) is nn.Linear], name
    assert type(native.get_output_embeddings()) is nn.Linear
    embedding = native.get_input_embeddings().weight
    assert torch.equal(embedding, model.get_input_embeddings().weight)
    same_length = arch_tiny.facts()[0:4:2]  # two people's cities
    tokens = torch.tensor([tok(e.prompt + e.target)["input_ids"] for e in same_length])
    with torch.no_grad():
        logits = native(tokens).logits.float()
        full = model(tokens).logits
        rtn = quantize_model(model, spec)(tokens).logits
    assert torch.isfinite(logits).all()
    if text == GPTQ:
        assert (logits - full).abs().mean() < (rtn - full).abs().mean()
    else:
        scale = max(1.0, full.abs().max()) if text in RELATIVE_TO_LOGITS else 1.0
        assert (logits - rtn).abs().max() <= FORWARD[text] * scale


def test_evaluation_scores_the_shipped_model_as_it_ships(arch):
    """quail's model is on GRID, so evaluation under GRID answers exactly as at full
    precision; a backend's format runs through the same probes."""
    shipped, tok = run(arch, "quail").model, unlearn_tiny.tokenizer()
    forget, retain = arch_tiny.probes()
    data = EvalData(qa={"forget": forget, "retain": retain})
    results = evaluate(shipped, data, ["fp", GRID, "quanto-int4-g32"], tokenizer=tok)
    assert results["fp"] == results[parse_spec(GRID).name]
    for scores in results.values():
        assert 0 <= scores["knowmem_retain"] <= 100 and 0 <= scores["em_forget"] <= 1


def test_greedy_answers_are_the_models_own(arch, original):
    """Evaluation and measured stopping answer probes in shared-prefix batches (plain left
    padding where a layer slides: a sliding window counts cache slots, so a shared prefix
    would slide out of it behind a row's padding); the answers must be those the model gives
    each prompt alone."""
    tok = unlearn_tiny.tokenizer()
    prompts = [e.prompt for e in unlearn_tiny.facts()[:12]]
    alone = []
    for prompt in prompts:
        ids = tok(prompt, return_tensors="pt")["input_ids"]
        out = original.generate(input_ids=ids, max_new_tokens=4, do_sample=False, pad_token_id=0)
        alone.append(tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip())
    assert alone == [e.target.strip() for e in unlearn_tiny.facts()[:12]]  # it knows them
    batched = greedy_continuations(original, tok, prompts, 4, first_line_only=True)
    assert [a.strip() for a in batched] == alone
