"""GPTQ and AWQ through gptqmodel: model-level quantization calibrated on text.

Both are model-level: they need the activations of calibration text at every layer, so a
single weight tensor has no GPTQ or AWQ codes of its own. Hence two entry points:

- `load_model(model, spec, calibration, tokenizer)` (what `load_quantized` calls, and so what
  evaluation runs): the whole model quantized by gptqmodel (GPTQ's error-compensating column
  updates, or AWQ's activation-aware scaling and clipping) on the calibration text, saved as a
  gptqmodel checkpoint in a temporary folder and loaded back with gptqmodel's CPU kernels.
- `codes(weight, spec)` (per tensor: analysis, the straight-through `--quant` of unlearning):
  round-to-nearest on the grid the backend quantizes onto, not its calibrated codes.
  GPTQ (symmetric, gptqmodel's default): `Δ = 2·absmax / (2^B − 1)` with zero point 2^(B−1),
  i.e. codes −2^(B−1)..2^(B−1)−1 and `Δ = absmax/7.5` at 4 bits (compressed-tensors' grid).
  AWQ (symmetric, gptqmodel's default): `Δ = absmax / (2^(B−1) − 1)`, our `rtn-int<B>-g<G>-sym`.

gptqmodel is imported only when a model is quantized (its import takes seconds and sets
process-wide environment variables); `codes` needs only that it is installed.
"""

import contextlib
import importlib.util
import io
import logging
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from quail.errors import QuailError
from quail.quant.grouping import to_groups
from quail.quant.spec import QuantSpec
from quail.quant.tensor import QuantizedTensor, quantize_tensor


def _installed(name: str) -> bool:
    if name in sys.modules:
        return sys.modules[name] is not None
    return importlib.util.find_spec(name) is not None


if not _installed("gptqmodel"):
    raise ImportError("No module named 'gptqmodel'")

SEQUENCE_LENGTH = 256  # tokens per calibration sample (the text is concatenated, then cut)
MAX_SAMPLES = 128  # calibration samples at most (32k tokens)
GENERIC_TEXT = Path(__file__).with_name("calibration.txt")


def codes(weight: torch.Tensor, spec: QuantSpec) -> QuantizedTensor:
    """Round-to-nearest on the backend's grid (see the module docstring)."""
    if spec.backend == "awq":
        return replace(quantize_tensor(weight, replace(spec, backend=None)), spec=spec)
    groups, pad = to_groups(weight, spec)
    levels = 2**spec.bits - 1
    absmax = groups.abs().amax(dim=1, keepdim=True)
    # gptqmodel gives an all-zero group the range [-1, 1]
    scale = torch.where(absmax > 0, 2 * absmax, torch.full_like(absmax, 2.0)) / levels
    low, high = -(2 ** (spec.bits - 1)), 2 ** (spec.bits - 1) - 1
    group_codes = torch.round(groups / scale).clamp_(low, high).to(torch.int8)
    return QuantizedTensor(spec, weight.shape, pad, group_codes, scale)


def convert(linear: nn.Linear, spec: QuantSpec) -> nn.Module:
    raise QuailError(
        f"{spec.name} quantizes whole models with calibration text, not single layers: "
        "use load_quantized(model, spec, calibration=texts, tokenizer=tokenizer)"
    )


def calibration_samples(texts, tokenizer, max_positions: int | None = None) -> list[torch.Tensor]:
    """The texts tokenized, joined with EOS and cut into samples of SEQUENCE_LENGTH tokens (the
    last one shorter), as GPTQ calibrates on fixed windows of running text."""
    length = min(SEQUENCE_LENGTH, max_positions or SEQUENCE_LENGTH)
    stream: list[int] = []
    eos = tokenizer.eos_token_id
    for text in texts:
        stream.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        if eos is not None:
            stream.append(eos)
        if len(stream) >= length * MAX_SAMPLES:
            break
    if len(stream) < 2:
        raise QuailError("the calibration text is empty: pass texts the tokenizer can encode")
    cuts = range(0, min(len(stream), length * MAX_SAMPLES), length)
    return [torch.tensor(stream[start : start + length]) for start in cuts]


def generic_texts() -> list[str]:
    """The fallback calibration text shipped with quail: plain English paragraphs."""
    return [p for p in GENERIC_TEXT.read_text("utf-8").split("\n\n") if p.strip()]


def _threads() -> None:
    # gptqmodel sizes a CPU worker pool from the core count; on 2 cores its default (1) is
    # smaller than its own model-loader pool (2) and the pool refuses to start.
    if (os.cpu_count() or 1) <= 2:
        os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")


@contextlib.contextmanager
def _quiet():
    """gptqmodel prints banners, tables and progress bars, thousands of lines per model: keep
    them out of quail's output, and show their tail only when quantization fails."""
    captured = io.StringIO()
    logging.getLogger("tokenicer").setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            yield
    except Exception:
        sys.stderr.write(captured.getvalue()[-4000:])
        raise


@contextlib.contextmanager
def _working_directory(folder: Path):
    """gptqmodel writes per-layer logs to ./logs: keep them in the temporary folder."""
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def _dtype(model: nn.Module, spec: QuantSpec) -> torch.dtype:
    """GPTQ keeps the model's dtype (gptqmodel's CPU kernel runs float32); gptqmodel's AWQ
    kernels take only float16/bfloat16, so a float32 model runs AWQ in float16."""
    dtype = next(model.parameters()).dtype
    if spec.backend == "awq" and dtype not in (torch.float16, torch.bfloat16):
        return torch.float16
    return dtype


def _device(model: nn.Module) -> str:
    device = next(model.parameters()).device
    return "cpu" if device.type == "cpu" else str(device)


def _save_tokenizer(tokenizer, folder: Path, vocab_size: int) -> None:
    """gptqmodel's loader insists on a tokenizer in the folder; calibration is tokenized by us,
    so without one a stand-in word-level tokenizer is written."""
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
        return
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<unk>": 1, "<eos>": 2 % max(vocab_size, 3)}
    stand_in = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    PreTrainedTokenizerFast(
        tokenizer_object=stand_in, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>"
    ).save_pretrained(folder)


def quantize_to_folder(
    model: nn.Module,
    spec: QuantSpec,
    samples: list[torch.Tensor],
    out: Path,
    tokenizer=None,
    include_lm_head: bool = False,
) -> None:
    """Quantize `model` with gptqmodel on the token samples and save the checkpoint in `out`."""
    _threads()
    with _quiet():
        from gptqmodel import BACKEND, AWQConfig, GPTQConfig, GPTQModel

    source = out.parent / (out.name + "-source")
    model.save_pretrained(source, safe_serialization=True)
    _save_tokenizer(tokenizer, source, model.config.vocab_size)
    config = (GPTQConfig if spec.backend == "gptq" else AWQConfig)(
        bits=spec.bits,
        group_size=spec.group_size,
        sym=spec.symmetric,
        lm_head=include_lm_head,
        offload_to_disk=False,
    )
    device = _device(model)
    calibration = [
        {"input_ids": s[None], "attention_mask": torch.ones_like(s)[None]} for s in samples
    ]
    kernel = {"backend": BACKEND.AWQ_TORCH} if spec.backend == "awq" and device == "cpu" else {}
    with _working_directory(out.parent), _quiet():
        quantizer = GPTQModel.load(str(source), config, device=device, dtype=_dtype(model, spec))
        quantizer.quantize(calibration, batch_size=1, calibration_data_min_length=1, **kernel)
        # the in-memory model holds GPTQ's v1 zero points under a v2 kernel (every weight one
        # step off, gptqmodel 7.6); the saved checkpoint loads correctly, so it is reloaded
        quantizer.save(str(out))


def load_folder(folder: Path, spec: QuantSpec, dtype: torch.dtype, device: str = "cpu"):
    """The Hugging Face model of a gptqmodel checkpoint, its layers on gptqmodel's kernels."""
    _threads()
    with _quiet():
        from gptqmodel import GPTQModel

        return GPTQModel.load(str(folder), device=device, dtype=dtype).model.eval()


@torch.no_grad()
def load_model(
    model: nn.Module,
    spec: QuantSpec,
    calibration=None,
    tokenizer=None,
    include_lm_head: bool = False,
) -> nn.Module:
    """`model` quantized by GPTQ/AWQ on `calibration` (texts, or token id tensors; None: the
    generic text shipped with quail, which needs `tokenizer`). The model is left untouched."""
    if calibration is None:
        calibration = generic_texts()
    if all(isinstance(item, str) for item in calibration):
        if tokenizer is None:
            raise QuailError(f"{spec.name} calibrates on text: pass the model's tokenizer")
        positions = getattr(model.config, "max_position_embeddings", None)
        samples = calibration_samples(calibration, tokenizer, positions)
    else:
        samples = [torch.as_tensor(ids).reshape(-1) for ids in calibration]
    with tempfile.TemporaryDirectory(prefix="quail-gptq-") as tmp:
        out = Path(tmp) / "quantized"
        quantize_to_folder(model, spec, samples, out, tokenizer, include_lm_head)
        return load_folder(out, spec, _dtype(model, spec), _device(model))
