"""``add``: the residual sum of two real values of one shape, and the fused chains
that start at it: add → maxpool [→ sign] and add → sign (:mod:`bitnet.kernels.pool`).

Reference: :func:`bitnet.kernels.reference.add_reference`.
"""

from __future__ import annotations

import numpy as np

from . import register
from ._base import Bound, Counts, Op
from ._conv import _F4
from .pool import _POOL_SIGN, match_pool_sign
from .sign import NO_SHIFT


def match_add_sign(prepared, i, private):
    """add → sign, the sum also kept (the next residual reads it): ``(step, 2)``
    returning ``(sum, bits)``, or None."""
    from ..compile import registry

    add = prepared[i]
    if add.info.op != "add" or i + 1 >= len(prepared):
        return None
    sign = prepared[i + 1]
    if sign.info.op != "sign" or sign.info.inputs != [add.info.output]:
        return None
    shift = sign.fuse
    has = shift is not None
    sh_ = shift if has else NO_SHIFT
    kern = registry.get("add_sign")
    oshape = add.info.out_info.shape
    bshape = sign.info.out_info.shape
    c = oshape[-1]
    cw = bshape[-1]

    def step(a, b):
        out = np.empty((a.shape[0],) + oshape, np.float32)
        bits = np.empty((a.shape[0],) + bshape, np.uint64)
        kern(a.reshape(-1, c), b.reshape(-1, c), sh_, has, out.reshape(-1, c), bits.reshape(-1, cw))
        return out, bits

    return step, 2


def match_add_maxpool(prepared, i, private):
    """add → maxpool (real): ``(step, 2)`` or None (the sum is never stored)."""
    from ..compile import registry

    add = prepared[i]
    if add.info.op != "add" or i + 1 >= len(prepared):
        return None
    pool = prepared[i + 1]
    if pool.info.op != "maxpool" or pool.fuse is None or not private(add, pool):
        return None
    (kh, kw), (sh, sw) = pool.fuse
    kern = registry.get("add_maxpool_real")
    oshape = pool.info.out_info.shape

    def step(a, b):
        out = np.empty((a.shape[0],) + oshape, np.float32)
        kern(a, b, kh, kw, sh, sw, out)
        return out

    return step, 2


@register
class Add(Op):
    """Element-wise sum of two real values."""

    name = "add"
    n_inputs = 2
    kernels = {
        "add_maxpool_real": ("bitnet.kernels.pool", "_add_maxpool_real_kernel",
                             f"void({_F4}, {_F4}, i8, i8, i8, i8, {_F4})"),
        "pool_sign": _POOL_SIGN,
        "add_sign": ("bitnet.kernels.pool", "_add_sign_kernel",
                     "void(f4[:, ::1], f4[:, ::1], f4[::1], b1, f4[:, ::1], u8[:, ::1])"),
    }
    # add → maxpool → sign first: it keeps the pooled values and makes the bits
    fusions = (match_pool_sign, match_add_sign, match_add_maxpool)

    def check(self, c):
        c.allowed(())
        c.roles(())
        a, b = c.inputs
        c.kind(a, ("real",))
        c.kind(b, ("real",))
        if a.shape != b.shape:
            c.fail(f"inputs have different shapes {a.shape} and {b.shape}")
        return a, Counts(), None

    def reference(self, c, p):
        from ..kernels.reference import add_reference

        return add_reference

    def bind(self, c, p, info):
        return Bound(np.add)
