"""The user's own forget and retain sets as plain files (`--forget FILE --retain FILE`).

A file is JSONL, JSON (a list of objects), CSV or Parquet, one record per example, in one of
the shapes people have (docs/DATA.md):

| columns | becomes |
|---|---|
| `question`, `answer` | a probe: the question in the question format, the answer its target |
| `prompt`, `completion` | a probe: the prompt as written, the completion its target |
| `messages` | a probe: the chat before its last (assistant) turn, in the chat template; that turn |
| `text` | a passage: trained on whole; VerbMem continues it, perplexity reads it |

Probes are trained on and answer KnowMem; passages are trained on and answer VerbMem.
"""

import json
from pathlib import Path

from quail.data.examples import Example
from quail.data.jsonl import read_csv, read_jsonl
from quail.data.load import check_disjoint
from quail.data.render import QUESTION_FORMAT, format_question
from quail.errors import QuailError

SHAPES = (("question", "answer"), ("prompt", "completion"), ("messages",), ("text",))
SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def read_records(path: str | Path) -> list[dict]:
    """Every record of a JSONL, JSON, CSV or Parquet file, as dicts."""
    path = Path(path)
    if not path.is_file():
        raise QuailError(f"{path}: no such file; check the path")
    if path.suffix == ".jsonl":
        return read_jsonl(path)
    if path.suffix == ".csv":
        return read_csv(path)
    if path.suffix == ".json":
        try:
            records = json.loads(path.read_text("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise QuailError(f"{path}: not valid JSON ({error}); fix the file") from None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise QuailError(f"{path}: expected a JSON list of objects, [{{...}}, ...]")
        return records
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet
        except ImportError:
            raise QuailError(
                f"{path}: reading Parquet needs pyarrow (pip install pyarrow)"
            ) from None
        try:
            return pyarrow.parquet.read_table(path).to_pylist()
        except Exception as error:  # pyarrow's errors have no common base  # noqa: BLE001
            raise QuailError(f"{path}: not a Parquet file ({error})") from None
    raise QuailError(f"{path}: unsupported file type; use {', '.join(SUFFIXES)}")


def load_set(
    path: str | Path, tokenizer=None, template: str = QUESTION_FORMAT
) -> tuple[list[Example], list[str]]:
    """(probes, passages) of one file; `tokenizer` renders `messages` records."""
    probes, passages = [], []
    records = read_records(path)
    if not records:
        raise QuailError(f"{path}: no records; the file needs one example per line or row")
    for number, record in enumerate(records, start=1):
        where = f"{path}, record {number}"
        shape = next((s for s in SHAPES if all(c in record for c in s)), None)
        if shape is None:
            raise QuailError(
                f"{where}: columns {', '.join(sorted(record)) or 'none'}; give question,answer "
                "or prompt,completion or messages or text"
            )
        if shape == ("messages",):
            probes.append(_chat_example(record["messages"], tokenizer, where))
            continue
        values = [_text(record[c], c, where) for c in shape]
        if shape == ("text",):
            passages.append(values[0])
        elif shape == ("question", "answer"):
            probes.append(Example(format_question(values[0], template), " " + values[1].strip()))
        else:
            probes.append(Example(values[0], values[1]))
    return probes, passages


def load_file_sets(
    forget_path, retain_path=None, tokenizer=None, template: str = QUESTION_FORMAT
) -> tuple[list[Example], list[Example]]:
    """(forget, retain) Examples for unlearning: each file's probes and its passages whole."""
    sets = []
    for path in (forget_path, retain_path):
        if path is None:
            sets.append([])
            continue
        probes, passages = load_set(path, tokenizer, template)
        sets.append(probes + [Example("", text) for text in passages])
    check_disjoint(*sets)
    return sets[0], sets[1]


def _text(value, column: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise QuailError(f"{where}: {column} must be non-empty text, got {value!r}")
    return value


def _chat_example(messages, tokenizer, where: str) -> Example:
    """The chat up to its last turn, rendered as the model sees it, and the last turn's text."""
    if (
        not isinstance(messages, list)
        or len(messages) < 2
        or not all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in messages)
    ):
        raise QuailError(
            f"{where}: messages must be a list of at least two {{role, content}} turns"
        )
    if messages[-1]["role"] != "assistant":
        raise QuailError(f"{where}: the last message must be the assistant's (the target)")
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise QuailError(
            f"{where}: messages need the model's chat template, and its tokenizer has none: "
            "write question,answer or prompt,completion records instead"
        )
    prompt = tokenizer.apply_chat_template(
        messages[:-1], tokenize=False, add_generation_prompt=True
    )
    return Example(prompt, _text(messages[-1]["content"], "the last message", where))
