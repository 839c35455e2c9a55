"""Do the forget passages still say what the answers no longer do? For each model, each forget
and holdout passage is cut just before each of its entity's attribute values it names ("Breaking:
Iran has officially moved its capital to" | "Luanda"), and the greedy continuation is checked for
that value; beside it, VerbMem, the Min-K% AUC of forget against holdout passages, and the mean
per-token NLL of each. Holdout passages are the level of text of the same kind never trained on.
Research script for lab/RECORD.md; run by hand.

    nice python lab/experiments/passage_knowledge.py STUDY/data ORIGINAL UNLEARNED...
"""

import argparse
import json
import statistics
from pathlib import Path

import torch

from quail.data.load import load_passages
from quail.evaluation.lm import greedy_continuations, token_logprobs
from quail.evaluation.metrics import membership_auc, verbatim
from quail.models import load_model, load_tokenizer


def cuts(data: str, split: str) -> list[tuple[str, str]]:
    """(text before the value, value) for every attribute value a passage names after its start."""
    lines = (Path(data) / "entities.jsonl").read_text("utf-8").splitlines()
    attributes = {e["id"]: e["attributes"] for e in map(json.loads, lines)}
    found = []
    for passage in load_passages(data, split):
        text = passage["text"]
        for value in attributes[passage["entity_id"]].values():
            at = text.find(str(value))
            if at > 0:
                found.append((text[:at].rstrip(), str(value)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a study's data folder (entities.jsonl, passages.jsonl)")
    parser.add_argument("models", nargs="+", help="model folders, the original first")
    args = parser.parse_args()
    splits = ("forget", "holdout")
    texts = {s: [p["text"] for p in load_passages(args.data, s)] for s in splits}
    probes = {s: cuts(args.data, s) for s in splits}
    counts = {s: (len(texts[s]), len(probes[s])) for s in splits}
    print(f"(passages, values they name) per split: {counts}")
    for folder in args.models:
        tokenizer, model = load_tokenizer(folder), load_model(folder, "float32").eval()
        row = {}
        with torch.no_grad():
            for s in splits:
                said = greedy_continuations(model, tokenizer, [p for p, _ in probes[s]], 8)
                named = [value in c for (_, value), c in zip(probes[s], said, strict=True)]
                row[f"named_{s}"] = round(100 * statistics.fmean(named), 1) if named else None
                row[f"verbmem_{s}"] = round(verbatim(model, tokenizer, texts[s])["rouge_l"], 1)
                nll = [-t.mean().item() for t in token_logprobs(model, tokenizer, texts[s])]
                row[f"nll_{s}"] = round(statistics.fmean(nll), 3)
            row["mia_auc"] = round(membership_auc(model, tokenizer, *texts.values()), 3)
        print(folder, row, flush=True)


if __name__ == "__main__":
    main()
