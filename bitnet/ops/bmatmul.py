"""``bmatmul``: binary Q·Kᵀ per attention head, packed bits × packed bits → XNOR-popcount
dot → float32 scores scaled per head.

Kernel and reference: :mod:`bitnet.kernels.bmatmul`.
"""

from __future__ import annotations

import numpy as np

from ..graph.values import ValueInfo
from ..packing import n_words
from . import register
from ._base import Bound, Counts, Op


def tokens_bits(c, v, ch):
    """Check that ``v`` is packed ±1 tokens ``(N, 1, T, ceil(ch/64))``; return T."""
    c.kind(v, ("bits",), ndim=4)
    if v.shape[0] != 1 or v.shape[2] != n_words(ch) or v.channels != ch:
        c.fail(f"input must be {ch}-channel tokens (N, 1, T, {n_words(ch)}) of bits, "
               f"got (N, {', '.join(map(str, v.shape))}) of {v.channels} channels")
    return v.shape[1]


def channels_heads(c):
    """The ``channels`` and ``heads`` attributes (channels a multiple of heads)."""
    ch = c.pos_int("channels")
    heads = c.pos_int("heads")
    if ch % heads:
        c.fail(f"channels={ch} is not a multiple of heads={heads}")
    return ch, heads


def match_bmatmul_softmax(prepared, i, private):
    """bmatmul → softmax (the scores read by the softmax only): ``(step, 2)`` or None.
    Bit for bit the two kernels in a row (:func:`bitnet.kernels.bmatmul._bmatmul_softmax_kernel`)."""
    from ..compile import registry
    from ..kernels.bmatmul import head_masks

    bm = prepared[i]
    if bm.info.op != "bmatmul" or i + 1 >= len(prepared) or bm.fuse is None:
        return None
    sm = prepared[i + 1]
    if sm.info.op != "softmax" or not private(bm, sm):
        return None
    ch, heads, scale, t, s = bm.fuse
    d = ch // heads
    masks, lo, hi = head_masks(ch, heads)
    table = np.empty((heads, d + 1, d + 1), np.float64)
    registry.get("exp_table")(d, scale, table)
    kern = registry.get("bmatmul_softmax")

    def step(a, b):
        n = a.shape[0]
        out = np.empty((n, heads, t, s), np.float32)
        kern(a.reshape(n, t, -1), b.reshape(n, s, -1), masks, lo, hi, d, scale, table, out)
        return out

    return step, 2


_BM_ARGS = "u8[:, :, ::1], u8[:, :, ::1], u8[:, ::1], i8[::1], i8[::1], i8, f4[::1]"


@register
class BMatmul(Op):
    """Binary attention scores (docs/graph.md "bmatmul")."""

    name = "bmatmul"
    n_inputs = 2
    binary = True
    kernels = {
        "bmatmul": ("bitnet.kernels.bmatmul", "_bmatmul_kernel", f"void({_BM_ARGS}, f4[:, :, :, ::1])"),
        "bmatmul_softmax": ("bitnet.kernels.bmatmul", "_bmatmul_softmax_kernel",
                            f"void({_BM_ARGS}, f8[:, :, ::1], f4[:, :, :, ::1])"),
        "exp_table": ("bitnet.kernels.bmatmul", "_exp_table_kernel", "void(i8, f4[::1], f8[:, :, ::1])"),
    }
    fusions = (match_bmatmul_softmax,)

    def check(self, c):
        c.allowed(("channels", "heads"))
        c.roles(("scale",))
        ch, heads = channels_heads(c)
        t = tokens_bits(c, c.inputs[0], ch)
        s = tokens_bits(c, c.inputs[1], ch)
        scale = c.tensor("scale", np.float32, (heads,))
        counts = Counts(params=heads, macs=t * s * ch, binary_macs=t * s * ch, weight_bytes=scale.nbytes)
        return ValueInfo("real", (heads, t, s), s), counts, (ch, heads, scale, t, s)

    def reference(self, c, p):
        from ..kernels.bmatmul import bmatmul_reference

        ch, heads, scale, _, _ = p
        return lambda a, b: bmatmul_reference(a, b, ch, heads, scale)

    def bind(self, c, p, info):
        from ..compile import registry
        from ..kernels.bmatmul import head_masks

        ch, heads, scale, t, s = p
        masks, lo, hi = head_masks(ch, heads)
        d = ch // heads
        kern = registry.get("bmatmul")

        def step(a, b):
            n = a.shape[0]
            out = np.empty((n, heads, t, s), np.float32)
            kern(a.reshape(n, t, -1), b.reshape(n, s, -1), masks, lo, hi, d, scale, out)
            return out

        return Bound(step, fuse=p)
