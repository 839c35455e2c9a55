"""quail: machine unlearning for language models that survives quantization."""

__version__ = "0.1.0"
