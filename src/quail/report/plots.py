"""The study's figures as PNG files (matplotlib, no display needed)."""

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from quail.quant import parse_spec  # noqa: E402
from quail.report.tables import recovery_cell  # noqa: E402


def recovery_heatmap(results: dict, path: Path) -> Path | None:
    """Method x quantized precision, coloured and written in each cell: how much of what each
    method forgot at fp comes back under each format (0 = none, 1 = all; "undefined": nothing
    was forgotten at fp; "–": not written yet). None without a method or a quantized precision."""
    metric = results["headline_metric"]
    specs = [spec for spec in results["specs"] if not parse_spec(spec).is_fp]
    if not results["methods"] or not specs:
        return None
    entries = [
        [method.get("recovery", {}).get(spec, {}).get(metric) for spec in specs]
        for method in results["methods"].values()
    ]
    values = np.array(
        [
            [np.nan if e is None or e["value"] is None else e["value"] for e in row]
            for row in entries
        ]
    )
    figure, axes = plt.subplots(
        figsize=(max(6, 2.5 + 1.1 * len(specs)), max(3, 1.6 + 0.45 * len(entries))),
        layout="constrained",
    )
    image = axes.imshow(values, cmap="Reds", vmin=0, vmax=1, aspect="auto")
    for (i, j), value in np.ndenumerate(values):
        color = "white" if value > 0.6 else "black"  # nan compares False
        axes.text(j, i, recovery_cell(entries[i][j]), ha="center", va="center", color=color)
    axes.set_xticks(range(len(specs)), specs, rotation=30, ha="right", fontsize=8)
    axes.set_yticks(range(len(entries)), list(results["methods"]), fontsize=8)
    figure.colorbar(image, ax=axes, label="recovery")
    axes.set_title(f"Recovery of {metric} under quantization", fontsize=10)
    return _save(figure, path)


def frontier(results: dict, path: Path) -> Path | None:
    """Forgetting against utility along each run, one panel per format the runs checked:
    a method that forgets more only by giving up more retain sits on the same curve, so
    methods are compared at matched utility, not at one shared budget. None if no run
    checked (quail always does; `trace_every` makes the others)."""
    traces = {}  # format -> method -> [(retain, forget)] in step order
    for name, method in results["methods"].items():
        for check in method.get("unlearn", {}).get("checks", []):
            for spec, score in check["scores"].items():
                points = traces.setdefault(parse_spec(spec).name, {}).setdefault(name, [])
                points.append((score["retain"], score["forget"]))
    if not traces:
        return None
    formats = sorted(traces, key=lambda spec: spec != "fp")[:4]
    figure, panels = plt.subplots(
        1, len(formats), figsize=(4.2 * len(formats), 4.2), squeeze=False, layout="constrained"
    )
    for axes, spec in zip(panels[0], formats, strict=True):
        for name, points in traces[spec].items():
            retain, forget = zip(*points, strict=True)
            axes.plot(retain, forget, marker=".", label=name)
            axes.plot(retain[-1], forget[-1], marker="*", markersize=11, color="black")
        axes.set_title(spec, fontsize=10)
        axes.set_xlabel("retain score (higher = utility kept)")
        axes.invert_xaxis()  # runs move right to left as they unlearn
        axes.grid(alpha=0.3)
    panels[0][0].set_ylabel("forget score (lower = forgotten)")
    handles, labels = panels[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8)
    figure.suptitle("Forgetting against utility along each run (★: where it stopped)")
    return _save(figure, path)


def layer_overlap(results: dict, spec: str, path: Path) -> Path:
    """Bucket overlap per layer under `spec`, one line per method, layers in model order and
    named by block and module ("3.q_proj")."""
    figure, axes = plt.subplots(figsize=(10, 4.2), layout="constrained")
    names = []
    for name, method in results["methods"].items():
        layers = method.get("analysis", {}).get(spec, {}).get("layers", [])
        names = names or [layer["name"] for layer in layers]
        axes.plot([layer["bucket_overlap"] for layer in layers], marker=".", label=name)
    labels = [layer_label(name) for name in names]
    ticks = list(range(len(labels)))
    if len(ticks) > 60:  # a tick on each block's first layer (every few blocks' if many)
        firsts = [i for i in ticks if i == 0 or _block(labels[i]) != _block(labels[i - 1])]
        ticks = firsts[:: max(1, len(firsts) // 60)]
    axes.set_xticks(ticks, [labels[i] for i in ticks], rotation=90, fontsize=7)
    axes.set_xlabel("layer (block.module, in model order)")
    axes.set_ylabel("bucket overlap")
    axes.set_title(f"Per-layer bucket overlap with the original under {spec}", fontsize=10)
    figure.legend(loc="outside right upper", fontsize=8)
    return _save(figure, path)


def layer_label(name: str) -> str:
    """ "model.layers.3.self_attn.q_proj" -> "3.q_proj" (a GGUF file's "blk.3.attn_q.weight"
    -> "3.attn_q"); a layer outside the blocks keeps its last part ("lm_head")."""
    parts = [part for part in name.split(".") if part != "weight"]
    block = next((part for part in parts if part.isdigit()), None)
    return parts[-1] if block is None else f"{block}.{parts[-1]}"


def _block(label: str) -> str:
    return label.partition(".")[0]


def change_histogram(results: dict, spec: str, path: Path) -> Path:
    """Distribution of |ΔW| / (Δ/2): mass right of 1 is what can cross a bucket boundary."""
    figure, axes = plt.subplots(figsize=(8, 3.6), layout="constrained")
    for name, method in results["methods"].items():
        summary = method.get("analysis", {}).get(spec, {}).get("summary", {})
        histogram = summary.get("change_in_half_steps", {}).get("histogram")
        if histogram and histogram["counts"]:  # an unchanged model has no changes to draw
            edges, counts = histogram["edges"], histogram["counts"]
            axes.stairs(counts, edges, label=name)
    axes.set_xscale("log")
    axes.axvline(1.0, color="black", linestyle="--", linewidth=1)
    axes.set_xlabel("|W1 − W0| / (Δ/2)")
    axes.set_ylabel("weights")
    axes.set_title(f"Weight changes in half quantization steps ({spec})", fontsize=10)
    figure.legend(loc="outside right upper", fontsize=8)
    return _save(figure, path)


def _save(figure, path: Path) -> Path:
    if figure.get_layout_engine() is None:
        figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
