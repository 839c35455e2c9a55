"""Where one evaluation's time goes: per spec, the time to quantize the model and to run each
metric of `quail.evaluate` on a study's data folder, in one process (what `quail run` does for
every model it evaluates).

    python benchmarks/eval_cost.py STUDY/cells/ga_gdr/model STUDY/data
    python benchmarks/eval_cost.py MODEL DATA --specs fp,ct-int4-g64 --limit 16

Each group of metrics is one of the calls `evaluate_model` makes (`suite.metric_calls`), timed
alone; `total` is their sum plus the quantization. Seconds on a shared machine drift by ±25%;
compare rows of one run.
"""

import argparse
import sys
import time

from quail.errors import QuailError

SPECS = (
    "fp,int8,rtn-int4-g64,nf4,rtn-int4-g32-asym,bnb-nf4,bnb-int8,quanto-int4-g64,"
    "hqq-int4-g64,ct-int4-g64,gptq-int4-g64"
)


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a model folder (e.g. a study's cells/<method>/model)")
    parser.add_argument("data", help="the study's data folder")
    parser.add_argument("--specs", default=SPECS)
    parser.add_argument("--limit", type=int, default=16, help="probes per set (eval_limit)")
    args = parser.parse_args()

    import torch

    from quail.evaluation import calibration_texts, load_eval_data
    from quail.evaluation.suite import metric_calls
    from quail.models import load_model, load_tokenizer
    from quail.quant import load_quantized, parse_spec

    model, tokenizer = load_model(args.model, dtype="float32"), load_tokenizer(args.model)
    data = load_eval_data(args.data, "knowledge", args.limit)
    print(f"torch threads {torch.get_num_threads()}, {args.limit} probes per set")
    grand_total = 0.0
    calibration = calibration_texts(data) or None  # GPTQ's text, as evaluate passes it
    for text in args.specs.split(","):
        start = time.perf_counter()
        spec = parse_spec(text)
        quantized = load_quantized(
            model, spec, calibration=calibration, tokenizer=tokenizer, dequantize_once=True
        )
        row = {"quantize": time.perf_counter() - start}
        for name, call in metric_calls(quantized.eval(), tokenizer, data).items():
            row[name] = timed(call)
        total = sum(row.values())
        grand_total += total
        print(
            f"{text:20s} "
            + "  ".join(f"{k} {v:5.1f}" for k, v in row.items())
            + f"  total {total:6.1f} s",
            flush=True,
        )
    print(f"all specs: {grand_total:.0f} s")


if __name__ == "__main__":
    try:
        main()
    except QuailError as error:  # a missing folder, a bad spec: one line, exit 2
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
