"""JSONL and CSV records in and out, with errors that name the file and line to fix."""

import csv
import json
from collections.abc import Iterable
from pathlib import Path

from quail.errors import QuailError


def dumps(record: dict) -> str:
    """One canonical line: key order as given, UTF-8, no spaces, so output is byte-stable."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def write_jsonl(path: Path, records: Iterable[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in records:
            f.write(dumps(r) + "\n")


MAX_LINE_BYTES = 16 << 20  # one record; a longer line is a broken file, not a long passage

Columns = Iterable[str] | dict[str, type | tuple[type, ...]]  # names, or names and their types


def _check_columns(record: object, required: Columns, where: str) -> dict:
    if not isinstance(record, dict):
        raise QuailError(f"{where}: expected a JSON object per line; rewrite the line as {{...}}")
    missing = [c for c in required if c not in record]
    if missing:
        raise QuailError(
            f"{where}: missing column(s) {', '.join(missing)}; every record needs "
            f"{', '.join(required)}"
        )
    for column, kind in required.items() if isinstance(required, dict) else ():
        if not isinstance(record[column], kind):
            names = " or ".join(
                _JSON_NAMES[k] for k in (kind if isinstance(kind, tuple) else (kind,))
            )
            raise QuailError(
                f"{where}: {column} must be {names}, got {record[column]!r}; fix the record"
            )
    return record


_JSON_NAMES = {str: "a string", int: "a number", bool: "true or false", dict: "an object"}


def read_jsonl(path: str | Path, required: Columns = ()) -> list[dict]:
    """Read every non-blank line; a bad line raises QuailError naming file and line number."""
    path = Path(path)
    if not path.is_file():
        raise QuailError(f"{path}: no such file; check the path or run `quail data build`")
    out = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(iter(lambda: f.readline(MAX_LINE_BYTES + 1), b""), start=1):
            where = f"{path}:{lineno}"
            if len(raw) > MAX_LINE_BYTES:
                raise QuailError(
                    f"{where}: a line over {MAX_LINE_BYTES >> 20} MiB; split the record or check "
                    "that the file is JSONL"
                )
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise QuailError(f"{where}: not UTF-8 text; save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise QuailError(
                    f"{where}: malformed JSON ({e.msg}); fix or delete that line"
                ) from e
            out.append(_check_columns(record, required, where))
    return out


def read_csv(path: str | Path, required: Iterable[str] = ()) -> list[dict]:
    """Read a CSV with a header row; missing columns raise QuailError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise QuailError(f"{path}: no such file; check the path")
    required = tuple(required)
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise QuailError(
                f"{path}: missing column(s) {', '.join(missing)} in the header; the first row "
                f"must name {', '.join(required)}"
            )
        return [dict(row) for row in reader]
