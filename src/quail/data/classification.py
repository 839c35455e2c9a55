"""The user's own classification data: `text,label` records in forget, retain and test files.

This is how a real data set (tweets labelled misinformation or reliable, reviews by sentiment)
replaces the built-in claims. Each file is JSONL, JSON, CSV or Parquet with a `text` and a
`label` column (an optional `campaign` column is kept); other columns are ignored. forget: the
records whose learned labels must go; retain: the records whose labels must stay; test
(optional): records never trained on, whose accuracy measures what the classifier generalises.
The sets become a data folder's `claims.jsonl` (docs/DATA.md), so a study, `quail base --task
claims` and `--data DIR --task claims` read them as they read the built-in claims.
"""

from pathlib import Path

from quail.data.files import read_records
from quail.errors import QuailError

SPLITS = ("forget", "retain", "test")


def read_labelled(path: str | Path) -> list[dict]:
    """Every record of one file as {"text", "label", "campaign"}; a label may be a number."""
    records = read_records(path)
    if not records:
        raise QuailError(f"{path}: no records; the file needs one text,label example per row")
    out = []
    for number, record in enumerate(records, start=1):
        where = f"{path}, record {number}"
        if not {"text", "label"} <= set(record):
            raise QuailError(
                f"{where}: columns {', '.join(sorted(record)) or 'none'}; a classification "
                "record needs text,label"
            )
        text, label = record["text"], record["label"]
        if not isinstance(text, str) or not text.strip():
            raise QuailError(f"{where}: text must be non-empty text, got {text!r}")
        if isinstance(label, bool) or not isinstance(label, str | int):
            raise QuailError(f"{where}: label must be a word or a whole number, got {label!r}")
        label = str(label).strip()
        if not label or "\n" in label:
            raise QuailError(f"{where}: label must be one line of text, got {record['label']!r}")
        campaign = str(record.get("campaign") or "none")
        out.append({"text": text.strip(), "label": label, "campaign": campaign, "from": where})
    return out


def load_classification(paths: dict[str, list[Path]]) -> dict[str, list[dict]]:
    """{split: records} of the forget, retain and (optional) test files, checked as a whole: no
    empty set, at least two labels, no label in test the model never trained on, no text in
    two sets or twice with different labels."""
    if not paths.get("forget"):
        raise QuailError("no forget file: give the text,label records to forget (forget.csv)")
    if not paths.get("retain"):
        raise QuailError(
            "no retain file: the classifier needs text,label records to keep (retain.csv)"
        )
    sets = {split: [r for p in paths.get(split, ()) for r in read_labelled(p)] for split in SPLITS}
    trained = {r["label"] for split in ("forget", "retain") for r in sets[split]}
    if len(trained) < 2:
        raise QuailError(
            f"the forget and retain files hold one label, {trained.pop()!r}: a classifier "
            "needs two or more; add records of the other labels to the retain file"
        )
    for record in sets["test"]:
        if record["label"] not in trained:
            raise QuailError(
                f"{record['from']}: label {record['label']!r} is in no forget or retain record, "
                "so the model never learns it; fix the label or drop the record"
            )
    _check_texts(sets)
    return sets


def _check_texts(sets: dict[str, list[dict]]) -> None:
    """A text in two sets would be trained on and forgotten (or tested) at once; twice in one
    set with two labels, it would be taught both."""
    seen = {}
    for split in SPLITS:
        for record in sets[split]:
            first, first_split = seen.setdefault(record["text"], (record, split))
            if first is record:
                continue
            if first_split != split:
                raise QuailError(
                    f"{record['from']} repeats the text of {first['from']} ({first_split} and "
                    f"{split}): keep each text in one set"
                )
            if first["label"] != record["label"]:
                raise QuailError(
                    f"{record['from']} repeats the text of {first['from']} with another "
                    "label: keep one"
                )


def claim_records(sets: dict[str, list[dict]]) -> list[dict]:
    """The sets as the rows of a data folder's claims.jsonl."""
    return [
        {
            "id": f"{split}-{number}",
            "text": r["text"],
            "label": r["label"],
            "split": split,
            "campaign": r["campaign"],
        }
        for split in SPLITS
        for number, r in enumerate(sets[split])
    ]


def labels_of(sets: dict[str, list[dict]]) -> list[str]:
    """The labels the classifier learns, in sorted order (the data folder's `labels`)."""
    return sorted({r["label"] for split in ("forget", "retain") for r in sets[split]})


def load_claim_file_sets(forget, retain, test=None) -> dict[str, list]:
    """{split: Examples} of the claims task from one forget, retain and (optional) test file,
    asked as the built-in claims are (`Claim: <text>\\nLabel:`, the label word the target)."""
    from quail.data.load import claim_example

    paths = {"forget": forget, "retain": retain, "test": test}
    sets = load_classification({split: [Path(p)] if p else [] for split, p in paths.items()})
    return {split: [claim_example(r) for r in records] for split, records in sets.items()}
