"""The terminal view of an analysis: a per-layer rich table and a one-line summary."""

from rich import box
from rich.table import Table

from quail.analysis.compare import AnalysisResult

COLUMNS = (  # header, field (None: the median change in half steps), format
    ("overlap", "bucket_overlap", "{:.5f}"),
    ("fixed", "fixed_scale_overlap", "{:.5f}"),
    ("≥Δ/2", "half_step_fraction", "{:.3%}"),
    ("med/(Δ/2)", None, "{:.2g}"),
    ("survival", "update_survival", "{:.3f}"),
    ("cosine", "update_cosine", "{:.3f}"),
)
CAPTION = (
    "overlap: same bucket, each model on its own scales; fixed: on the original's scales; "
    "≥Δ/2: weights moved at least half a step; med/(Δ/2): median move in half steps; "
    "survival: ⟨Q(W1)−Q(W0), W1−W0⟩/‖W1−W0‖²; —: undefined (no change)"
)


def layer_table(result: AnalysisResult) -> Table:
    table = Table(
        title=f"{result.unlearned} vs {result.original} under {result.spec}",
        caption=CAPTION,
        box=box.SIMPLE_HEAD,
    )
    table.add_column("layer", overflow="fold")
    for title, _, _ in COLUMNS:
        table.add_column(title, justify="right", no_wrap=True)
    for layer in result.layers:
        table.add_row(layer["name"], *cells(layer))
    table.add_section()
    table.add_row("whole model", *cells(result.summary))
    return table


def cells(figures: dict) -> list[str]:
    out = []
    for _, key, form in COLUMNS:
        value = figures[key] if key else figures["change_in_half_steps"]["p50"]
        out.append("—" if value is None else form.format(value))
    return out


def summary_line(result: AnalysisResult) -> str:
    s = result.summary
    if s["fixed_scale_overlap"] is None:  # GGUF codes without the weights they came from
        return (
            f"{result.spec}: bucket overlap {s['bucket_overlap']:.5f} over {s['elements']:,} "
            f"weights in {result.counts['layers']} tensors (the other figures need the fp "
            "weights: --original-fp, --unlearned-fp)"
        )
    survival = s["update_survival"]
    survival = "undefined (no change)" if survival is None else f"{survival:.3f}"
    return (
        f"{result.spec}: bucket overlap {s['bucket_overlap']:.5f}, fixed-scale overlap "
        f"{s['fixed_scale_overlap']:.5f}, {s['half_step_fraction']:.3%} of weights moved "
        f">= Δ/2, update survival {survival} over {s['elements']:,} weights in "
        f"{result.counts['layers']} layers"
    )
