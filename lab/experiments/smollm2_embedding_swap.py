"""Which part of an unlearned SmolLM2 carries the forgetting that survives the file's grid? Swap
the tied embedding (which `rtn-int4-g32-asym` leaves in full precision) between SmolLM2 as
shipped and an unlearned model, and evaluate both hybrids at fp and on the grid. Research script
for lab/RECORD.md; run by hand.

    nice python lab/experiments/smollm2_embedding_swap.py smollm2-real/data UNLEARNED_DIR
"""

import argparse

import torch

from quail import evaluate
from quail.models import load_model, load_tokenizer
from quail.zoo import get_model

SPECS = ("fp", "rtn-int4-g32-asym")
SHOWN = ("knowmem_forget", "knowmem_retain", "ppl_general")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the real-knowledge study's data folder")
    parser.add_argument("unlearned", help="an unlearned SmolLM2 folder")
    parser.add_argument("--limit", type=int, default=24, help="probes per set, as the config")
    parser.add_argument("--original", help="the model it was unlearned from (default: SmolLM2)")
    args = parser.parse_args()
    shipped = args.original or str(get_model("smollm2-135m"))
    tokenizer = load_tokenizer(shipped)
    unlearned, original = load_model(args.unlearned, "float32"), load_model(shipped, "float32")
    embeddings = [m.get_input_embeddings().weight for m in (unlearned, original)]
    with torch.no_grad():
        swapped = embeddings[0].clone()
        embeddings[0].copy_(embeddings[1])
        embeddings[1].copy_(swapped)
    for name, model in (("unlearned, shipped embedding", unlearned),
                        ("shipped, unlearned embedding", original)):  # fmt: skip
        results = evaluate(model, args.data, SPECS, tokenizer, limit=args.limit)
        for spec, figures in results.items():
            shown = {key: round(figures[key], 2) for key in SHOWN if key in figures}
            print(name, spec, shown, flush=True)


if __name__ == "__main__":
    main()
