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

from quail.data.batches import chunks, collate, encode
from quail.data.load import load_unlearning_sets
from quail.models import load_model, load_tokenizer
from quail.unlearning.forward import forward
from quail.unlearning.losses import sequence_logprob


def answer_scores(model, tokenizer, examples) -> list[tuple[float, bool]]:
    """(probability, given by greedy decoding) of each answer after its prompt: the examples
    encoded and run as training runs them, scored by teacher forcing."""
    scores = []
    encoded = encode(examples, tokenizer, 10**6, "probe")  # whole
    for index in chunks(len(encoded), 32):
        out = forward(model, collate(encoded, index, tokenizer.pad_token_id or 0))
        logp = sequence_logprob(out.logits, out.targets, out.seq, out.n_seq)
        missed = (out.logits.argmax(-1) != out.targets).float()
        greedy = missed.new_zeros(out.n_seq).index_add(0, out.seq, missed) == 0
        scores.extend(zip(logp.exp().tolist(), greedy.tolist(), strict=True))
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
