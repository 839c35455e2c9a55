"""Time per optimizer step of ga_gdr, npo_gdr, the paper's hinge and quail on the same model
and batches.

QUAIL's hinge adds a straight-through forward and backward through the fake-quantized model on
the forget batch, so it costs more by design. quail's step is GA+GDR's with a sign update, and
it rounds the model onto the grid to nearest at each check. Their checks (greedy answers in every
distinct format) come on top, every `check_every` steps: the "with checks" column is the whole
wall time per step with a check at every step (the benchmark keeps the target and the floor from
ending the run). Target: quail <= 3x ga_gdr.

    nice python benchmarks/step_overhead.py [--steps 12] [--rounds 3] [--threads 1]

Methods run in turn, `rounds` times, each from the same weights; the first 2 steps of each run
are warm-up; the figure is the median step time over the rest. Step times are CPU seconds of
this process (the loop's clock is pointed at time.process_time), which other jobs on a shared
machine disturb far less than wall time; `--wall` uses wall time instead.
"""

import argparse
import statistics
import time
import types

import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from quail.data.examples import Example
from quail.unlearning import loop, unlearn

RUNS = {
    "ga_gdr": {"method": "ga_gdr"},
    "npo_gdr": {"method": "npo_gdr"},
    "quail_hinge": {"method": "quail_hinge", "quant": "int4"},
    "quail (sign steps, int4,nf4)": {"method": "quail", "quant": "int4,nf4", "check_every": 1},
}


def word_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    words = ["<pad>", "<bos>", "<eos>", "<unk>"] + [f"w{i}" for i in range(vocab_size - 4)]
    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>"
    )


def examples(n: int, vocab_size: int, prompt_len: int, target_len: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size - 4, (n, prompt_len + target_len), generator=gen).tolist()
    return [
        Example(
            " ".join(f"w{i}" for i in row[:prompt_len]),
            " " + " ".join(f"w{i}" for i in row[prompt_len:]),
        )
        for row in ids
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--wall", action="store_true")
    args = ap.parse_args()
    if not args.wall:
        loop.time = types.SimpleNamespace(perf_counter=time.process_time)
    loop.ForgetTarget.holds = lambda *args: False  # run every step: random text has no facts
    loop.ForgetTarget.floor_broken = lambda *args: False
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=4 * args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.hidden // 64,
        num_key_value_heads=args.hidden // 64,
        max_position_embeddings=128,
    )
    state = LlamaForCausalLM(config).state_dict()
    tokenizer = word_tokenizer(args.vocab)
    forget = examples(64, args.vocab, 16, 16, seed=1)
    retain = examples(256, args.vocab, 16, 16, seed=2)
    n_params = sum(v.numel() for v in state.values())
    print(
        f"model: {n_params / 1e6:.1f}M parameters, vocab {args.vocab}, "
        f"batch {args.batch} forget + {args.batch} retain x 32 tokens, "
        f"{args.threads} thread(s), device cpu"
    )

    times = {name: [] for name in RUNS}
    whole = {name: [] for name in RUNS}
    for _ in range(args.rounds):
        for name, settings in RUNS.items():
            model = LlamaForCausalLM(config)
            model.load_state_dict(state)
            result = unlearn(
                model,
                forget,
                retain,
                {
                    "steps": args.steps,
                    "lr": 1e-5,
                    "batch_size": args.batch,
                    "progress": False,
                    **settings,
                },
                tokenizer=tokenizer,
            )
            times[name] += [c["seconds"] for c in result.curves[2:]]
            whole[name].append(result.wall_time_s / len(result.curves))

    base = statistics.median(times["ga_gdr"])
    base_whole = statistics.median(whole["ga_gdr"])
    print(f"{'method':<32} {'s/step':>8} {'vs ga_gdr':>10} {'with checks':>12} {'vs ga_gdr':>10}")
    for name, values in times.items():
        step, total = statistics.median(values), statistics.median(whole[name])
        print(
            f"{name:<32} {step:8.4f} {step / base:10.3f} {total:12.4f} {total / base_whole:10.3f}"
        )


if __name__ == "__main__":
    main()
