"""quail: machine unlearning for language models that survives quantization.

Each main job is one plain function (the `quail` command is a thin layer over them):

    from quail import analyze, evaluate, quantize_model, run, unlearn

    unlearn(model, forget, retain, cfg)    an unlearned model         (quail/unlearn/api.py)
    analyze(original, unlearned, spec)     bucket overlap and more    (quail/analysis/compare.py)
    evaluate(model, data, specs)           metrics at each precision  (quail/evaluate/__init__.py)
    quantize_model(model, spec)            fake-quantized copy        (quail/quant/model.py)
    run(config, out)                       the whole study            (quail/study/__init__.py)

`quail.unlearn` and `quail.evaluate` name these functions, not the subpackages they live in:
reach a subpackage's other parts with an import (`from quail.unlearn.methods import METHODS`).
Importing quail therefore imports torch and transformers.
"""

from quail.analysis.compare import analyze
from quail.evaluate import evaluate
from quail.quant import parse_spec, quantize_model
from quail.study import run
from quail.unlearn.api import unlearn

__version__ = "0.1.0"

__all__ = ["analyze", "evaluate", "parse_spec", "quantize_model", "run", "unlearn"]
