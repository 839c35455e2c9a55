"""One fused pass over a weight pair for the reference round-to-nearest specs.

`ChangeStats.add` in plain torch makes about forty passes over memory per weight pair (three
quantizations, two bucket comparisons, dequantized differences, dot products, two histograms):
a folder analysis then runs at a tenth of the speed of reading the files. This kernel does the
same arithmetic, in the same float32 operations and order per element, in one loop compiled by
numba, blocks of groups handed out to threads as they come free. It covers RTN specs grouped
per output channel or per group of input columns (`int4`, `int8`, `rtn-int3-g64-asym`, ...);
other specs (codebooks, per-tensor scales, backends) take the torch path. Counts, maxima and
histogram bins equal the torch path's exactly; sums agree to float rounding (they are added in
another order).
"""

import threading

import numba
import numpy as np
import torch
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic, overload

from quail.quant import QuantSpec

SUMS = ("change_sq", "quantized_change_sq", "inner", "original_sq", "abs_change_sum")
COUNTS = ("same_bucket", "same_bucket_fixed", "changed", "half_step")
MAXIMA = ("abs_change_max", "half_steps_max")  # in the order of the columns below
CHANGE_SQ, QUANTIZED_CHANGE_SQ, INNER, ORIGINAL_SQ, ABS_CHANGE_SUM = range(len(SUMS))
SAME_BUCKET, SAME_BUCKET_FIXED, CHANGED, HALF_STEP = range(len(COUNTS))
ABS_CHANGE, HALF_STEPS = range(2)  # columns of the per-histogram arrays (maxima, lowest)


def covers(spec: QuantSpec, shape: tuple[int, ...]) -> bool:
    """Whether the fused kernel computes this layer's figures (else the torch path does)."""
    return (
        spec.backend is None
        and spec.method == "rtn"
        and spec.granularity in ("group", "channel")
        and len(shape) == 2
    )


PREFETCH_AHEAD = 4096  # bytes: how far ahead of the group in hand the kernel asks for memory
CACHE_LINE = 64  # bytes
BLOCK_ELEMENTS = 1 << 16  # the unit of work a thread takes: blocks are handed out as threads
# come free, so a thread slowed by other work on its core (page faults reading the memory-mapped
# files, another process) does not hold up the rest at the end of each chunk


def change_sums(w0, w1, spec: QuantSpec, abs_change, half_steps, dropped_bits) -> dict:
    """`ChangeStats`' sums, counts and maxima for one chunk of rows (whole groups), by name;
    |W1 - W0| and |W1 - W0| / (Δ/2) are counted into the `Histogram`s `abs_change` and
    `half_steps`, binned by float32 bit pattern >> `dropped_bits`."""
    a, b = _flat(w0), _flat(w1)
    group = w0.shape[1] if spec.granularity == "channel" else spec.group_size
    block_groups = max(1, BLOCK_ELEMENTS // group)
    blocks = -(-(a.size // group) // block_groups)
    torch_threads = torch.get_num_threads()  # before numba's first call, which may reset it
    threads = max(1, min(torch_threads, numba.get_num_threads(), blocks))
    sums = np.zeros((blocks, len(SUMS)), np.float64)
    counts = np.zeros((blocks, len(COUNTS)), np.int64)
    maxima = np.zeros((blocks, 2), np.int32)  # as bit patterns, see the kernel
    lowest = np.zeros((blocks, 2), np.int32)  # the lowest bit patterns in a bin above 0
    rows = _thread_rows(threads, 1 << (31 - dropped_bits))
    numba_threads = numba.get_num_threads()
    try:
        numba.set_num_threads(threads)  # thread ids, and so histogram rows, are then < threads
        try:
            with numba.parallel_chunksize(1):  # blocks one at a time, see BLOCK_ELEMENTS
                _rtn_pair(
                    a, b, group, block_groups, spec.bits, spec.symmetric, dropped_bits, sums,
                    counts, maxima, lowest, rows[ABS_CHANGE], rows[HALF_STEPS],
                )  # fmt: skip
        finally:
            numba.set_num_threads(numba_threads)
            # numba's OpenMP pool, started by its first call, sets torch's thread count to
            # numba's (one OpenMP runtime): a process that had asked torch for fewer threads
            # got more, and on a busy machine its small ops then ran up to 1000x slower
            torch.set_num_threads(torch_threads)
        highest = maxima.max(0)
        for column, histogram in ((ABS_CHANGE, abs_change), (HALF_STEPS, half_steps)):
            first, last = int(lowest[:, column].min()), int(highest[column])
            histogram.add_rows(rows[column], first >> dropped_bits, last >> dropped_bits)
    except BaseException:  # Ctrl-C included: the rows may hold counts not yet added and zeroed
        _ROWS.rows = None
        raise
    return {
        **dict(zip(SUMS, sums.sum(0).tolist(), strict=True)),
        **dict(zip(COUNTS, counts.sum(0).tolist(), strict=True)),
        **dict(zip(MAXIMA, highest.view(np.float32).tolist(), strict=True)),
    }


_ROWS = threading.local()


def _thread_rows(threads: int, bins: int) -> np.ndarray:
    """Histogram rows for the kernel to count into: (2 histograms, threads, bins) of int64,
    zero, one array per Python thread kept across calls (`Histogram.add_rows` zeroes what the
    kernel touched). Fresh rows for each layer cost more than the kernel on some machines:
    the first touch of each new page faults, and in a virtual machine that can take 0.1 ms
    (docs/BENCHMARKS.md, twelfth session)."""
    rows = getattr(_ROWS, "rows", None)
    if rows is None or rows.shape[1] < threads or rows.shape[2] != bins:
        rows = _ROWS.rows = np.zeros((2, threads, bins), np.int64)
    return rows[:, :threads]


def _flat(weight: torch.Tensor) -> np.ndarray:
    """The weight as a flat numpy array the kernel reads: bfloat16 as its raw bits (uint16,
    widened in the kernel, saving a conversion pass), anything else as float32."""
    weight = weight.detach().contiguous().reshape(-1)
    if weight.dtype == torch.bfloat16:
        return weight.view(torch.int16).numpy().view(np.uint16)
    return weight.to(torch.float32).numpy()


@intrinsic
def _bits_as_float32(typingctx, bits):
    """The float32 whose bit pattern is this int32 (numba views arrays, not scalars)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def _float32_as_bits(typingctx, value):
    """The bit pattern of a float32, as an int32."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def _prefetch(typingctx, array, index):
    """Ask the CPU to start loading array[index] into its caches. The kernel reads each group
    several times from cache but only once from memory, and the hardware prefetcher did not
    keep up with that pattern (docs/BENCHMARKS.md, eleventh session)."""

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        data = context.make_array(array_type)(context, builder, args[0])
        address = cgutils.get_item_pointer(
            context, builder, array_type, data, [args[1]], wraparound=False
        )
        byte_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        prefetch = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]),
            "llvm.prefetch.p0",
        )  # arguments: read (0), keep in all cache levels (3), data, not instructions (1)
        flags = [ir.Constant(i32, flag) for flag in (0, 3, 1)]
        builder.call(prefetch, [builder.bitcast(address, byte_pointer), *flags])
        return context.get_dummy_value()

    return types.none(array, types.intp), codegen


def _value(array, j):
    """Element j of a weight array as float32 (typed by the overload below)."""


@overload(_value, inline="always")
def _value_overload(array, j):
    if array.dtype == types.uint16:  # bfloat16 bits: the top half of a float32's
        return lambda array, j: _bits_as_float32(np.int32(array[j]) << np.int32(16))
    return lambda array, j: array[j]


@numba.njit(inline="always")
def _ordered(bits):
    """An int32 that orders as the float32 with these bits does (negative floats order
    backwards as integers, so their magnitude bits are flipped); it is its own inverse."""
    return np.int32(bits ^ np.int32((bits >> np.int32(31)) & np.int32(0x7FFFFFFF)))


@numba.njit(inline="always")
def _rtn_step(w, bits, symmetric):
    """(Δ, zero) of one group, as `quail.quant.rtn.rtn_scales` computes them in float32;
    zero is 0 for symmetric specs, so `code * Δ + zero` decodes both kinds. Extremes are taken
    over bit patterns as int32, which vectorises (float max does not)."""
    if symmetric:
        top = np.int32(0)
        for j in range(w.shape[0]):
            top = max(top, np.int32(_float32_as_bits(_value(w, j)) & np.int32(0x7FFFFFFF)))
        scale = _bits_as_float32(top) / np.float32(2 ** (bits - 1) - 1)
        zero = np.float32(0.0)
    else:
        low = high = _ordered(_float32_as_bits(_value(w, 0)))
        for j in range(w.shape[0]):
            key = _ordered(_float32_as_bits(_value(w, j)))
            low, high = min(low, key), max(high, key)
        zero = _bits_as_float32(_ordered(low))
        scale = (_bits_as_float32(_ordered(high)) - zero) / np.float32(2**bits - 1)
    if not scale > 0:
        scale = np.float32(1.0)
    return scale, zero


@numba.njit(parallel=True, nogil=True, cache=True, fastmath={"reassoc", "nsz"})
def _rtn_pair(
    w0, w1, group, block_groups, bits, symmetric, dropped_bits, sums, counts, maxima, lowest,
    h_abs, h_half,
):  # fmt: skip
    """The kernel: w0 and w1 are flat arrays of whole groups (float32, or bfloat16 bits), taken
    `block_groups` groups at a time; block k fills row k of the sums, counts, maxima and lowest, and
    the thread running it counts into its own row of the histograms. `reassoc` lets the sums
    vectorise; every per-element value is computed exactly as the torch path computes it.
    The maxima and the lowest bit patterns that fall in a bin above 0 bound the histogram bins
    the block touched, so only those are read back. Counts within a group, like the scales'
    extremes, are int32 through explicit casts: numba widens int32 arithmetic to int64, which
    halves the vector width."""
    n_groups, n = w0.shape[0] // group, w0.shape[0]
    distance, line = PREFETCH_AHEAD // w0.itemsize, CACHE_LINE // w0.itemsize
    if symmetric:
        low, high = np.float32(-(2 ** (bits - 1))), np.float32(2 ** (bits - 1) - 1)
    else:
        low, high = np.float32(0.0), np.float32(2**bits - 1)
    two = np.float32(2.0)
    shift = np.uint32(dropped_bits)
    above_zero_bin = np.int32(1 << dropped_bits)
    no_bin = np.int32(np.iinfo(np.int32).max)
    for block in numba.prange(sums.shape[0]):
        thread = numba.get_thread_id()
        row_abs, row_half = h_abs[thread], h_half[thread]
        size = np.empty(group, np.float32)  # |change|, kept for the histograms
        half_steps = np.empty(group, np.float32)
        size_bits, half_steps_bits = size.view(np.int32), half_steps.view(np.int32)
        change_sq = quantized_change_sq = inner = original_sq = abs_change_sum = 0.0
        same = same_fixed = changed = half_step = 0
        abs_bits_max = half_bits_max = np.int32(0)
        abs_bits_low = half_bits_low = no_bin
        for g in range(block * block_groups, min((block + 1) * block_groups, n_groups)):
            start = g * group
            for ahead in range(start + distance, min(start + distance + group, n), line):
                _prefetch(w0, ahead)
                _prefetch(w1, ahead)
            a, b = w0[start : start + group], w1[start : start + group]
            s0, z0 = _rtn_step(a, bits, symmetric)
            s1, z1 = _rtn_step(b, bits, symmetric)
            # float32 sums and int32 counts within a group (vectorised), float64 across groups
            g_change_sq = g_quantized_sq = g_inner = g_original_sq = g_abs = np.float32(0.0)
            g_same = g_same_fixed = g_changed = g_half_step = np.int32(0)
            for j in range(group):
                x0, x1 = _value(a, j), _value(b, j)
                c0 = min(max(np.rint((x0 - z0) / s0), low), high)
                c1 = min(max(np.rint((x1 - z1) / s1), low), high)
                fixed = min(max(np.rint((x1 - z0) / s0), low), high)
                g_same = np.int32(g_same + np.int32(c0 == c1))
                g_same_fixed = np.int32(g_same_fixed + np.int32(c0 == fixed))
                change = x1 - x0
                quantized_change = (c1 * s1 + z1) - (c0 * s0 + z0)
                g_change_sq += change * change
                g_quantized_sq += quantized_change * quantized_change
                g_inner += quantized_change * change
                g_original_sq += x0 * x0
                size[j] = abs(change)
                half_steps[j] = abs(size[j] / s0 * two)  # abs: inf/inf's NaN has its sign set
                g_abs += size[j]
                g_changed = np.int32(g_changed + np.int32(size[j] != 0))
                g_half_step = np.int32(g_half_step + np.int32(half_steps[j] >= 1))
                # extremes over bit patterns as int32: they order non-negative floats as
                # the values do and, unlike float max, vectorise
                size_pattern = _float32_as_bits(size[j])
                half_pattern = _float32_as_bits(half_steps[j])
                abs_bits_max = max(abs_bits_max, size_pattern)
                half_bits_max = max(half_bits_max, half_pattern)
                abs_bits_low = min(
                    abs_bits_low, size_pattern if size_pattern >= above_zero_bin else no_bin
                )
                half_bits_low = min(
                    half_bits_low, half_pattern if half_pattern >= above_zero_bin else no_bin
                )
            change_sq += g_change_sq
            quantized_change_sq += g_quantized_sq
            inner += g_inner
            original_sq += g_original_sq
            abs_change_sum += g_abs
            same += g_same
            same_fixed += g_same_fixed
            changed += g_changed
            half_step += g_half_step
            for j in range(group):  # scalar: about half the kernel's time
                row_abs[np.uint32(size_bits[j]) >> shift] += 1  # unsigned: no wraparound test
                row_half[np.uint32(half_steps_bits[j]) >> shift] += 1
        sums[block, CHANGE_SQ] = change_sq
        sums[block, QUANTIZED_CHANGE_SQ] = quantized_change_sq
        sums[block, INNER] = inner
        sums[block, ORIGINAL_SQ] = original_sq
        sums[block, ABS_CHANGE_SUM] = abs_change_sum
        counts[block, SAME_BUCKET] = same
        counts[block, SAME_BUCKET_FIXED] = same_fixed
        counts[block, CHANGED] = changed
        counts[block, HALF_STEP] = half_step
        maxima[block, ABS_CHANGE] = abs_bits_max
        maxima[block, HALF_STEPS] = half_bits_max
        lowest[block, ABS_CHANGE] = abs_bits_low
        lowest[block, HALF_STEPS] = half_bits_low
