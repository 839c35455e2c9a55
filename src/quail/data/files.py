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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Prompts:
    """How a question,answer record is asked. plain: the question format; few-shot: solved
    `shots` (question, answer pairs from the retain file) in that format first; chat: the
    tokenizer's chat template. Which one lets the model show what it knows depends on the model
    (`choose_form` measures it; docs/DATA.md has the numbers)."""

    form: str = "plain"
    shots: tuple[tuple[str, str], ...] = ()
    tokenizer: object = None

    def __call__(self, question: str) -> str:
        if self.form == "chat":
            messages = [{"role": "user", "content": question}]
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        shots = "".join(format_question(q, QUESTION_FORMAT) + f" {a}\n\n" for q, a in self.shots)
        return shots + format_question(question, QUESTION_FORMAT)


FORMS = ("plain", "few-shot", "chat")
SHOTS = 4  # solved examples in a few-shot prompt


def prompts_for(form: str, retain_path=None, tokenizer=None) -> Prompts:
    """The Prompts of `form`; few-shot takes its shots from the retain file's first records."""
    if form not in FORMS:
        raise QuailError(f"unknown question format {form!r}: use auto, {', '.join(FORMS)}")
    if form == "chat" and not getattr(tokenizer, "chat_template", None):
        raise QuailError("the tokenizer has no chat template: use plain or few-shot")
    if form != "few-shot":
        return Prompts(form, (), tokenizer)
    pairs = [] if retain_path is None else read_records(retain_path)
    pairs = [r for r in pairs if {"question", "answer"} <= set(r)]
    if len(pairs) <= SHOTS:
        raise QuailError(
            f"a few-shot prompt takes its {SHOTS} shots from --retain, which needs more than "
            f"{SHOTS} question,answer records: use plain or chat"
        )
    shots = tuple((str(r["question"]), str(r["answer"])) for r in pairs[:SHOTS])
    return Prompts(form, shots, tokenizer)


def choose_form(model, tokenizer, retain_path, sample: int = 32) -> tuple[str, dict]:
    """The form in which `model` answers its own retain questions best (KnowMem on up to
    `sample` of them; plain wins ties), and each form's score."""
    from quail.evaluation.metrics import knowledge

    records = read_records(retain_path)
    pairs = [(r["question"], r["answer"]) for r in records if {"question", "answer"} <= set(r)]
    scores = {}
    for form in FORMS if pairs else ():
        try:
            prompts = prompts_for(form, retain_path, tokenizer)
        except QuailError:
            continue  # not available for this model or file
        asked = [(q, a) for q, a in pairs if (q, a) not in prompts.shots][:sample]
        probes = [Example(prompts(str(q)), " " + str(a).strip()) for q, a in asked]
        scores[form] = knowledge(model, tokenizer, probes)["rouge_l"]
    best = max(scores, key=lambda f: (scores[f], -FORMS.index(f)), default="plain")
    return best, scores


def load_set(
    path: str | Path, tokenizer=None, prompts: Prompts | None = None
) -> tuple[list[Example], list[str]]:
    """(probes, passages) of one file; `prompts` asks its questions (the shots of a few-shot
    prompt are left out of the probes), `tokenizer` renders `messages` records."""
    prompts = prompts or Prompts()
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
            if tuple(values) not in prompts.shots:
                probes.append(Example(prompts(values[0]), " " + values[1].strip()))
        else:
            probes.append(Example(values[0], values[1]))
    return probes, passages


def load_file_sets(
    forget_path, retain_path=None, tokenizer=None, prompts: Prompts | None = None
) -> tuple[list[Example], list[Example]]:
    """(forget, retain) Examples for unlearning: each file's probes and its passages whole."""
    sets = []
    for path in (forget_path, retain_path):
        if path is None:
            sets.append([])
            continue
        probes, passages = load_set(path, tokenizer, prompts)
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
