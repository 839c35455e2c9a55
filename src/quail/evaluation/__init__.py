"""Evaluation at full precision and under every quantizer, and recovery between them."""

from contextlib import contextmanager
from pathlib import Path

import torch

from quail.evaluation.fidelity import Reference, fidelity, fp_reference
from quail.evaluation.recovery import Recovery, recovery
from quail.evaluation.suite import (
    FORGET_METRICS,
    EvalData,
    calibration_texts,
    evaluate_model,
    load_eval_data,
    load_file_eval_data,
)
from quail.quant import load_quantized, parse_spec


def evaluate(
    model,
    data,
    specs=("fp",),
    tokenizer=None,
    task: str = "knowledge",
    limit: int | None = None,
    reference: Reference | None = None,
) -> dict[str, dict[str, float]]:
    """{spec name: {metric: value}} for the model quantized under each spec: our reference
    specs fake-quantize, backend specs (bnb-nf4, hqq-int4-g64, ...) run the backend's layers,
    GGUF specs (gguf-q4_k_m, ...) run llama.cpp on the file its converter and quantizer write.
    GPTQ and AWQ specs calibrate on the data's forget + retain text (`calibration_texts`).
    Reference-spec copies run on the GPU when there is one; backend layers stay where their
    adapters put them (checked on CPU only).

    Beside the data's metrics, every spec but fp gets the fidelity metrics
    (quail.evaluation.fidelity: KL divergence, top-1 agreement, perplexity ratio against `model`
    at full precision) on retain and held-out text; `reference` (`fp_reference(model, ...)`)
    saves computing the fp side again when the same model is evaluated call after call.

    `model` is a model folder or an in-memory model (then pass `tokenizer`); `data` is a data
    folder or an EvalData.
    """
    from quail.models import check_finite, check_vocabulary, load_model, load_tokenizer

    label = "the model"
    if isinstance(model, (str, Path)):
        label = f"model {model}"
        model, tokenizer = load_model(model, dtype="float32"), tokenizer or load_tokenizer(model)
    check_finite(model, label)
    check_vocabulary(model, tokenizer, label)
    if not isinstance(data, EvalData):
        data = load_eval_data(data, task, limit)
    results = {}
    for text in specs:
        spec = parse_spec(text)
        if not spec.is_fp and reference is None:
            reference = fp_reference(model, tokenizer, data)
        with _quantized(model, tokenizer, spec, data) as quantized:
            results[spec.name] = evaluate_model(quantized, tokenizer, data)
            if not spec.is_fp:
                results[spec.name].update(fidelity(quantized, reference))
    return results


@contextmanager
def _quantized(model, tokenizer, spec, data):
    """`model` under `spec`: a GGUF spec's file opened in llama.cpp (closed afterwards), other
    specs' copy (on the GPU when there is one, for reference specs)."""
    if (spec.backend or "").startswith("gguf-"):
        from quail.gguf.runtime import export_and_load

        llama = export_and_load(model, tokenizer, spec.backend.removeprefix("gguf-"))
        try:
            yield llama
        finally:
            llama.close()
        return
    quantized = load_quantized(
        model,
        spec,
        calibration=calibration_texts(data) or None,
        tokenizer=tokenizer,
        dequantize_once=True,
    )
    if spec.backend is None and torch.cuda.is_available():
        quantized.to("cuda")
    yield quantized


__all__ = [
    "FORGET_METRICS",
    "EvalData",
    "Recovery",
    "Reference",
    "calibration_texts",
    "evaluate",
    "evaluate_model",
    "fidelity",
    "fp_reference",
    "load_eval_data",
    "load_file_eval_data",
    "recovery",
]
