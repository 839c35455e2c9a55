"""The user's own `text,label` classification data: a CSV, a JSONL, or a Hugging Face name.

This is how a real tweet data set replaces the built-in claims. `datasets` is imported only
when a hub name is given, so nothing here needs it (or the network) otherwise.
"""

from pathlib import Path

from quail.data.jsonl import read_csv, read_jsonl
from quail.data.load import check_labels
from quail.errors import QuailError


def _from_hub(name: str, split: str, columns: tuple[str, str]) -> list[dict]:
    try:
        import datasets
    except ImportError as e:
        raise QuailError(
            f"{name!r} is not a file, and loading it as a Hugging Face data set needs "
            "`pip install datasets`"
        ) from e
    ds = datasets.load_dataset(name, split=split)
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise QuailError(
            f"{name}: missing column(s) {', '.join(missing)}; pass --text-column/--label-column"
        )
    return [{"text": r[columns[0]], "label": r[columns[1]]} for r in ds]


def load_classification(
    source: str | Path,
    labels: tuple[str, ...] | None = None,
    split: str = "train",
    text_column: str = "text",
    label_column: str = "label",
) -> list[dict]:
    """Records {"text", "label"} with labels as strings; `labels` declares the allowed set."""
    columns = (text_column, label_column)
    path = Path(source)
    if path.suffix == ".csv":
        rows = read_csv(path, columns)
    elif path.suffix == ".jsonl":
        rows = read_jsonl(path, columns)
    elif path.exists():
        raise QuailError(f"{path}: unsupported file type; use .csv or .jsonl")
    else:
        rows = _from_hub(str(source), split, columns)
    records = [{"text": str(r[text_column]), "label": str(r[label_column])} for r in rows]
    if not records:
        raise QuailError(f"{source}: no records; the file needs a row per example")
    if labels is not None:
        check_labels(records, tuple(labels), str(source))
    return records
