"""The real-valued head on packed bits: a float32 dense layer reading bits as ±1.

The op (validation, reals in) is :mod:`bitnet.ops.dense`; probabilities are
:func:`bitnet.results.softmax`."""

from __future__ import annotations

import numpy as np

from ..compile.options import jit
from ..errors import ParameterError
from ..packing import n_words

__all__ = ["dense_bits"]


@jit()
def _dense_bits_kernel(x, channels, weight, bias, out):
    """out[n, o] = bias[o] + Σ_c s_c · weight[o, c], s_c = −1 where bit c is set."""
    nb = x.shape[0]
    c_out = weight.shape[0]
    for b in range(nb):
        for o in range(c_out):
            acc = np.float32(0)
            for c in range(channels):
                wv = weight[o, c]
                if (x[b, c >> 6] >> np.uint64(c & 63)) & np.uint64(1):
                    acc -= wv
                else:
                    acc += wv
            out[b, o] = acc + bias[o]


def dense_bits(x, channels, weight, bias, out=None):
    """Float32 dense on packed bits ``(N, ceil(C/64))`` read as ±1 values."""
    x = np.asarray(x)
    if x.dtype != np.uint64 or x.ndim != 2 or x.shape[1] != n_words(channels):
        raise ParameterError(f"dense: bits input must be uint64 (N, {n_words(channels)}), got {x.dtype} {x.shape}")
    if out is None:
        out = np.empty((x.shape[0], weight.shape[0]), np.float32)
    _dense_bits_kernel(np.ascontiguousarray(x), channels, weight, bias, out)
    return out
