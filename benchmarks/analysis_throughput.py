"""Throughput and memory of `quail analyze` on checkpoint folders, against a plain read.

Builds a synthetic Llama-shaped checkpoint pair (sharded safetensors, an original and a slightly
changed copy) in a temporary folder, then measures in the same run:

- a plain read of every shard file of both checkpoints (raw bytes, 64 MB at a time);
- the folder analysis, in a fresh child process so that its peak RSS is its own (the folders
  are opened and the kernel loaded once before the clock starts: one-off costs, printed apart);
- the same analysis of the two models loaded into memory first (compute alone, no reading).

Both are measured cold (the files' pages dropped from the page cache with posix_fadvise
before each pass, where the OS allows it) and warm (files cached), in `--rounds` rounds (2 by
default: right after the pair is written the disk reads slower for a few seconds, which the
first round's cold passes pay for). The folder is deleted after.

    python benchmarks/analysis_throughput.py --size-gb 1 --shard-mb 256 --dtype bfloat16
"""

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig

GB = 1e9
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def llama_config(size_gb: float, dtype: torch.dtype) -> LlamaConfig:
    """Llama-2-ish layers of 2048 wide, as many as make `size_gb` per checkpoint."""
    hidden, intermediate = 2048, 5632
    per_layer = (4 * hidden * hidden + 3 * hidden * intermediate) * dtype.itemsize
    layers = math.ceil(size_gb * GB / per_layer)
    return LlamaConfig(
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=16,
        num_key_value_heads=16,
        vocab_size=256,  # tiny embeddings: nearly every byte on disk is an analysed weight
        torch_dtype=str(dtype).removeprefix("torch."),
    )


def layer_shapes(config: LlamaConfig):
    h, m = config.hidden_size, config.intermediate_size
    yield "model.embed_tokens.weight", (config.vocab_size, h)
    for i in range(config.num_hidden_layers):
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            yield f"model.layers.{i}.self_attn.{name}.weight", (h, h)
        yield f"model.layers.{i}.mlp.gate_proj.weight", (m, h)
        yield f"model.layers.{i}.mlp.up_proj.weight", (m, h)
        yield f"model.layers.{i}.mlp.down_proj.weight", (h, m)
        yield f"model.layers.{i}.input_layernorm.weight", (h,)
        yield f"model.layers.{i}.post_attention_layernorm.weight", (h,)
    yield "model.norm.weight", (h,)
    yield "lm_head.weight", (config.vocab_size, h)


def write_pair(root: Path, config: LlamaConfig, dtype: torch.dtype, shard_bytes: int):
    """Write the original and the changed checkpoint shard by shard (one shard in memory)."""
    folders = [root / "original", root / "unlearned"]
    for folder in folders:
        config.save_pretrained(folder)
    generator = torch.Generator().manual_seed(0)
    shards, current, size = [], {}, 0
    for key, shape in layer_shapes(config):
        if size and size + math.prod(shape) * dtype.itemsize > shard_bytes:
            shards.append(current)
            _write_shard(folders, current, len(shards))
            current, size = {}, 0
        w0 = torch.randn(shape, generator=generator) * 0.02
        w1 = w0 + torch.randn(shape, generator=generator) * 2e-4  # ~Δ/50 at int4-g64
        current[key] = (w0.to(dtype), w1.to(dtype))
        size += math.prod(shape) * dtype.itemsize
    shards.append(current)
    _write_shard(folders, current, len(shards))
    total = len(shards)
    for folder in folders:
        weight_map = {}
        for number, shard in enumerate(shards, start=1):
            old = folder / f"model-{number:05d}.safetensors"
            new = folder / f"model-{number:05d}-of-{total:05d}.safetensors"
            old.rename(new)
            weight_map.update(dict.fromkeys(shard, new.name))
        index = {"metadata": {}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folders


def _write_shard(folders, shard: dict, number: int) -> None:
    for side, folder in enumerate(folders):
        tensors = {key: pair[side] for key, pair in shard.items()}
        save_file(tensors, folder / f"model-{number:05d}.safetensors", metadata={"format": "pt"})
    shard.update({key: () for key in shard})  # drop the tensors, keep the keys for the index


def weight_files(folders) -> list[Path]:
    return [path for folder in folders for path in sorted(folder.glob("*.safetensors"))]


def drop_cache(paths) -> bool:
    """Ask the kernel to forget the files' cached pages; False where it cannot be asked."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def plain_read(paths) -> tuple[int, float]:
    buffer = bytearray(64 << 20)
    start, total = time.perf_counter(), 0
    for path in paths:
        with open(path, "rb", buffering=0) as handle:
            while n := handle.readinto(buffer):
                total += n
    return total, time.perf_counter() - start


def analyse_in_child(folders, spec: str, threads: int, in_memory: bool = False) -> dict:
    command = [sys.executable, __file__, "--child", str(folders[0]), str(folders[1]), spec]
    command += ["--threads", str(threads)] + (["--in-memory"] if in_memory else [])
    return json.loads(subprocess.run(command, check=True, capture_output=True).stdout)


def child(original: str, unlearned: str, spec: str, in_memory: bool) -> None:
    """Run one analysis; print its time, bytes analysed, peak RSS and summary as JSON. With
    `in_memory`, both models are loaded first and only the analysis is timed. Without it, the
    folders are opened once first, untimed but reported (`setup_seconds`): the first opening
    imports transformers' model code to build the skeleton (0.2-0.5 s here), and the first
    analysis of a dtype loads the compiled kernel from numba's cache (0.1 s; compiling it, the
    first time on a machine, takes about 5 s); one-off costs that do not grow with
    the checkpoint and would otherwise count against the throughput."""
    from quail.analysis import analyze
    from quail.analysis.stats import ChangeStats
    from quail.analysis.weights import open_weights
    from quail.quant import parse_spec

    dtype = getattr(torch, json.loads(Path(original, "config.json").read_text())["dtype"])
    itemsize = torch.finfo(dtype).bits // 8
    start = time.perf_counter()
    tiny = torch.zeros(1, 4096, dtype=dtype)  # 4096 columns: whole groups for any group size
    ChangeStats().add(tiny, tiny, parse_spec(spec))
    if in_memory:
        from transformers import AutoModelForCausalLM

        load = AutoModelForCausalLM.from_pretrained
        original, unlearned = (load(path, dtype="auto") for path in (original, unlearned))
    else:
        for folder in (original, unlearned):
            open_weights(folder, include_lm_head=False, include_embeddings=False)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    result = analyze(original, unlearned, spec)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "seconds": seconds,
                "setup_seconds": setup,
                "bytes": 2 * result.counts["elements"] * itemsize,
                "elements": result.counts["elements"],
                "peak_rss": peak_rss(),
                "bucket_overlap": result.summary["bucket_overlap"],
            }
        )
    )


def peak_rss() -> int:
    """This process's peak RSS in bytes. VmHWM, because ru_maxrss survives fork and exec and
    would report the parent's peak (the parent held a shard pair while writing)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=1.0, help="size of each checkpoint")
    parser.add_argument("--shard-mb", type=float, default=256)
    parser.add_argument("--dtype", choices=DTYPES, default="bfloat16")
    parser.add_argument("--spec", default="int4")
    parser.add_argument("--dir", default=None, help="where to make the temporary folder")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--rounds", type=int, default=2, help="cold and warm passes, each printed: the disk "
        "reads slower for a while after the pair is written, and the first round pays for it",
    )  # fmt: skip
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--in-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        return child(*args.child, in_memory=args.in_memory)

    dtype = DTYPES[args.dtype]
    config = llama_config(args.size_gb, dtype)
    root = Path(tempfile.mkdtemp(prefix="quail-bench-", dir=args.dir))
    try:
        start = time.perf_counter()
        folders = write_pair(root, config, dtype, int(args.shard_mb * 1e6))
        paths = weight_files(folders)
        largest = max(path.stat().st_size for path in paths)
        on_disk = sum(path.stat().st_size for path in paths)
        print(
            f"wrote 2 x {on_disk / 2 / GB:.2f} GB ({len(paths) // 2} shards each, largest "
            f"{largest / 1e6:.0f} MB, {args.dtype}, {config.num_hidden_layers} layers) in "
            f"{time.perf_counter() - start:.0f} s; spec {args.spec}; "
            f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}"
        )
        passes = [("cold", True), ("warm", False)] * args.rounds
        for number, (label, cold) in enumerate(passes):
            if cold and not drop_cache(paths):
                print("cold: posix_fadvise unavailable, skipped")
                continue
            if args.rounds > 1:
                label = f"{label} {number // 2 + 1}"
            read_bytes, read_seconds = plain_read(paths)
            if cold:
                drop_cache(paths)
            run = analyse_in_child(folders, args.spec, args.threads)
            read_rate = read_bytes / read_seconds / GB
            rate = run["bytes"] / run["seconds"] / GB
            budget = 2 * largest + 500e6
            print(
                f"{label}: plain read {read_rate:.2f} GB/s ({read_bytes / GB:.2f} GB in "
                f"{read_seconds:.2f} s); analysis {rate:.2f} GB/s ({run['bytes'] / GB:.2f} GB "
                f"in {run['seconds']:.2f} s, after {run['setup_seconds']:.1f} s opening the "
                f"folders and loading the kernel); ratio {rate / read_rate:.2f} (target >= 0.5); "
                f"peak RSS {run['peak_rss'] / 1e6:.0f} MB (target <= {budget / 1e6:.0f} MB); "
                f"bucket overlap {run['bucket_overlap']:.4f}"
            )
        run = analyse_in_child(folders, args.spec, args.threads, in_memory=True)
        print(
            f"in memory (compute alone): analysis {run['bytes'] / run['seconds'] / GB:.2f} GB/s "
            f"({run['elements'] / run['seconds'] / 1e6:.0f}M weight pairs/s)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
