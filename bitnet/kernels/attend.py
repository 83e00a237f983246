"""Attention probabilities × binary values, heads merged: the ``attend`` op.

Convention (docs/graph.md "attend"): ``p`` float32 ``(N, H, T, S)`` (a ``softmax`` of
``bmatmul`` scores) and ``v`` packed ±1 tokens ``(N, 1, S, Cw)`` of ``C`` channels;
head ``h`` owns the channels ``[h·d, (h+1)·d)``. The output is real ``(N, 1, T, C)``,
the heads side by side (no reshape op needed):

* ``probs="real"``: ``out[t, c] = Σ_s p[h, t, s] · v[s, c]`` (``v = ±1``), summed in
  float64 and rounded once to float32 (see :mod:`bitnet.kernels.layernorm` for why).
* ``probs="binary"``: the probabilities are binarised, ``β[t, s] = 1 if p[h, t, s] >=
  tau[h] else 0`` (a float32 comparison), and ``out[t, c] = Σ_s β[t, s] · v[s, c]``, an
  exact integer: with ``β`` packed over ``s`` and the values' −1 bits transposed
  (``vneg[c]`` packed over ``s``), ``out = popcount(β) − 2·popcount(β AND vneg[c])``
  (AND-popcount), stored as float32 (exact: ``|out| <= S``).
"""

from __future__ import annotations

import numpy as np

from ..compile.options import jit
from ..packing import unpack_signs
from ._common import popcount

__all__ = ["attend_reference"]


def attend_reference(p, v, channels, heads, probs="real", tau=None):
    """``(N, 1, T, C)`` float32 from the unpacked ±1 values (module docstring)."""
    p = np.asarray(p, np.float32)
    vv = unpack_signs(v, channels)[:, 0]                        # (N, S, C) ±1
    d = channels // heads
    out = np.empty((p.shape[0], 1, p.shape[2], channels), np.float32)
    for h in range(heads):
        vh = vv[..., h * d:(h + 1) * d]
        if probs == "real":
            o = np.einsum("nts,nsc->ntc", p[:, h].astype(np.float64), vh.astype(np.float64))
        else:
            beta = (p[:, h] >= np.float32(tau[h])).astype(np.int64)
            o = np.einsum("nts,nsc->ntc", beta, vh.astype(np.int64))
        out[:, 0, :, h * d:(h + 1) * d] = o.astype(np.float32)
    return out


@jit()
def _attend_real_kernel(p, v, d, out):
    """``p (N, H, T, S)`` real × ``v (N, S, Cw)`` ±1 → ``out (N, T, C)`` (float64 sums)."""
    nb, heads, t, s_n = p.shape
    channels = heads * d
    vf = np.empty((s_n, channels), np.float64)     # the ±1 values (x·±1 is exact)
    acc = np.empty((t, d), np.float64)
    for n in range(nb):
        for j in range(s_n):
            for ch in range(channels):
                neg = (v[n, j, ch >> 6] >> np.uint64(ch & 63)) & np.uint64(1)
                vf[j, ch] = -1.0 if neg else 1.0
        for h in range(heads):
            acc[:, :] = 0.0
            for j in range(s_n):                   # every (t, c) sums over s in order
                vr = vf[j, h * d:(h + 1) * d]
                for i in range(t):
                    pj = np.float64(p[n, h, i, j])
                    ai = acc[i]
                    for c in range(d):
                        ai[c] += pj * vr[c]
            for i in range(t):
                for c in range(d):
                    out[n, i, h * d + c] = np.float32(acc[i, c])


@jit()
def _attend_binary_kernel(p, v, channels, d, tau, out):
    """Binarised ``p >= tau[h]`` × ``v`` by AND-popcount → ``out (N, T, C)``."""
    nb, heads, t, s_n = p.shape
    sw = (s_n + 63) >> 6
    vneg = np.zeros((channels, sw), np.uint64)     # values' −1 bits, transposed
    beta = np.empty(sw, np.uint64)
    for n in range(nb):
        vneg[:, :] = 0
        for j in range(s_n):
            for ch in range(channels):
                if (v[n, j, ch >> 6] >> np.uint64(ch & 63)) & np.uint64(1):
                    vneg[ch, j >> 6] |= np.uint64(1) << np.uint64(j & 63)
        for h in range(heads):
            th = tau[h]
            for i in range(t):
                beta[:] = 0
                for j in range(s_n):
                    if p[n, h, i, j] >= th:
                        beta[j >> 6] |= np.uint64(1) << np.uint64(j & 63)
                cnt = 0
                for w in range(sw):
                    cnt += popcount(beta[w])
                for c in range(d):
                    ch = h * d + c
                    neg = 0
                    for w in range(sw):
                        neg += popcount(beta[w] & vneg[ch, w])
                    out[n, i, ch] = np.float32(cnt - 2 * neg)
