"""How much of an unlearning update survives quantization: bucket overlap, weight-change
statistics and update survival, per layer and for the whole model (docs/ANALYSIS.md)."""

from quail.analysis.compare import AnalysisResult, analyze

__all__ = ["AnalysisResult", "analyze"]
