"""Wall time of error-feedback rounding (quail's default ships its model this way at every
check) on one shape of SmolLM2-135M: its gate and up layers, which read one input and round as
one 3072 x 576 matrix, on the Q4_1 grid. Random weights on the grid moved a little, inputs of
low effective rank. Prints the time with the column loop on one thread (what quail does) and on
torch's default thread count.

    python benchmarks/rounding_speed.py [--layers 8]
"""

import argparse
import time
from contextlib import nullcontext

import torch

from quail.quant import fake_quantize, parse_spec
from quail.unlearning import projection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=8, help="SmolLM2 has 30")
    args = parser.parse_args()
    spec = parse_spec("rtn-int4-g32-asym").linear
    torch.manual_seed(0)
    original = torch.stack(
        [fake_quantize(0.05 * torch.randn(3072, 576), spec) for _ in range(args.layers)]
    )
    moved = original + 0.002 * torch.randn_like(original)
    x = torch.randn(4000, 8) @ torch.randn(8, 576) + 0.1 * torch.randn(4000, 576)
    gram = (x.T @ x).double().expand(args.layers, 576, 576).contiguous()
    grids = [projection._grid(layer, spec) for layer in original]
    one_thread = projection.one_thread
    for name, context in (
        ("one thread", one_thread),
        (f"{torch.get_num_threads()} threads", nullcontext),
    ):
        projection.one_thread = context
        start = time.perf_counter()
        projection._round(moved, original, grids, spec, gram)
        print(f"{args.layers} layers of 3072 x 576, column loop on {name}: "
              f"{time.perf_counter() - start:.1f} s", flush=True)  # fmt: skip
    projection.one_thread = one_thread


if __name__ == "__main__":
    main()
