"""The study's figures as PNG files (matplotlib, no display needed)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from quail.quant import parse_spec  # noqa: E402


def forget_by_precision(results: dict, path: Path) -> Path:
    """Grouped bars: the headline forget metric of each method at each precision."""
    metric = results["headline_metric"]
    runs = {"original": results["original"]["metrics"]}
    runs.update({name: m["metrics"] for name, m in results["methods"].items()})
    specs = list(results["specs"])
    width = 0.8 / len(specs)
    figure, axes = plt.subplots(figsize=(max(6, 1.4 * len(runs)), 3.6))
    for i, spec in enumerate(specs):
        values = [runs[name].get(spec, {}).get(metric) for name in runs]
        values = [float("nan") if v is None else v for v in values]  # undefined: no bar
        positions = [j + (i - (len(specs) - 1) / 2) * width for j in range(len(runs))]
        axes.bar(positions, values, width, label=spec)
    axes.set_xticks(range(len(runs)), list(runs), rotation=20)
    axes.set_ylabel(f"{metric} (lower = forgotten)")
    axes.set_title(f"Forgetting by method and precision ({metric})")
    axes.legend(title="precision", fontsize=8)
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
    """Bucket overlap per layer under `spec`, one line per method."""
    figure, axes = plt.subplots(figsize=(7, 3.6))
    for name, method in results["methods"].items():
        layers = method.get("analysis", {}).get(spec, {}).get("layers", [])
        axes.plot([layer["bucket_overlap"] for layer in layers], marker=".", label=name)
    axes.set_xlabel("layer (model order)")
    axes.set_ylabel("bucket overlap")
    axes.set_title(f"Per-layer bucket overlap with the original under {spec}")
    axes.legend(fontsize=8)
    return _save(figure, path)


def change_histogram(results: dict, spec: str, path: Path) -> Path:
    """Distribution of |ΔW| / (Δ/2): mass right of 1 is what can cross a bucket boundary."""
    figure, axes = plt.subplots(figsize=(7, 3.6))
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
    axes.set_title(f"Weight changes in half quantization steps ({spec})")
    axes.legend(fontsize=8)
    return _save(figure, path)


def _save(figure, path: Path) -> Path:
    if figure.get_layout_engine() is None:
        figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
