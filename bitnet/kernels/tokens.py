"""Patches to tokens: the ``tokens`` op's kernel and reference.

Convention (docs/graph.md "tokens"): the real patches ``(N, Hp, Wp, C)`` of a
patch-embedding convolution become ``T = Hp·Wp`` tokens in row-major patch order
(patch row, then column: NHWC order, nothing moves in memory), laid out as the one-row
image ``(N, 1, T, C)`` every later op reads, plus the learned position embedding
``pos (T, C)`` added in float32.
"""

from __future__ import annotations

import numpy as np

from ..compile.options import jit

__all__ = ["tokens_reference"]


def tokens_reference(x, pos):
    """``(N, Hp, Wp, C)`` float32 → ``(N, 1, Hp·Wp, C)`` + ``pos`` (float32)."""
    x = np.asarray(x, np.float32)
    n, c = x.shape[0], x.shape[-1]
    return x.reshape(n, 1, -1, c) + np.asarray(pos, np.float32)


@jit()
def _tokens_kernel(x, pos, out):
    """``out[n, t, c] = x[n, t, c] + pos[t, c]`` on ``(N, T, C)`` views."""
    nb, t, c = x.shape
    for b in range(nb):
        for i in range(t):
            for j in range(c):
                out[b, i, j] = x[b, i, j] + pos[i, j]
