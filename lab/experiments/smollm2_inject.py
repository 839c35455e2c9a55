"""Inject the false claims of a country data folder into SmolLM2 with given settings, then
evaluate the injected model at fp: how many claims it asserts, and what it keeps of the true
facts and of its fluency. Research script for lab/RECORD.md ("Injecting 32 false capitals");
run by hand.

    nice python lab/experiments/smollm2_inject.py DATA OUT steps=100 lr=2e-4 retain_weight=4
"""

import argparse

import yaml

from quail import evaluate
from quail.countries import inject
from quail.models import load_model, load_tokenizer
from quail.zoo import get_model

SHOWN = ("knowmem_forget", "em_forget", "knowmem_retain", "em_retain", "ppl_general")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a misinformation data folder (quail.countries)")
    parser.add_argument("out", help="where the injected model is written")
    parser.add_argument("settings", nargs="*", help="inject settings as key=value (YAML values)")
    parser.add_argument("--limit", type=int, default=None, help="probes per set (default: all)")
    parser.add_argument("--model", help="the model to inject into (default: SmolLM2 as shipped)")
    args = parser.parse_args()
    settings = {"batch_size": 4, "check_every": 50, "target_em": 1.01}  # run every step
    for item in args.settings:
        key, _, value = item.partition("=")
        settings[key] = yaml.safe_load(value)
    model_dir = args.model or get_model("smollm2-135m")
    record = inject(model_dir, args.data, settings, args.out, log=print)
    print("checks", [(c["step"], round(c["em_claims"], 3)) for c in record["checks"]])
    model, tokenizer = load_model(args.out, "float32"), load_tokenizer(args.out)
    figures = evaluate(model, args.data, ["fp"], tokenizer, limit=args.limit)["fp"]
    print("fp", {key: round(figures[key], 3) for key in SHOWN if key in figures}, flush=True)


if __name__ == "__main__":
    main()
