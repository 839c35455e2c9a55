"""quail: machine unlearning for language models that survives quantization.

Each main job is one plain function (the `quail` command is a thin layer over them):

    from quail import analyze, evaluate, quantize_model, run, unlearn

    unlearn(model, forget, retain, cfg)    an unlearned model         (quail/unlearning/api.py)
    analyze(original, unlearned, spec)     bucket overlap and more    (quail/analysis/compare.py)
    evaluate(model, data, specs)           metrics at each precision  (quail/evaluation/__init__.py)
    quantize_model(model, spec)            fake-quantized copy        (quail/quant/model.py)
    run(config, out)                       the whole study            (quail/study/__init__.py)

The functions are imported on first use (PEP 562), so `import quail` and `quail --help` do not
import torch and transformers.
"""

import importlib

__version__ = "0.1.0"

_HOMES = {
    "analyze": "quail.analysis.compare",
    "evaluate": "quail.evaluation",
    "parse_spec": "quail.quant",
    "quantize_model": "quail.quant",
    "run": "quail.study",
    "unlearn": "quail.unlearning.api",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'quail' has no attribute {name!r}")
    function = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = function  # later lookups skip this hook
    return function


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
