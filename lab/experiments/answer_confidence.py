"""How sure two models are of each forget answer: its probability after the question, and
whether greedy decoding gives it, by answer, before and after unlearning.

    python lab/experiments/answer_confidence.py DATA ORIGINAL UNLEARNED [--split forget]

A KnowMem probe still answered after unlearning is either one the loss pushed and something
pulled back, or one it never moved; the answer's probability before and after tells the two
apart. The probability is the whole answer's (the product over its tokens: "Quito" is two
tokens, and its first is shared with other names); greedy decoding gives it where every
answer token is the model's first choice after the ones before. Both models are read as
saved, at full precision (quail saves its model rounded onto its first format's grid, so that
is the shipped model's layers); the trained question forms.
"""

import argparse
import collections

import torch

from quail.data.load import load_unlearning_sets
from quail.models import load_model, load_tokenizer


def answer_scores(model, tokenizer, examples) -> list[tuple[float, bool]]:
    """(probability, given by greedy decoding) of each answer after its prompt."""
    scores = []
    for e in examples:
        start = len(tokenizer(e.prompt)["input_ids"])
        ids = torch.tensor([tokenizer(e.prompt + e.target)["input_ids"]])
        logp = model(ids).logits[0, start - 1 : -1].log_softmax(-1)
        answer = ids[0, start:]
        token_logp = logp.gather(1, answer[:, None]).squeeze(1)
        scores.append((token_logp.sum().exp().item(), bool((logp.argmax(-1) == answer).all())))
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
    before = answer_scores(load_model(args.original).eval(), tokenizer, examples)
    after = answer_scores(load_model(args.unlearned).eval(), tokenizer, examples)
    by_answer = collections.defaultdict(list)
    for e, b, a in zip(examples, before, after, strict=True):
        by_answer[e.target.strip()].append((b, a))
    print(f"{args.split} answers: mean probability (questions greedy decoding answers so)")
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
