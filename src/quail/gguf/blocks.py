"""ggml's quantized blocks read as quail's grouped codes: integer codes per element, one scale
(and zero) per sub-block, so that `code · scale (+ zero)` is the value llama.cpp computes, in
the same float32 order (K-quants: `(d·sc)·q − dmin·m`).

Layouts are ggml's (ggml-common.h), unpacked as the `gguf` package's dequantizers unpack them.
Signed grids (Q8_0, Q5_0, Q4_0, Q6_K) may have a negative scale (Q4_0's is the group's signed
extreme / −8): quail keeps scales positive by negating scale and codes, which changes no value,
so a group's codes then run from −(2^(b−1) − 1) to 2^(b−1) (e.g. −7..8 for Q4_0).
"""

import numpy as np

QK_K = 256  # elements of a K-quant super-block


def _f16(raw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(raw).view(np.float16).astype(np.float32)


def _nibbles(qs: np.ndarray, n_blocks: int, width: int) -> np.ndarray:
    """Low nibbles of each run of `width` bytes, then their high nibbles: ggml's 4-bit order."""
    qs = qs.reshape(n_blocks, -1, 1, width) >> np.array([0, 4], np.uint8).reshape(1, 1, 2, 1)
    return (qs & np.uint8(0x0F)).reshape(n_blocks, -1)


def _scale_min_k4(scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 6-bit sub-block scales and mins of Q4_K and Q5_K (12 bytes per super-block)."""
    n_blocks = scales.shape[0]
    scales = scales.reshape(n_blocks, 3, 4)
    d, m, m_d = np.split(scales, 3, axis=1)
    sc = np.concatenate([d & 0x3F, (m_d & 0x0F) | ((d >> 2) & 0x30)], axis=1)
    mins = np.concatenate([m & 0x3F, (m_d >> 4) | ((m >> 2) & 0x30)], axis=1)
    return sc.reshape(n_blocks, 8).astype(np.float32), mins.reshape(n_blocks, 8).astype(np.float32)


def unpack(blocks: np.ndarray, name: str):
    """(codes (groups, group length), scale (groups, 1), zero (groups, 1) or None) of the
    blocks of GGUF tensor type `name` (Q8_0, Q5_0, Q5_1, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K); `blocks` is
    (n_blocks, bytes per block) uint8."""
    n = blocks.shape[0]
    zero = None
    if name == "Q8_0":
        scale, codes = _f16(blocks[:, :2]), blocks[:, 2:].copy().view(np.int8).astype(np.int16)
    elif name == "Q4_0":
        scale = _f16(blocks[:, :2])
        codes = _nibbles(blocks[:, 2:], n, 16).astype(np.int16) - 8
    elif name == "Q4_1":
        scale, zero = _f16(blocks[:, :2]), _f16(blocks[:, 2:4])
        codes = _nibbles(blocks[:, 4:], n, 16)
    elif name in ("Q5_0", "Q5_1"):
        offset = 2 if name == "Q5_0" else 4
        scale = _f16(blocks[:, :2])
        high = np.ascontiguousarray(blocks[:, offset : offset + 4]).view(np.uint32)
        high = (high >> np.arange(32, dtype=np.uint32)) & np.uint32(1)
        codes = _nibbles(blocks[:, offset + 4 :], n, 16) | (high.astype(np.uint8) << np.uint8(4))
        if name == "Q5_0":
            codes = codes.astype(np.int16) - 16
        else:
            zero = _f16(blocks[:, 2:4])
    elif name in ("Q4_K", "Q5_K"):
        d, dmin = _f16(blocks[:, :2]), _f16(blocks[:, 2:4])
        sc, mins = _scale_min_k4(blocks[:, 4:16])
        if name == "Q4_K":
            codes = _nibbles(blocks[:, 16:], n, 32)
        else:
            low = _nibbles(blocks[:, 48:], n, 32)
            high = blocks[:, 16:48].reshape(n, 1, 32) >> np.arange(8, dtype=np.uint8).reshape(
                1, 8, 1
            )
            codes = low | ((high & np.uint8(1)).reshape(n, -1) << np.uint8(4))
        scale, zero = d * sc, -(dmin * mins)
    elif name == "Q6_K":
        ql, qh = blocks[:, :128], blocks[:, 128:192]
        sc = blocks[:, 192:208].copy().view(np.int8).astype(np.float32)
        scale = _f16(blocks[:, 208:210]) * sc
        low = _nibbles(ql, n, 64).reshape(n, 2, 128)
        high = qh.reshape(n, 2, 1, 32) >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)
        high = (high & np.uint8(3)).reshape(n, 2, 128)
        codes = (low | (high << np.uint8(4))).astype(np.int16).reshape(n, -1) - 32
    else:
        raise ValueError(f"no unpacking for GGUF tensor type {name}")
    groups = scale.size
    codes, scale = codes.reshape(groups, -1), scale.reshape(groups, 1).astype(np.float32)
    if zero is None:  # signed grid: keep scales positive (values unchanged)
        codes = np.where(scale < 0, -codes, codes).astype(np.int8)
        scale = np.abs(scale)
        return codes, scale, None
    return codes.astype(np.uint8), scale, zero.reshape(groups, 1).astype(np.float32)
