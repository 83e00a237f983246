"""Activation × activation binary matmul per attention head: the ``bmatmul`` op.

Convention (docs/graph.md "bmatmul"): ``a`` (queries) and ``b`` (keys) are packed ±1
tokens ``(N, 1, T, Cw)`` and ``(N, 1, S, Cw)`` of ``C`` channels (docs/design.md §2: a
set bit is −1, channel ``c`` in word ``c // 64``, bit ``c % 64``). Head ``h`` owns the
channels ``[h·d, (h+1)·d)``, ``d = C / heads``; its score of query ``t`` and key ``s`` is

    dot = d − 2·popcount((a[t] XOR b[s]) AND mask_h)        (exact integer, |dot| <= d)
    out[n, h, t, s] = float32(dot) · scale[h]               (one float32 multiply)

where ``mask_h`` has the bits of head ``h``'s channels set (heads may share a word).
"""

from __future__ import annotations

import numpy as np

from ..compile.options import jit
from ..packing import n_words, unpack_signs
from ._common import popcount

__all__ = ["bmatmul_reference", "head_masks"]


def head_masks(channels, heads):
    """``(masks (H, Cw) uint64, lo (H,) int64, hi (H,) int64)``: the bits of each head's
    channels, and the range of words ``[lo, hi)`` they touch."""
    d = channels // heads
    cw = n_words(channels)
    masks = np.zeros((heads, cw), np.uint64)
    lo = np.zeros(heads, np.int64)
    hi = np.zeros(heads, np.int64)
    for h in range(heads):
        for ch in range(h * d, (h + 1) * d):
            masks[h, ch >> 6] |= np.uint64(1) << np.uint64(ch & 63)
        lo[h], hi[h] = (h * d) >> 6, (((h + 1) * d - 1) >> 6) + 1
    return masks, lo, hi


def bmatmul_reference(a, b, channels, heads, scale):
    """Scores ``(N, H, T, S)`` float32 from the unpacked ±1 values (module docstring)."""
    av = unpack_signs(a, channels).astype(np.int64)[:, 0]      # (N, T, C)
    bv = unpack_signs(b, channels).astype(np.int64)[:, 0]      # (N, S, C)
    d = channels // heads
    out = np.empty((a.shape[0], heads, av.shape[1], bv.shape[1]), np.float32)
    for h in range(heads):
        dot = np.einsum("ntc,nsc->nts", av[..., h * d:(h + 1) * d], bv[..., h * d:(h + 1) * d])
        out[:, h] = dot.astype(np.float32) * np.float32(scale[h])
    return out


@jit()
def _bmatmul_kernel(a, b, masks, lo, hi, d, scale, out):
    """Scores of ``a (N, T, Cw)`` against ``b (N, S, Cw)`` into ``out (N, H, T, S)``."""
    nb, t, _ = a.shape
    s_n = b.shape[1]
    heads = masks.shape[0]
    for n in range(nb):
        for h in range(heads):
            sc = scale[h]
            w0, w1 = lo[h], hi[h]
            for i in range(t):
                for j in range(s_n):
                    pc = 0
                    for w in range(w0, w1):
                        pc += popcount((a[n, i, w] ^ b[n, j, w]) & masks[h, w])
                    out[n, h, i, j] = np.float32(d - 2 * pc) * sc
