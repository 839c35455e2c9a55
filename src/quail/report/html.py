"""One self-contained HTML page: tables and images inlined, no external resources."""

import base64
import html
from pathlib import Path

from quail.report.tables import pivot_rows, table_rows, utility_metric

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f3f3f3; } td:first-child, td:nth-child(2) { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 12px; }
"""


def _table(table_id: str, headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table id='{table_id}'><tr>{head}</tr>{body}</table>"


def _figure(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (
        f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}"></figure>'
    )


def render_html(results: dict, notes: list[str], lead: Path | None, figures: list[Path]) -> str:
    """The page: notes, the `lead` figure (the recovery heatmap), the tables, the figures."""
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    title = html.escape(f"quail study: {results.get('name', '')}")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{STYLE}</style></head><body><h1>{title}</h1>"
        f"<ul>{items}</ul>"
        f"{_figure(lead) if lead else ''}"
        f"<h2>{html.escape(results['headline_metric'])} by precision (recovery)</h2>"
        f"{_table('pivot', *pivot_rows(results))}"
        f"<h2>{html.escape(utility_metric(results))} by precision</h2>"
        f"{_table('utility', *pivot_rows(results, utility_metric(results)))}"
        f"<h2>All metrics</h2>{_table('results', *table_rows(results))}"
        f"<h2>Figures</h2>{''.join(_figure(p) for p in figures)}"
        f"<h2>Configuration</h2><pre>{html.escape(results.get('config_yaml', ''))}</pre>"
        "</body></html>\n"
    )
