"""Row softmax over the last axis: the ``softmax`` op's kernel and reference.

Convention (docs/graph.md "softmax"): for each row ``x`` of float32 values, in float64,
``m = max x``, ``e = exp(x − m)``, ``y = e / Σ e``, rounded once to float32 (float64
inside for the reason given in :mod:`bitnet.kernels.layernorm`). The probabilities of a
model's output are :func:`bitnet.results.softmax`; this is the graph op (attention).
"""

from __future__ import annotations

import numpy as np

from ..compile.options import jit

__all__ = ["softmax_reference"]


def softmax_reference(x):
    """NumPy softmax of float32 ``(..., S)`` over the last axis (module docstring)."""
    xd = np.asarray(x, np.float32).astype(np.float64)
    e = np.exp(xd - xd.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


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
        s = 0.0
        for j in range(n):
            e[j] = np.exp(np.float64(x[r, j]) - m)
            s += e[j]
        for j in range(n):
            out[r, j] = np.float32(e[j] / s)
