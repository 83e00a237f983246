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
from .softmax import sum4

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
def _bmatmul_pc(a, n, b_t, masks, lo, hi, h, i, acc):
    """``acc[j] = popcount((a[n, i] XOR b[j]) AND mask_h)`` for every key ``j``, the
    keys transposed (``b_t (Cw, S)``) so that the loop over keys vectorises."""
    s_n = b_t.shape[1]
    for j in range(s_n):
        acc[j] = 0
    for w in range(lo[h], hi[h]):
        m = masks[h, w]
        aw = a[n, i, w] & m
        for j in range(s_n):
            acc[j] += popcount((aw ^ b_t[w, j]) & m)


@jit()
def _transpose_keys(b, n, b_t):
    for w in range(b_t.shape[0]):
        for j in range(b_t.shape[1]):
            b_t[w, j] = b[n, j, w]


@jit()
def _bmatmul_kernel(a, b, masks, lo, hi, d, scale, out):
    """Scores of ``a (N, T, Cw)`` against ``b (N, S, Cw)`` into ``out (N, H, T, S)``."""
    nb, t, cw = a.shape
    s_n = b.shape[1]
    heads = masks.shape[0]
    b_t = np.empty((cw, s_n), np.uint64)
    acc = np.empty(s_n, np.int64)
    for n in range(nb):
        _transpose_keys(b, n, b_t)
        for h in range(heads):
            sc = scale[h]
            for i in range(t):
                _bmatmul_pc(a, n, b_t, masks, lo, hi, h, i, acc)
                for j in range(s_n):
                    out[n, h, i, j] = np.float32(d - 2 * acc[j]) * sc


@jit()
def _exp_table_kernel(d, scale, table):
    """``table[h, x, y] = exp(float64(s(x)) − float64(s(y)))`` with ``s(pc) =
    float32(d − 2·pc) · scale[h]``: every exponential a softmax of head ``h``'s scores
    can need (a score takes one of ``d + 1`` values), computed with the same ``exp`` as
    :func:`bitnet.kernels.softmax._softmax_kernel`."""
    for h in range(table.shape[0]):
        for x in range(d + 1):
            sx = np.float64(np.float32(d - 2 * x) * scale[h])
            for y in range(d + 1):
                sy = np.float64(np.float32(d - 2 * y) * scale[h])
                table[h, x, y] = np.exp(sx - sy)


@jit()
def _bmatmul_softmax_kernel(a, b, masks, lo, hi, d, scale, table, out):
    """``softmax(bmatmul(a, b))`` in one pass, bit for bit the two kernels in a row:
    the row maximum is the score of the smallest popcount (largest where ``scale < 0``),
    ``exp(s_j − max)`` comes from ``table`` (:func:`_exp_table_kernel`), and the sum and
    the scaling by ``1 / sum`` run as in the softmax kernel."""
    nb, t, cw = a.shape
    s_n = b.shape[1]
    heads = masks.shape[0]
    b_t = np.empty((cw, s_n), np.uint64)
    acc = np.empty(s_n, np.int64)
    e = np.empty(s_n, np.float64)
    for n in range(nb):
        _transpose_keys(b, n, b_t)
        for h in range(heads):
            neg = scale[h] < 0
            for i in range(t):
                _bmatmul_pc(a, n, b_t, masks, lo, hi, h, i, acc)
                m = acc[0]
                for j in range(1, s_n):
                    if neg:
                        m = max(m, acc[j])
                    else:
                        m = min(m, acc[j])
                for j in range(s_n):
                    e[j] = table[h, acc[j], m]
                inv = 1.0 / sum4(e, s_n)
                for j in range(s_n):
                    out[n, h, i, j] = np.float32(e[j] * inv)
