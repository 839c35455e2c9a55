"""What each quantization backend costs on a small Llama: time and peak memory to quantize it,
and the time of a forward pass on a fixed batch, side by side in one run.

Each spec runs in its own fresh process: peak memory is the peak RSS while quantizing (the
kernel's high-water mark, reset just before) minus the RSS just before, with the model built
and the library imported. The first forward is timed apart from the steady ones (a library may
build or load a kernel on first use); steady forwards alternate with the unquantized model's, and
forward_vs_fp is the ratio of their medians, which holds up better than seconds on a shared box.

    nice python benchmarks/backend_cost.py                       # ~10M-parameter bf16 model
    nice python benchmarks/backend_cost.py --dtype float32 --specs bnb-nf4,hqq-int4-g64
"""

import argparse
import json
import multiprocessing
import resource
import statistics
import time

SPECS = (
    "fp,int4,nf4,bnb-nf4,bnb-nf4-dq,bnb-fp4,bnb-int8,"
    "quanto-int4,quanto-int8,hqq-int4-g64,ct-int4-g128,gptq-int4-g128,awq-int4-g128"
)
COLUMNS = (
    "spec",
    "quantize_s",
    "quantize_peak_extra_mb",
    "first_forward_s",
    "forward_s",
    "forward_vs_fp",
    "logit_change_vs_fp",
    "peak_rss_mb",
)


def build_model(args):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=4 * args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.hidden // 64,
        num_key_value_heads=args.hidden // 64,
        max_position_embeddings=args.seq,
    )
    return LlamaForCausalLM(config).to(getattr(torch, args.dtype)).eval()


def status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, Linux only."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM to the current RSS


def measure(text: str, args, results) -> None:
    """Runs in a child process: quantize, then time forwards."""
    import torch

    from quail.quant import load_quantized, parse_spec
    from quail.quant.backends import adapter

    torch.set_num_threads(args.threads)
    spec = parse_spec(text)
    if spec.backend is not None:
        adapter(spec)  # import the library before the baseline
    model = build_model(args)
    tokens = torch.randint(0, args.vocab, (args.batch, args.seq), generator=torch.Generator())
    with torch.no_grad():
        reference = model(tokens).logits.float()
    calibration = None  # GPTQ/AWQ: random-token windows (the model has no tokenizer)
    if spec.backend in ("gptq", "awq"):
        shape = (args.calibration, args.seq)
        calibration = list(torch.randint(0, args.vocab, shape, generator=torch.Generator()))
    reset_peak()
    before = status_mb("VmRSS")
    start = time.perf_counter()
    quantized = load_quantized(model, spec, calibration=calibration)
    quantize_s = time.perf_counter() - start
    extra_mb = status_mb("VmHWM") - before
    with torch.no_grad():
        start = time.perf_counter()
        logits = quantized(tokens).logits.float()
        first_s = time.perf_counter() - start
        times, fp_times = [], []
        for _ in range(args.repeats):  # alternate with the fp model: load drifts on shared boxes
            for timed, net in ((times, quantized), (fp_times, model)):
                start = time.perf_counter()
                net(tokens)
                timed.append(time.perf_counter() - start)
    results.put(
        {
            "spec": spec.name,
            "quantize_s": round(quantize_s, 3),
            "quantize_peak_extra_mb": round(max(extra_mb, 0.0), 1),
            "first_forward_s": round(first_s, 3),
            "forward_s": round(statistics.median(times), 3),
            "forward_vs_fp": round(statistics.median(times) / statistics.median(fp_times), 2),
            "logit_change_vs_fp": round(float((logits - reference).abs().mean()), 4),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", default=SPECS, help="comma-separated quail specs")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--calibration", type=int, default=32, help="GPTQ/AWQ samples")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()

    import torch  # only for the parameter count

    params = sum(p.numel() for p in build_model(args).parameters())
    print(
        f"Llama {args.layers}x{args.hidden}, vocab {args.vocab}, {params / 1e6:.1f}M parameters, "
        f"{args.dtype}; forward on {args.batch}x{args.seq} tokens, {args.threads} threads, "
        f"torch {torch.__version__}"
    )
    context = multiprocessing.get_context("spawn")
    rows = []
    print(" | ".join(COLUMNS), flush=True)
    for text in args.specs.split(","):
        results = context.Queue()
        child = context.Process(target=measure, args=(text, args, results))
        child.start()
        child.join()
        if child.exitcode != 0:
            print(f"{text} | failed (exit code {child.exitcode})", flush=True)
            continue
        rows.append(results.get())
        print(" | ".join(str(rows[-1][column]) for column in COLUMNS), flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "parameters": params, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
