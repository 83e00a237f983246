"""Layer norm over the last axis (channels): the ``layernorm`` op's kernel and reference.

Convention (docs/graph.md "layernorm"): for each row ``x`` of ``C`` float32 values,
in float64,

    mean = Σ x / C,   var = Σ (x − mean)² / C   (biased, as PyTorch),
    r = 1 / sqrt(var + eps),   y = (x − mean) · r · weight + bias,

rounded once to float32. Float64 inside means any two implementations (this kernel,
the NumPy reference, PyTorch's eval-mode model in ``trainer/transformer.py``) differ only
where a float64 sum in another order rounds to another float32, which is rare: a
``sign`` that follows then sees the same value on both sides.
"""

from __future__ import annotations

import numpy as np

from ..compile.options import jit
from .sign import sign_words

__all__ = ["layernorm_reference"]


def layernorm_reference(x, weight, bias, eps):
    """NumPy layer norm of float32 ``(..., C)`` over the last axis (module docstring)."""
    xd = np.asarray(x, np.float32).astype(np.float64)
    mu = xd.mean(axis=-1, keepdims=True)
    var = ((xd - mu) ** 2).mean(axis=-1, keepdims=True)
    r = 1.0 / np.sqrt(var + float(eps))
    y = (xd - mu) * r * np.asarray(weight, np.float64) + np.asarray(bias, np.float64)
    return y.astype(np.float32)


@jit()
def _ln_row(x, r, weight, bias, eps, out, orow):
    """``out[orow] = layernorm(x[r])`` (module docstring). The sums run in four
    interleaved partial sums: float64 sums in any order round to the same float32
    result (module docstring), and four chains are four times shorter."""
    c = x.shape[1]
    c4 = c - c % 4
    s0 = s1 = s2 = s3 = 0.0
    for j in range(0, c4, 4):
        s0 += np.float64(x[r, j])
        s1 += np.float64(x[r, j + 1])
        s2 += np.float64(x[r, j + 2])
        s3 += np.float64(x[r, j + 3])
    for j in range(c4, c):
        s0 += np.float64(x[r, j])
    mu = ((s0 + s1) + (s2 + s3)) / c
    v0 = v1 = v2 = v3 = 0.0
    for j in range(0, c4, 4):
        d0 = np.float64(x[r, j]) - mu
        d1 = np.float64(x[r, j + 1]) - mu
        d2 = np.float64(x[r, j + 2]) - mu
        d3 = np.float64(x[r, j + 3]) - mu
        v0 += d0 * d0
        v1 += d1 * d1
        v2 += d2 * d2
        v3 += d3 * d3
    for j in range(c4, c):
        d0 = np.float64(x[r, j]) - mu
        v0 += d0 * d0
    rs = 1.0 / np.sqrt(((v0 + v1) + (v2 + v3)) / c + eps)
    for j in range(c):
        y = (np.float64(x[r, j]) - mu) * rs * np.float64(weight[j]) + np.float64(bias[j])
        out[orow, j] = np.float32(y)


@jit()
def _layernorm_kernel(x, weight, bias, eps, out):
    """``out[r] = layernorm(x[r])`` for every row of float32 ``(rows, C)``."""
    for r in range(x.shape[0]):
        _ln_row(x, r, weight, bias, eps, out, r)


@jit()
def _layernorm_sign_kernel(x, weight, bias, eps, shift, has_shift, out):
    """``sign(layernorm(x) + shift)`` into packed bits ``out (rows, Cw)``: bit for bit
    the two kernels in a row (each float32 row is made, then packed by ``sign_words``)."""
    rows, c = x.shape
    cw = out.shape[1]
    y = np.empty((1, c), np.float32)
    yf = y.reshape(-1)
    of = out.reshape(-1)
    for r in range(rows):
        _ln_row(x, r, weight, bias, eps, y, 0)
        sign_words(yf, 0, c, shift, has_shift, of, r * cw)
