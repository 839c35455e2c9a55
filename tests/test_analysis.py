"""quail.analysis: overlap and change statistics against hand computation, folders against
in-memory models, bad input as one-line errors, and the `quail analyze` command."""

import copy
import gc
import json
import math
import os
import queue
import threading

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import quail.analysis.compare as compare
import quail.analysis.weights as analysis_weights
import tiny
from quail.analysis import analyze, fused
from quail.analysis.histogram import Histogram, bin_edge
from quail.analysis.stats import ChangeStats
from quail.analysis.weights import FolderWeights, ReadAhead, advise_will_need
from quail.cli import app
from quail.errors import QuailError
from quail.quant import parse_spec, quantizable_modules, quantize_tensor

QUANTILE_RESOLUTION = 2**-10


def tiny_llama(seed=0, tie=False, intermediate=128):
    return tiny.tiny_llama(
        seed, vocab_size=96, intermediate_size=intermediate, tie_word_embeddings=tie
    )


@torch.no_grad()
def perturbed(model, spec, steps: float, seed=1, uniform=False):
    """A copy whose quantized weights each move by ±steps·Δ (Δ from the original's grid), or
    with `uniform` by a random amount in [-steps·Δ, steps·Δ]."""
    generator = torch.Generator().manual_seed(seed)
    copied = copy.deepcopy(model)
    for _, module in quantizable_modules(copied):
        w = module.weight
        if uniform:
            sign = torch.rand(w.shape, generator=generator) * 2 - 1
        else:
            sign = torch.randint(0, 2, w.shape, generator=generator) * 2 - 1
        w += steps * quantize_tensor(w, spec).step() * sign
    return copied


def assert_close(a, b):
    """Equal counts and names; floats equal up to summation order (chunks, threads)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_close(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_close(x, y)
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-12)
    else:
        assert a == b


def without_labels(result):
    data = result.to_dict()
    del data["original"], data["unlearned"]
    return data


@pytest.mark.parametrize("spec", ["int4", "int8", "nf4", "fp4", "rtn-int3-g32-asym"])
def test_identical_models_overlap_fully_and_survival_is_undefined(spec):
    model = tiny_llama()
    result = analyze(model, copy.deepcopy(model), spec)
    for figures in [result.summary, *result.layers]:
        assert figures["bucket_overlap"] == 1.0
        assert figures["fixed_scale_overlap"] == 1.0
        assert figures["changed_fraction"] == 0.0
        assert figures["half_step_fraction"] == 0.0
        assert figures["relative_change_norm"] == 0.0
        assert figures["update_survival"] is None
        assert figures["update_cosine"] is None
        assert figures["abs_change"]["p99"] == 0.0


@pytest.mark.parametrize("spec", ["int4", "nf4"])
def test_tiny_perturbation_keeps_buckets_and_one_step_breaks_them(spec):
    model = tiny_llama()
    parsed = parse_spec(spec)
    # A weight at a uniform distance from the nearest boundary crosses it with probability
    # |move| / Δ: about 0.005 for moves uniform in ±0.01·Δ (0.01 for exactly ±0.01·Δ).
    small = analyze(model, perturbed(model, parsed, 0.01, uniform=True), spec).summary
    large = analyze(model, perturbed(model, parsed, 1.0), spec).summary
    assert small["bucket_overlap"] > 0.99 and small["fixed_scale_overlap"] > 0.99
    assert small["half_step_fraction"] == 0.0
    assert large["bucket_overlap"] < 0.6 and large["fixed_scale_overlap"] < 0.6
    assert large["half_step_fraction"] == 1.0


def test_statistics_equal_hand_computation():
    # rtn-int4-g4: Δ = absmax/7 per row, code = round(w/Δ) clamped to [-8, 7].
    w0 = [[7.0, 1.0, -2.0, 0.2], [-7.0, 2.6, 0.4, 0.0]]  # Δ0 = 1 in both rows
    w1 = [[7.0, 1.6, -2.0, 0.2], [-8.4, 2.6, 0.4, 0.55]]  # row 1: Δ1 = 1.2
    # codes0 [[7, 1, -2, 0], [-7, 3, 0, 0]]; own scales [[7, 2, -2, 0], [-7, 2, 0, 0]];
    # W0's scales [[7, 2, -2, 0], [-8, 3, 0, 1]]
    # change u = [[0, .6, 0, 0], [-1.4, 0, 0, .55]]
    # Q(W1) - Q(W0) = [[0, 1, 0, 0], [-1.4, -.6, 0, 0]]
    models = []
    for w in (w0, w1):
        model = nn.Sequential(nn.Linear(4, 2, bias=False))
        with torch.no_grad():
            model[0].weight.copy_(torch.tensor(w))
        models.append(model)
    result = analyze(*models, "rtn-int4-g4")
    s = result.summary
    assert result.layers[0]["name"] == "0" and result.counts == {"layers": 1, "elements": 8}
    assert s["bucket_overlap"] == 6 / 8
    assert s["fixed_scale_overlap"] == 5 / 8
    assert s["changed_fraction"] == 3 / 8
    assert s["half_step_fraction"] == 3 / 8  # |u| / (Δ/2) = 1.2, 2.8, 1.1
    change_sq, quantized_sq, inner = 0.36 + 1.96 + 0.3025, 1 + 1.96 + 0.36, 0.6 + 1.96
    assert s["relative_change_norm"] == pytest.approx(math.sqrt(change_sq / 109.96), rel=1e-6)
    assert s["update_survival"] == pytest.approx(inner / change_sq, rel=1e-6)
    assert s["update_cosine"] == pytest.approx(inner / math.sqrt(change_sq * quantized_sq), 1e-6)
    assert s["abs_change"]["mean"] == pytest.approx(2.55 / 8, rel=1e-6)
    assert s["abs_change"]["max"] == pytest.approx(1.4, rel=1e-6)
    assert s["change_in_half_steps"]["max"] == pytest.approx(2.8, rel=1e-6)
    assert s["abs_change"]["p50"] == 0.0  # 5 of 8 changes are 0
    for key, exact in (("abs_change", 1.4), ("change_in_half_steps", 2.8)):
        assert exact * (1 - QUANTILE_RESOLUTION) <= s[key]["p90"] <= exact
    assert s["change_in_half_steps"]["histogram"]["zeros"] == 5
    assert sum(s["change_in_half_steps"]["histogram"]["counts"]) == 3


def test_histogram_quantiles_match_inverted_cdf_within_resolution():
    values = torch.randn(100_003).abs() * torch.logspace(-8, 1, 100_003)
    histogram = Histogram()
    for chunk in values.split(30_000):
        histogram.add(chunk)
    ordered = values.sort().values
    for key, thousandths in (("p50", 500), ("p90", 900), ("p99", 990), ("p999", 999)):
        exact = ordered[math.ceil(values.numel() * thousandths / 1000) - 1].item()
        got = histogram.quantiles()[key]
        assert exact * (1 - QUANTILE_RESOLUTION) <= got <= exact


def test_histograms_with_apart_spans_merge_into_the_histogram_of_all_values():
    generator = torch.Generator().manual_seed(0)
    low = torch.rand(1000, generator=generator) * 1e-6 + 1e-9  # spans far apart, none 0
    high = torch.rand(500, generator=generator) * 10 + 1
    values = torch.cat([low, torch.zeros(7), high])
    parts = [Histogram() for _ in range(3)]
    for part, chunk in zip(parts, (high, torch.zeros(7), low), strict=True):
        part.add(chunk)
    merged, whole = Histogram(), Histogram()
    for part in parts:
        merged.merge(part)
    whole.add(values)
    assert merged == whole and merged.zeros == 7
    assert merged.quantiles() == whole.quantiles()
    assert merged.coarse() == whole.coarse()
    assert sum(merged.coarse()["counts"]) == 1500
    assert merged.quantiles()["p50"] == bin_edge(
        int(low.sort().values[746].view(torch.int32)) >> 13
    )


def test_summary_aggregates_layers_exactly():
    model = tiny_llama()
    result = analyze(model, perturbed(model, parse_spec("int4"), 0.3), "int4")
    n = result.summary["elements"]
    assert n == sum(layer["elements"] for layer in result.layers) == result.counts["elements"]
    for key in ("bucket_overlap", "fixed_scale_overlap", "half_step_fraction"):
        weighted = sum(layer[key] * layer["elements"] for layer in result.layers) / n
        assert result.summary[key] == pytest.approx(weighted, rel=1e-12)


@pytest.mark.parametrize("spec", ["int4", "nf4", "rtn-int8-tensor"])
def test_chunking_does_not_change_results(monkeypatch, spec):
    model = tiny_llama()
    unlearned = perturbed(model, parse_spec("int4"), 0.4)
    whole = analyze(model, unlearned, spec)
    monkeypatch.setattr(compare, "CHUNK_ELEMENTS", 2000)  # 2 to 4 chunks per layer
    assert_close(analyze(model, unlearned, spec).to_dict(), whole.to_dict())


def test_backend_spec_matches_reference_and_reads_whole_tensors(monkeypatch):
    pytest.importorskip("bitsandbytes")
    model = tiny_llama()
    unlearned = perturbed(model, parse_spec("nf4"), 0.4)
    monkeypatch.setattr(compare, "CHUNK_ELEMENTS", 2000)  # ignored for backend specs
    backend = analyze(model, unlearned, "bnb-nf4")
    reference = analyze(model, unlearned, "nf4")  # bitsandbytes' codes are ours
    assert backend.spec == "bnb-nf4"
    assert_close(backend.summary, reference.summary)
    double = analyze(model, unlearned, "bnb-nf4-dq").summary
    assert 0.5 < double["bucket_overlap"] < 1


@pytest.mark.parametrize(
    ("tie", "options"),
    [
        (False, {}),
        (False, {"include_lm_head": True, "include_embeddings": True}),
        (True, {"include_lm_head": True}),  # the tied lm_head is saved as the embedding only
    ],
)
def test_folder_and_in_memory_agree(tmp_path, tie, options):
    model = tiny_llama(tie=tie)
    unlearned = perturbed(model, parse_spec("int4"), 0.3)
    model.save_pretrained(tmp_path / "original", max_shard_size="20KB")  # many shards
    unlearned.save_pretrained(tmp_path / "unlearned")  # one file
    assert len(list((tmp_path / "original").glob("*.safetensors"))) > 1
    in_memory = analyze(model, unlearned, "int4", **options)
    on_disk = analyze(tmp_path / "original", tmp_path / "unlearned", "int4", **options)
    mixed = analyze(model, tmp_path / "unlearned", "int4", **options)
    assert on_disk.layer_selection == "quantizable_modules"
    assert on_disk.unlearned == str(tmp_path / "unlearned")
    assert_close(without_labels(on_disk), without_labels(in_memory))
    assert_close(without_labels(mixed), without_labels(in_memory))
    assert (on_disk.layers[-1]["name"] == "lm_head") == ("include_lm_head" in options)


def test_read_ahead_asks_for_every_piece_of_each_span(tmp_path, monkeypatch):
    """One WILLNEED call for a whole file reads only the OS's readahead window of it. Run in
    this thread (the read-ahead thread's function), recording this thread's calls only."""
    asked, me = [], threading.get_ident()

    def record(fd, offset, length, advice):
        if threading.get_ident() == me:
            asked.append((os.fstat(fd).st_size, offset, length, advice))

    monkeypatch.setattr(os, "posix_fadvise", record, raising=False)
    (tmp_path / "a").write_bytes(bytes(2500))
    (tmp_path / "b").write_bytes(bytes(999))
    requests = queue.SimpleQueue()
    for request in [("a", 100, 2500), ("missing", 0, 10), ("b", 0, 999), None]:
        requests.put(request and (tmp_path / request[0], *request[1:]))
    advise_will_need(requests, 1000)  # returns at None; a missing file is skipped
    need = os.POSIX_FADV_WILLNEED
    assert asked == [(2500, 100, 1000, need), (2500, 1100, 1000, need), (2500, 2100, 400, need),
                     (999, 0, 999, need)]  # fmt: skip


def test_opening_a_layer_reads_it_and_the_next_layers_ahead(tmp_path, monkeypatch):
    model = tiny_llama()
    model.save_pretrained(tmp_path, max_shard_size="20KB")  # many shards
    requested = []
    monkeypatch.setattr(ReadAhead, "span", lambda self, *span: requested.append(span))
    weights = FolderWeights(tmp_path, include_lm_head=False, include_embeddings=False)
    names = list(weights.files)
    layer_bytes = [math.prod(weights.shapes[name]) * 4 for name in names]  # float32
    monkeypatch.setattr(analysis_weights, "READ_AHEAD_BYTES", sum(layer_bytes[1:4]))
    with weights.open(names[1]) as rows:
        rows[0:1]
    assert [span[0] for span in requested] == [weights.files[n] for n in names[1:4]]
    for (path, start, end), name in zip(requested, names[1:4], strict=True):
        with open(path, "rb") as handle:  # the span holds exactly the tensor's bytes
            handle.seek(start)
            data = torch.frombuffer(bytearray(handle.read(end - start)), dtype=torch.float32)
        expected = dict(model.named_parameters())[name + ".weight"].detach().flatten()
        assert torch.equal(data, expected)


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="posix_fadvise is POSIX-only")
def test_the_read_ahead_thread_reads_what_is_asked_once_and_ends_with_its_owner(tmp_path):
    (tmp_path / "a").write_bytes(bytes(3 * ReadAhead.PIECE))
    before = set(threading.enumerate())
    read_ahead = ReadAhead()
    read_ahead.span(tmp_path / "a", 0, 3 * ReadAhead.PIECE)
    read_ahead.span(tmp_path / "a", 0, 3 * ReadAhead.PIECE)  # asked again: not queued again
    assert read_ahead.requested == {(tmp_path / "a", 0)}
    (thread,) = set(threading.enumerate()) - before
    assert thread.name == "quail-read-ahead" and thread.daemon
    requests = read_ahead.requests
    del read_ahead
    gc.collect()
    thread.join(timeout=60)
    assert not thread.is_alive()  # it took the span, then the None its owner's end sent
    assert requests.empty()


@pytest.mark.parametrize("tie", [False, True])
def test_an_emb_part_analyses_embeddings_and_lm_head_under_their_own_spec(tmp_path, tie):
    model = tiny_llama(tie=tie)
    unlearned = perturbed(model, parse_spec("int4"), 0.3)
    with torch.no_grad():  # `perturbed` moves the linear layers only
        for weight in {id(w): w for w in (unlearned.model.embed_tokens.weight,
                                          unlearned.lm_head.weight)}.values():  # fmt: skip
            weight[:7] += 0.02
    combined = analyze(model, unlearned, "int4+emb-int8")
    linears = analyze(model, unlearned, "int4")
    vocab = analyze(model, unlearned, "int8", include_lm_head=True, include_embeddings=True)
    layers = {layer.pop("name"): layer for layer in copy.deepcopy(combined.layers)}
    expected = {layer["name"]: layer for layer in linears.layers}
    expected |= {layer["name"]: layer for layer in vocab.layers if layer["name"] not in expected}
    assert layers.keys() == expected.keys()
    assert len(layers) == len(linears.layers) + (1 if tie else 2)
    for name, layer in layers.items():
        assert_close(layer, {k: v for k, v in expected[name].items() if k != "name"})
    assert layers["model.embed_tokens"]["spec"] == "rtn-int8-channel-sym"
    assert layers["model.embed_tokens"]["bucket_overlap"] < 1.0
    assert combined.include_embeddings and combined.include_lm_head
    assert combined.spec == "rtn-int4-g64-sym+emb-rtn-int8-channel-sym"
    model.save_pretrained(tmp_path / "original")
    unlearned.save_pretrained(tmp_path / "unlearned")
    on_disk = analyze(tmp_path / "original", tmp_path / "unlearned", "int4+emb-int8")
    assert_close(without_labels(on_disk), without_labels(combined))


def test_unknown_architecture_falls_back_to_the_name_rule(tmp_path):
    model = tiny_llama()
    unlearned = perturbed(model, parse_spec("int4"), 0.3)
    for name, m in (("original", model), ("unlearned", unlearned)):
        m.save_pretrained(tmp_path / name)
        config = json.loads((tmp_path / name / "config.json").read_text())
        config["model_type"] = "no-such-architecture"
        (tmp_path / name / "config.json").write_text(json.dumps(config))
    on_disk = analyze(tmp_path / "original", tmp_path / "unlearned", "int4")
    assert on_disk.layer_selection == "name rule"
    by_name = {layer["name"]: layer for layer in analyze(model, unlearned, "int4").layers}
    assert_close({layer["name"]: layer for layer in on_disk.layers}, by_name)


def test_bad_input_raises_one_line_errors(tmp_path):
    model = tiny_llama()
    model.save_pretrained(tmp_path / "model")
    tiny_llama(intermediate=96).save_pretrained(tmp_path / "other_shape")
    (tmp_path / "no_config").mkdir()
    (tmp_path / "no_weights").mkdir()
    (tmp_path / "no_weights" / "config.json").write_text("{}")
    (tmp_path / "pickle").mkdir()
    (tmp_path / "pickle" / "config.json").write_text("{}")
    (tmp_path / "pickle" / "pytorch_model.bin").write_bytes(b"not loaded")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "config.json").write_text("{}")
    (tmp_path / "corrupt" / "model.safetensors").write_bytes(b"\x08" + bytes(20))
    good = tmp_path / "model"
    cases = [
        ((tmp_path / "missing", good, "int4"), "does not exist"),
        ((tmp_path / "no_config", good, "int4"), "no config.json"),
        ((good, tmp_path / "no_weights", "int4"), "no .safetensors"),
        ((good, tmp_path / "pickle", "int4"), "pickle"),
        ((good, tmp_path / "corrupt", "int4"), "cannot read"),
        ((good, tmp_path / "other_shape", "int4"), "shapes differ"),
        ((good, good, "int4-foo"), "unknown part"),
        ((good, good, "q5"), "unknown quantization spec"),
        ((good, good, "int9"), "bits out of range"),
        ((good, good, "rtn-int4-g48"), "does not divide"),
        ((good, good, "fp"), "no quantization"),
        ((model, 42, "int4"), "cannot analyse"),
    ]
    for args, message in cases:
        with pytest.raises(QuailError, match=message) as error:
            analyze(*args)
        assert "\n" not in str(error.value)


@pytest.mark.parametrize("spec", ["int4", "nf4"])  # the fused kernel and the torch path
def test_non_finite_weights_are_refused_naming_the_model_and_layer(tmp_path, spec):
    model, broken = tiny_llama(), tiny_llama()
    with torch.no_grad():
        broken.model.layers[1].mlp.up_proj.weight[3, :2] = torch.tensor([float("nan"), 1.0])
        broken.model.layers[1].self_attn.o_proj.weight[0, 0] = float("inf")
    model.save_pretrained(tmp_path / "model")
    broken.save_pretrained(tmp_path / "broken")
    folder = tmp_path / "broken"
    cases = [
        (model, broken, "the unlearned model <in-memory"),
        (folder, tmp_path / "model", f"the original model {folder}"),
    ]
    for original, unlearned, who in cases:
        with pytest.raises(QuailError, match="NaN or inf weights in model.layers.1") as error:
            analyze(original, unlearned, spec)
        assert str(error.value).startswith(who)
    result = CliRunner().invoke(
        app, ["analyze", str(tmp_path / "model"), str(tmp_path / "broken"), "--quant", spec]
    )
    assert result.exit_code == 2 and "broken has NaN or inf" in result.output


def test_cli_prints_table_and_writes_json(tmp_path):
    model = tiny_llama()
    model.save_pretrained(tmp_path / "original")
    perturbed(model, parse_spec("int4"), 0.3).save_pretrained(tmp_path / "unlearned")
    out = tmp_path / "results" / "analysis.json"
    args = ["analyze", str(tmp_path / "original"), str(tmp_path / "unlearned")]
    result = CliRunner().invoke(app, [*args, "--quant", "int4", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "overlap" in result.output and "whole model" in result.output
    data = json.loads(out.read_text())
    assert data["spec"] == "rtn-int4-g64-sym" and data["counts"]["layers"] == 14
    assert 0 <= data["summary"]["bucket_overlap"] <= 1
    for figures in [data["summary"], *data["layers"]]:
        for key in ("bucket_overlap", "fixed_scale_overlap", "update_survival", "abs_change"):
            assert key in figures
    assert list(out.parent.iterdir()) == [out]  # no temporary file left behind


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--quant", "int4-foo"], "unknown part"), (["--quant", "rtn-int4-g48"], "does not divide")],
)
def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, extra, message):
    tiny_llama().save_pretrained(tmp_path / "model")
    out = tmp_path / "out.json"
    model = str(tmp_path / "model")
    result = CliRunner().invoke(app, ["analyze", model, model, *extra, "--json", str(out)])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()
    missing = CliRunner().invoke(app, ["analyze", model, str(tmp_path / "nope"), "--quant", "int4"])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def _stats(add, w0, w1, spec):
    stats = ChangeStats()
    add(stats, w0, w1, parse_spec(spec))
    return stats


FUSED_SPECS = ["int4", "int8", "rtn-int2-g32", "rtn-int3-g64-asym", "rtn-int8-g128-asym",
               "rtn-int4-channel", "rtn-int5-channel-asym"]  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("spec", FUSED_SPECS)
def test_fused_kernel_equals_torch_path(spec, dtype):
    """Same counts, maxima and histogram bins as the torch path, on weights with ties, zero
    groups, constant groups, all-negative groups, negative zeros, subnormals, unchanged rows,
    values on the grid and changes of every size."""
    assert fused.covers(parse_spec(spec), (48, 256))
    generator = torch.Generator().manual_seed(0)
    w0 = torch.randn(48, 256, generator=generator) * 0.02
    w0[0] = 0  # an all-zero row: Δ = 1 by convention
    w0[1] = quantize_tensor(w0[1:2], parse_spec(spec)).dequantize()  # on its own grid
    w0[2, :128] = torch.arange(128) * 0.5 - 32  # exact halves: round-half-even ties
    w0[4] = -w0[4].abs()  # all negative: the kernel orders signed floats by their bits
    w0[5, ::2] = -0.0  # negative zeros beside positive values
    w0[6] = 0.5  # constant: max - min = 0, Δ = 1 by convention
    w0[7] = torch.tensor([0.0, -0.0]).repeat(128)  # zeros of both signs only
    w0[8] = w0[8] * 1e-37  # subnormal floats
    scale = torch.logspace(-7, -1, 48).unsqueeze(1)  # from far below to beyond a step
    w1 = w0 + torch.randn(48, 256, generator=generator) * scale
    w1[3] = w0[3]  # an unchanged row
    w0, w1 = w0.to(dtype), w1.to(dtype)
    slow = _stats(ChangeStats.add_torch, w0, w1, spec)
    fast = _stats(ChangeStats.add_fused, w0, w1, spec)
    for name in ("elements", *fused.COUNTS, *fused.MAXIMA):
        assert getattr(fast, name) == getattr(slow, name), name
    for name in fused.SUMS:
        assert getattr(fast, name) == pytest.approx(getattr(slow, name), rel=1e-5), name
    assert fast.abs_change == slow.abs_change
    assert fast.half_steps == slow.half_steps


def test_fused_kernel_splits_work_across_threads_without_changing_results():
    rows = 4 * fused.BLOCK_ELEMENTS // 128 + 3  # five blocks, the last one short
    w0 = torch.randn(rows, 128) * 0.02
    w1 = w0 + torch.randn(rows, 128) * 1e-3
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _stats(ChangeStats.add_fused, w0, w1, "int4")
        torch.set_num_threads(2)
        two = _stats(ChangeStats.add_fused, w0, w1, "int4")
    finally:
        torch.set_num_threads(threads)
    assert_close(one.figures(histogram=True), two.figures(histogram=True))
    assert one.abs_change == two.abs_change
    assert one.half_steps == two.half_steps
    slow = _stats(ChangeStats.add_torch, w0, w1, "int4")
    assert one.half_steps == slow.half_steps
    assert (one.same_bucket, one.half_step) == (slow.same_bucket, slow.half_step)


def test_fused_kernel_accumulates_chunks_across_a_change_of_threads():
    """One layer fed in chunks: several blocks on 2 threads, one block on 1 thread (fewer rows
    of the kernel's kept histogram rows in use), an unchanged chunk (nothing above bin 0)."""
    generator = torch.Generator().manual_seed(1)
    w0 = torch.randn(4 * fused.BLOCK_ELEMENTS // 128 + 40, 128, generator=generator) * 0.02
    scale = torch.logspace(-6, -2, w0.shape[0]).unsqueeze(1)  # changes of many sizes
    w1 = w0 + torch.randn(w0.shape, generator=generator) * scale
    w1[-20:] = w0[-20:]
    chunks = [(slice(0, -40), 2), (slice(-40, -20), 1), (slice(-20, None), 1)]
    fast, slow, threads = ChangeStats(), ChangeStats(), torch.get_num_threads()
    try:
        for rows, count in chunks:
            torch.set_num_threads(count)
            fast.add_fused(w0[rows], w1[rows], parse_spec("int4"))
            slow.add_torch(w0[rows], w1[rows], parse_spec("int4"))
    finally:
        torch.set_num_threads(threads)
    assert fast.abs_change == slow.abs_change and fast.half_steps == slow.half_steps
    zeros = fast.abs_change.coarse()["zeros"]
    assert zeros == fast.elements - fast.changed >= 20 * 128  # the unchanged rows, at least
    assert_close(fast.figures(histogram=True), slow.figures(histogram=True))


def test_fused_kernel_rows_are_emptied_for_the_next_layer():
    """The kernel counts into histogram rows kept across calls: two layers fed chunk by chunk
    in alternation (chunks of several blocks, on 2 threads), and a layer after one whose
    changes are inf or NaN, count exactly what they count alone, and the rows are all zero
    after each call."""
    generator = torch.Generator().manual_seed(2)
    rows = 2 * fused.BLOCK_ELEMENTS // 128 + 5  # three blocks per chunk
    layers = [torch.randn(2, rows, 128, generator=generator) * s for s in (0.02, 3.0)]
    layers = [(w0, w0 + torch.randn(w0.shape, generator=generator) * 1e-3) for w0 in layers]
    spec = parse_spec("int4")
    alone = [_stats(ChangeStats.add_torch, w0, w1, "int4") for w0, w1 in layers]
    broken = torch.full((4, 128), float("inf")), torch.full((4, 128), float("nan"))
    _stats(ChangeStats.add_fused, *broken, "int4")
    assert not fused._ROWS.rows.any()
    alternating, threads = [ChangeStats(), ChangeStats()], torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        for chunk in range(2):
            for stats, (w0, w1) in zip(alternating, layers, strict=True):
                stats.add_fused(w0[chunk], w1[chunk], spec)
                assert not fused._ROWS.rows.any()
    finally:
        torch.set_num_threads(threads)
    for fast, slow in zip(alternating, alone, strict=True):
        assert fast.abs_change == slow.abs_change and fast.half_steps == slow.half_steps


def test_fused_kernel_rows_are_dropped_when_a_call_is_interrupted(monkeypatch):
    """Interrupted between the kernel and the adding of its counts (Ctrl-C), a call leaves no
    counts behind for the next layer."""
    w0 = torch.randn(8, 128) * 0.02
    w1 = w0 + 1e-3
    real_add_rows = Histogram.add_rows

    def interrupted(self, rows, first, last):
        raise KeyboardInterrupt

    monkeypatch.setattr(Histogram, "add_rows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _stats(ChangeStats.add_fused, w0, w1, "int4")
    monkeypatch.setattr(Histogram, "add_rows", real_add_rows)
    fast = _stats(ChangeStats.add_fused, w0, w1, "int4")
    slow = _stats(ChangeStats.add_torch, w0, w1, "int4")
    assert fast.abs_change == slow.abs_change and fast.half_steps == slow.half_steps


def test_both_paths_bin_every_weight_even_where_an_infinity_makes_nan():
    """A group holding inf has Δ = inf: its changes in half steps are 0, or inf/inf = NaN,
    whose sign bit x86 sets; binned as it is, NaN fell outside the histogram."""
    w0 = torch.randn(4, 64) * 0.02
    w0[1, 3] = float("inf")
    w1 = w0 + 1e-3
    w1[1, 3] = float("inf")  # inf - inf: the change itself is NaN
    w1[1, 4] = float("inf")  # in the same group, a change of inf: inf / inf = NaN, sign set
    w1[2, 5] = float("inf")  # in a finite group, a change of inf
    fast = _stats(ChangeStats.add_fused, w0, w1, "int4")
    slow = _stats(ChangeStats.add_torch, w0, w1, "int4")
    for stats in (fast, slow):
        for histogram in (stats.abs_change, stats.half_steps):
            coarse = histogram.coarse()
            assert coarse["zeros"] + sum(coarse["counts"]) == 256
    assert fast.abs_change == slow.abs_change and fast.half_steps == slow.half_steps


@pytest.mark.parametrize("spec", ["nf4", "fp4", "rtn-int8-tensor", "bnb-nf4"])
def test_specs_outside_the_fused_kernel_take_the_torch_path(spec):
    assert not fused.covers(parse_spec(spec), (48, 256))
