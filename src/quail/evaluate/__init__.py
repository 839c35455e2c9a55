"""Evaluation at full precision and under every quantizer, and recovery between them."""

from quail.evaluate.recovery import Recovery, recovery
from quail.evaluate.suite import FORGET_METRICS, EvalData, evaluate_model, load_eval_data
from quail.quant import parse_spec, quantize_model


def evaluate(model, tokenizer, data: EvalData, specs=("fp",)) -> dict[str, dict[str, float]]:
    """{spec name: {metric: value}} for the model fake-quantized under each spec."""
    results = {}
    for text in specs:
        spec = parse_spec(text)
        results[spec.name] = evaluate_model(quantize_model(model, spec), tokenizer, data)
    return results


__all__ = [
    "FORGET_METRICS",
    "EvalData",
    "Recovery",
    "evaluate",
    "evaluate_model",
    "load_eval_data",
    "recovery",
]
