"""How sure two models are of each forget answer: its first token's probability and whether
greedy decoding would pick it, by answer, before and after unlearning.

    python lab/experiments/answer_confidence.py DATA ORIGINAL UNLEARNED [--split forget]

A KnowMem probe still answered after unlearning is either one the loss pushed and something
pulled back, or one it never moved; the first token's probability before and after tells the
two apart. Both models are read as saved, at full precision (quail saves its model rounded onto
its first format's grid, so that is the shipped model's layers); the trained question forms.
"""

import argparse
import collections

import torch

from quail.data.load import load_unlearning_sets
from quail.models import load_model, load_tokenizer


def first_token(model, tokenizer, examples) -> list[tuple[float, bool]]:
    """(probability, greedy choice) of each answer's first token after its prompt."""
    scores = []
    for e in examples:
        prompt = tokenizer(e.prompt)["input_ids"]
        answer = tokenizer(e.prompt + e.target)["input_ids"][len(prompt)]
        probs = model(torch.tensor([prompt])).logits[0, -1].softmax(-1)
        scores.append((probs[answer].item(), probs.argmax().item() == answer))
    return scores


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("original")
    parser.add_argument("unlearned")
    parser.add_argument("--split", default="forget", choices=("forget", "retain"))
    args = parser.parse_args()
    forget, retain = load_unlearning_sets(args.data)
    examples = [e for e in (forget if args.split == "forget" else retain) if e.prompted]
    tokenizer = load_tokenizer(args.unlearned)
    before = first_token(load_model(args.original).eval(), tokenizer, examples)
    after = first_token(load_model(args.unlearned).eval(), tokenizer, examples)
    by_answer = collections.defaultdict(list)
    for e, b, a in zip(examples, before, after, strict=True):
        by_answer[e.target.strip()].append((b, a))
    print(f"{args.split} answers: first token's mean probability (share picked greedily)")
    print("| answer | questions | original | unlearned |")
    print("|---|---|---|---|")
    for answer, pairs in sorted(by_answer.items()):
        n = len(pairs)
        cells = [
            f"{sum(s[i][0] for s in pairs) / n:.2f} ({sum(s[i][1] for s in pairs)}/{n})"
            for i in (0, 1)
        ]
        print(f"| {answer} | {n} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
