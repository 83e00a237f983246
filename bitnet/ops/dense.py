"""``dense``: the float32 head, reals in or packed bits read as ±1.

Kernel: :mod:`bitnet.kernels.head` (bits in; reals in use NumPy's matmul); reference:
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
        wT = np.ascontiguousarray(wt.T)
        return Bound(lambda x: x @ wT + bias)

