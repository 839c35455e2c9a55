"""quail: machine unlearning for language models that survives quantization.

The main jobs are one call each (the `quail` command is a thin layer over them):

    quail.quantize_model(model, spec)          fake-quantized copy        (quail.quant)
    quail.analyze(original, unlearned, spec)   bucket overlap and more    (quail.analysis)
    quail.unlearn(model, forget, retain, cfg)  an unlearned model         (quail.unlearn)
    quail.evaluate(model, data, specs)         metrics at each precision  (quail.evaluate)
    quail.run(config, out)                     the whole study            (quail.study)

The names load their subpackage (and torch) on first use, so `import quail` stays fast.
"""

import importlib

__version__ = "0.1.0"

_ENTRY_POINTS = {
    "quantize_model": ("quail.quant", "quantize_model"),
    "parse_spec": ("quail.quant", "parse_spec"),
    "analyze": ("quail.analysis", None),
    "unlearn": ("quail.unlearn", None),
    "evaluate": ("quail.evaluate", None),
    "run": ("quail.study", "run"),
}


def __getattr__(name: str):
    if name not in _ENTRY_POINTS:
        raise AttributeError(f"module 'quail' has no attribute {name!r}")
    module_name, attribute = _ENTRY_POINTS[name]
    module = importlib.import_module(module_name)
    return module if attribute is None else getattr(module, attribute)
