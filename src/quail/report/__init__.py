"""Results of a study as files a person reads: Markdown table, PNG plots, one HTML page."""

from pathlib import Path

from quail.io import atomic_write_text
from quail.report import plots
from quail.report.html import render_html
from quail.report.tables import markdown_pivot, markdown_table, utility_metric


def report_notes(results: dict) -> list[str]:
    missing = results.get("missing")  # set by `quail report` on an unfinished study
    partial = [f"unfinished study: {len(missing)} cells not written yet (–)"] if missing else []
    return partial + [
        f"base model: {results.get('base')}; data: {results.get('data')}",
        f"recovery = (F_u(b) − F_u(fp)) / (F_orig(fp) − F_u(fp)) on {results['headline_metric']}:"
        " 0 = nothing came back under quantization, 1 = everything",
        f"bucket overlap and update survival under {', '.join(results['analysis_specs'])}",
    ]


def summary_markdown(results: dict) -> str:
    """The two tables a reader wants first: forgetting (with recovery) and utility, by
    precision. The CLI prints these at the end of a study."""
    utility = utility_metric(results)
    return (
        f"\n## {results['headline_metric']} by precision (recovery in brackets)\n\n"
        + markdown_pivot(results)
        + f"\n## {utility} by precision\n\n"
        + markdown_pivot(results, utility)
    )


def write_report(results: dict, out_dir) -> dict[str, Path]:
    """Write results.md, plots/*.png and report.html into `out_dir`; return their paths. Both
    pages lead with the recovery heatmap, when there is one."""
    out_dir = Path(out_dir)
    plot_dir = out_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    lead = plots.recovery_heatmap(results, plot_dir / "recovery.png")
    figures = [plots.frontier(results, plot_dir / "frontier.png")]
    for spec in results["analysis_specs"]:
        slug = spec.replace("/", "_")
        figures.append(plots.layer_overlap(results, spec, plot_dir / f"layer_overlap_{slug}.png"))
        figures.append(
            plots.change_histogram(results, spec, plot_dir / f"change_histogram_{slug}.png")
        )
    figures = [path for path in figures if path is not None]
    notes = report_notes(results)
    markdown = f"# quail study: {results.get('name', '')}\n\n" + "".join(f"- {n}\n" for n in notes)
    markdown += f"\n![{lead.stem}](plots/{lead.name})\n" if lead else ""
    markdown += summary_markdown(results)
    markdown += "\n## All metrics\n\n" + markdown_table(results)
    markdown += "\n## Figures\n\n" + "".join(f"![{p.stem}](plots/{p.name})\n" for p in figures)
    atomic_write_text(out_dir / "results.md", markdown)
    atomic_write_text(out_dir / "report.html", render_html(results, notes, lead, figures))
    images = [lead, *figures] if lead else figures
    return {"markdown": out_dir / "results.md", "html": out_dir / "report.html", "plots": images}
