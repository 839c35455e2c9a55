"""What forgetting should reach on the claims task: the built-in classifier trained without the
forget campaign, scored on it.

A classifier that never saw campaign 0 still labels much of it misinformation, from the style
the other campaigns share; so the forget accuracy unlearning should aim at is that model's, not
0. Trains the built-in classifier (`CLASSIFIER_CONFIG`, the tokenizer of the whole claims set,
as `quail base --task claims` builds it) on the retain claims only, for each seed, and prints
its accuracy on the forget, retain and test claims.

    python lab/experiments/claims_reference.py DATA_DIR [--seeds 0 1 2] [--max-epochs 100]
"""

import argparse

import torch

from quail.base import probes
from quail.base.config import CLASSIFIER_CONFIG
from quail.base.tokenizer import train_tokenizer
from quail.base.train import _train_and_snap, build_model
from quail.data import claim_example, format_claim, load_claim_sets, load_claims


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a data folder with claims.jsonl (quail data build)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--max-epochs", type=int, default=CLASSIFIER_CONFIG.max_epochs)
    args = parser.parse_args()
    claims = load_claims(args.data)
    tokenizer = train_tokenizer([format_claim(r["text"]) + " " + r["label"] for r in claims])
    forget, retain = load_claim_sets(args.data)
    test = [claim_example(r) for r in claims if r["split"] == "test"]
    torch.set_num_threads(1)
    for seed in args.seeds:
        config = CLASSIFIER_CONFIG.replace(seed=seed, max_epochs=args.max_epochs)
        torch.manual_seed(seed)
        model = build_model(tokenizer, config)
        _train_and_snap(model, tokenizer, retain, {"retain": retain}, config, lambda line: None)
        scores = {
            name: probes.accuracy(probes.exact_match(model, tokenizer, examples))
            for name, examples in (("forget", forget), ("retain", retain), ("test", test))
        }
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()), flush=True)


if __name__ == "__main__":
    main()
