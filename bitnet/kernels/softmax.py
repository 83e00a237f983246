"""Row softmax over the last axis: the ``softmax`` op's kernel and reference.

Convention (docs/graph.md "softmax"): for each row ``x`` of float32 values, in float64,
``m = max x``, ``e = exp(x − m)``, ``y = e / Σ e``, rounded once to float32 (float64
inside for the reason given in :mod:`bitnet.kernels.layernorm`). The kernels multiply
by ``1 / Σ e`` (one division per row); in float64 that differs from the division by at
most one float64 unit, far below the float32 rounding of the result. The probabilities of a
model's output are :func:`bitnet.results.softmax`; this is the graph op (attention).
"""

from __future__ import annotations

import numpy as np

from ..compile.options import jit

__all__ = ["softmax_reference", "sum4"]


def softmax_reference(x):
    """NumPy softmax of float32 ``(..., S)`` over the last axis (module docstring)."""
    xd = np.asarray(x, np.float32).astype(np.float64)
    e = np.exp(xd - xd.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


@jit()
def sum4(e, n):
    """``Σ e[:n]`` in float64 as four interleaved partial sums (four short dependency
    chains instead of one long one; any float64 order rounds to the same float32)."""
    n4 = n - n % 4
    s0 = s1 = s2 = s3 = 0.0
    for j in range(0, n4, 4):
        s0 += e[j]
        s1 += e[j + 1]
        s2 += e[j + 2]
        s3 += e[j + 3]
    for j in range(n4, n):
        s0 += e[j]
    return (s0 + s1) + (s2 + s3)


@jit()
def _softmax_kernel(x, out):
    """``out[r] = softmax(x[r])`` for every row of float32 ``(rows, S)``."""
    rows, n = x.shape
    e = np.empty(n, np.float64)
    for r in range(rows):
        m = np.float64(x[r, 0])
        for j in range(1, n):
            if x[r, j] > m:
                m = np.float64(x[r, j])
        for j in range(n):
            e[j] = np.exp(np.float64(x[r, j]) - m)
        inv = 1.0 / sum4(e, n)
        for j in range(n):
            out[r, j] = np.float32(e[j] * inv)
