"""The results table in the shape of MUSE's: one row per method and precision."""

COLUMNS = (  # (metric, header, decimals); ↓ = lower means more forgotten, ↑ = higher is better
    ("verbmem_forget", "VerbMem forget ↓", 1),
    ("verbmem_holdout", "VerbMem holdout", 1),
    ("knowmem_forget", "KnowMem forget ↓", 1),
    ("em_forget", "EM forget ↓", 2),
    ("em_forget_para", "EM forget para ↓", 2),
    ("knowmem_retain", "KnowMem retain ↑", 1),
    ("em_retain", "EM retain ↑", 2),
    ("mia_auc", "MIA AUC", 2),
    ("privleak", "PrivLeak %", 1),
    ("ppl_retain", "PPL retain", 2),
    ("ppl_general", "PPL general", 2),
    ("kld_retain", "KLD retain", 4),  # fidelity to the same model at fp (quail.evaluation.fidelity)
    ("top1_retain", "Top-1 retain", 3),
    ("ppl_ratio_retain", "PPL ratio retain", 3),
    ("kld_general", "KLD general", 4),
    ("top1_general", "Top-1 general", 3),
    ("ppl_ratio_general", "PPL ratio general", 3),
    ("acc_claims_forget", "Acc claims forget ↓", 2),
    ("acc_claims_retain", "Acc claims retain ↑", 2),
    ("acc_claims_test", "Acc claims test ↑", 2),
)


def _cell(value, decimals: int) -> str:
    return "–" if value is None else f"{value:.{decimals}f}"


def table_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    """Headers and rows: the original model first, then each method, at every precision.
    Recovery is of the headline forget metric; overlap and survival come from the analysis."""
    headline = results["headline_metric"]
    present = [c for c in COLUMNS if any(c[0] in m for r in _runs(results) for m in r[1].values())]
    headers = ["Method", "Precision", *(h for _, h, _ in present)]
    headers += [f"Recovery ({headline})", "Bucket overlap", "Update survival"]
    rows = []
    for name, metrics, recovery, analysis in _runs(results):
        for spec, values in metrics.items():
            summary = analysis.get(spec, {}).get("summary", {})
            rows.append(
                [name, spec]
                + [_cell(values.get(key), d) for key, _, d in present]
                + [
                    recovery_cell(recovery.get(spec, {}).get(headline)),
                    _cell(summary.get("bucket_overlap"), 4),
                    _cell(summary.get("update_survival"), 2),
                ]
            )
    return headers, rows


def recovery_cell(entry) -> str:
    if entry is None:
        return "–"
    return "undefined" if entry["value"] is None else f"{entry['value']:.2f}"


def _runs(results: dict):
    yield "original", results["original"]["metrics"], {}, {}
    for name, method in results["methods"].items():
        yield name, method["metrics"], method.get("recovery", {}), method.get("analysis", {})


def markdown_table(results: dict) -> str:
    headers, rows = table_rows(results)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def pivot_rows(results: dict, metric: str | None = None) -> tuple[list[str], list[list[str]]]:
    """One metric (default: the headline forget metric) with one column per precision
    (reference or backend) and one row per model; a forget metric's quantized cells carry
    their recovery in brackets."""
    metric = metric or results["headline_metric"]
    headers = ["Method", *results["specs"]]
    rows = []
    for name, metrics, recovery, _ in _runs(results):
        row = [name]
        for spec in results["specs"]:
            cell = _cell(metrics.get(spec, {}).get(metric), 2)
            entry = recovery.get(spec, {}).get(metric)
            if entry is not None:
                cell += f" ({recovery_cell(entry)})"
            row.append(cell)
        rows.append(row)
    return headers, rows


def utility_metric(results: dict) -> str:
    """The retain-side counterpart of the headline metric, shown beside it."""
    return (
        "acc_claims_retain" if results["headline_metric"].startswith("acc_") else "knowmem_retain"
    )


def markdown_pivot(results: dict, metric: str | None = None) -> str:
    headers, rows = pivot_rows(results, metric)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
