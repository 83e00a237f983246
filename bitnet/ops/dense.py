"""``dense``: the float32 head, reals in or packed bits read as ±1.

Kernel: :mod:`bitnet.kernels.head` (bits in; reals in: :func:`_dense_rows`, batch- and
CPU-independent); reference:
:func:`bitnet.kernels.reference.dense_reference`.
"""

from __future__ import annotations

import numpy as np

from ..graph.values import ValueInfo
from . import register
from ._base import Bound, Counts, Op


@register
class Dense(Op):
    """Float32 fully connected layer (docs/graph.md "dense")."""

    name = "dense"
    kernels = {"dense_bits": ("bitnet.kernels.head", "_dense_bits_kernel",
                              "void(u8[:, ::1], i8, f4[:, ::1], f4[::1], f4[:, ::1])")}

    def check(self, c):
        c.allowed(("in_features", "out_features"))
        c.roles(("weight", "bias"))
        v = c.inputs[0]
        c.kind(v, ("real", "bits"), ndim=2)
        c_in = c.pos_int("in_features")
        c_out = c.pos_int("out_features")
        if c_in != v.channels:
            c.fail(f"in_features={c_in} but the input has {v.channels} features")
        wt = c.tensor("weight", np.float32, (c_out, c_in))
        bias = c.tensor("bias", np.float32, (c_out,))
        counts = Counts(params=wt.size + bias.size, macs=c_in * c_out, weight_bytes=wt.nbytes + bias.nbytes)
        return ValueInfo("real", (c_out,), c_out), counts, (wt, bias, c_in, c_out, v.kind)

    def reference(self, c, p):
        from ..kernels.reference import dense_reference

        wt, bias, c_in, _, kind = p
        if kind == "bits":
            return lambda x: dense_reference(x, wt, bias, c_in)
        return lambda x: dense_reference(x, wt, bias)

    def bind(self, c, p, info):
        wt, bias, c_in, c_out, kind = p
        if kind == "bits":
            from ..compile import registry

            kern = registry.get("dense_bits")

            def step(x):
                out = np.empty((x.shape[0], c_out), np.float32)
                kern(x, c_in, wt, bias, out)
                return out

            return Bound(step)
        return Bound(lambda x: _dense_rows(x, wt, bias))


#: products per temporary block in :func:`_dense_rows` (4 MiB of float32)
_DENSE_BLOCK = 1 << 20


def _dense_rows(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Float32 ``x @ weight.T + bias`` whose every row is computed alone, in one fixed
    order: ``x (N, C_in)``, ``weight (C_out, C_in)``, ``bias (C_out,)``.

    A BLAS product is not batch-independent: OpenBLAS picks another kernel (gemv for one
    row, gemm for more) and, per CPU core type, another summation order, so a window's
    logits changed in the last bit with the number of windows it was classified with
    (stream vs whole file; seen with OpenBLAS's Haswell/Zen, Sandybridge, Nehalem and
    Katmai kernels). ``np.einsum`` avoids BLAS but sums in another order on ARM64 (NEON)
    than on x86. Here each output is the exactly rounded products followed by NumPy's
    pairwise sum over the contiguous ``C_in`` axis: plain C with eight accumulators in a
    fixed order, the same for any batch, SIMD width or CPU (bit-identical logits on x86
    and emulated ARM64: scripts/arm64_emulated.sh). The head is tiny: ~2 us more than
    BLAS for the bundled model's 128 -> 10 head.
    """
    n, (c_out, c_in) = x.shape[0], weight.shape
    out = np.empty((n, c_out), np.result_type(x, weight))
    rows = max(1, _DENSE_BLOCK // (c_out * c_in))     # bounds the temporary (N may be large)
    for i in range(0, n, rows):
        prod = np.multiply(x[i : i + rows, None, :], weight[None, :, :])   # (rows, C_out, C_in)
        np.add.reduce(prod, axis=2, out=out[i : i + rows])
    out += bias
    return out

