"""Which prompt lets a model show what it knows, for a user's question,answer files
(docs/DATA.md, "Your own forget and retain files").

A user's QA files, scored as `quail evaluate --forget --retain` scores them, in four prompt
forms: the plain question format; a few-shot prompt whose shots are the first SHOTS records of
the retain file (left out of the retain probes); the model's chat template; the chat template
with the same shots as earlier turns. Prints KnowMem and exact match per form and set.

    python lab/experiments/prompt_formats.py MODEL FORGET RETAIN
    python lab/experiments/prompt_formats.py --countries N   # N countries' facts for SmolLM2
"""

import argparse
import json
import tempfile
from pathlib import Path

import torch

from quail.data.examples import Example
from quail.data.files import read_records
from quail.data.render import QUESTION_FORMAT, format_question
from quail.evaluation.metrics import knowledge_sets
from quail.models import load_model, load_tokenizer

SHOTS = 4


def forms(tokenizer, shots: list[dict]) -> dict:
    """Each form as a function (question -> prompt)."""
    few_shot = "".join(f"Question: {s['question']}\nAnswer: {s['answer']}\n\n" for s in shots)
    turns = [
        turn
        for s in shots
        for turn in ({"role": "user", "content": s["question"]}, {
            "role": "assistant", "content": s["answer"]})
    ]  # fmt: skip

    def chat(question, history=()):
        messages = [*history, {"role": "user", "content": question}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    found = {
        "plain": lambda q: format_question(q, QUESTION_FORMAT),
        "few-shot": lambda q: few_shot + format_question(q, QUESTION_FORMAT),
    }
    if getattr(tokenizer, "chat_template", None):
        found["chat"] = chat
        found["chat few-shot"] = lambda q: chat(q, turns)
    return found


def country_files(n: int, folder: Path) -> tuple[Path, Path]:
    """The first training-form question of each attribute of the `n` most populous countries
    (those the country study's own prompt uses left out); the first quarter is the forget set."""
    from quail.countries.facts import SHOT_COUNTRIES, load_countries, questions

    countries = [c for c in load_countries() if c["name"] not in SHOT_COUNTRIES][:n]
    records = [
        [
            {"question": q, "answer": a}
            for attr, q, a, held_out in questions(c["name"], c["attributes"])
            if not held_out and q.startswith(("What is", "On which"))
        ]
        for c in countries
    ]
    cut = n // 4
    paths = folder / "forget.jsonl", folder / "retain.jsonl"
    for path, part in zip(paths, (records[:cut], records[cut:]), strict=True):
        path.write_text("".join(json.dumps(r) + "\n" for rs in part for r in rs))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="a model folder (default: smollm2-135m)")
    parser.add_argument("forget", nargs="?")
    parser.add_argument("retain", nargs="?")
    parser.add_argument("--countries", type=int, default=0)
    args = parser.parse_args()
    if args.countries:
        from quail.zoo import get_model

        args.model = args.model or str(get_model("smollm2-135m"))
        args.forget, args.retain = country_files(args.countries, Path(tempfile.mkdtemp()))
    torch.set_num_threads(2)
    model, tokenizer = load_model(args.model, dtype=torch.float32), load_tokenizer(args.model)
    forget, retain = read_records(args.forget), read_records(args.retain)
    shots, retain = retain[:SHOTS], retain[SHOTS:]
    print(f"{args.model}: {len(forget)} forget, {len(retain)} retain probes, {SHOTS} shots")
    for name, prompt in forms(tokenizer, shots).items():
        sets = {
            "forget": [Example(prompt(r["question"]), " " + r["answer"]) for r in forget],
            "retain": [Example(prompt(r["question"]), " " + r["answer"]) for r in retain],
        }
        scores = knowledge_sets(model, tokenizer, sets)
        shown = ", ".join(
            f"{s} KnowMem {v['rouge_l']:.1f} EM {v['exact_match']:.1f}" for s, v in scores.items()
        )
        print(f"  {name:14s} {shown}")


if __name__ == "__main__":
    main()
