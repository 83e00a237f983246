"""The pools: ``maxpool`` (bits or reals), ``avgpool`` (reals), ``global_avgpool``
(bits or reals), and the fused chain [add →] maxpool → sign that keeps the pooled
values too.

Kernels: :mod:`bitnet.kernels.pool`; references: the ``*pool*_reference`` functions of
:mod:`bitnet.kernels.reference`.
"""

from __future__ import annotations

import numpy as np

from ..graph.values import ValueInfo
from ..kernels.geometry import pool_geometry
from . import register
from ._base import Bound, Counts, Op
from ._conv import _B4, _F4
from .sign import NO_SHIFT


def match_pool_sign(prepared, i, private):
    """[add →] maxpool (real) → sign, the pooled values also kept (the residual
    reads them): ``(step, n_layers)`` returning ``(pooled, bits)``, or None. The
    sum of an add is never stored, so the add must be private to the pool."""
    from ..compile import registry

    j = i
    has_b = prepared[i].info.op == "add"
    if has_b:
        if i + 1 >= len(prepared) or not private(prepared[i], prepared[i + 1]):
            return None
        j = i + 1
    pool = prepared[j]
    if pool.info.op != "maxpool" or pool.fuse is None or j + 1 >= len(prepared):
        return None
    sign = prepared[j + 1]
    if sign.info.op != "sign" or sign.info.inputs != [pool.info.output]:
        return None
    (kh, kw), (sh, sw) = pool.fuse
    shift = sign.fuse
    has = shift is not None
    sh_ = shift if has else NO_SHIFT
    kern = registry.get("pool_sign")
    oshape = pool.info.out_info.shape
    bshape = sign.info.out_info.shape

    def step(a, b):
        out = np.empty((a.shape[0],) + oshape, np.float32)
        bits = np.empty((a.shape[0],) + bshape, np.uint64)
        kern(a, b, has_b, kh, kw, sh, sw, sh_, has, out, bits)
        return out, bits

    return step, j + 2 - i


_POOL_REAL = ("bitnet.kernels.pool", "_pool_real_kernel", f"void({_F4}, i8, i8, i8, i8, b1, {_F4})")
_POOL_SIGN = ("bitnet.kernels.pool", "_pool_sign_kernel",
              f"void({_F4}, {_F4}, b1, i8, i8, i8, i8, f4[::1], b1, {_F4}, {_B4})")


def _pool_common(c, v):
    c.allowed(("kernel",), ("stride", "padding"))
    c.roles(())
    if c.attrs.get("padding", "valid") != "valid":
        c.fail(f"pools support only padding 'valid', got {c.attrs['padding']!r}")
    kernel = c.int_pair(c.attrs.get("kernel"), "kernel")
    stride = c.int_pair(c.attrs.get("stride", list(kernel)), "stride")
    try:
        ho, wo = pool_geometry(v.shape[0], v.shape[1], kernel, stride)
    except ValueError as e:
        c.fail(str(e))
    out = ValueInfo(v.kind, (ho, wo, v.shape[2]), v.channels)
    # one compare (max) or add (average) per window element
    return out, Counts(macs=int(np.prod(out.shape)) * kernel[0] * kernel[1]), (kernel, stride)


@register
class MaxPool(Op):
    """Max pooling: OR of bits (max of ±1 is +1 unless all are −1), max of reals."""

    name = "maxpool"
    kernels = {
        "maxpool_bits": ("bitnet.kernels.pool", "_maxpool_bits_kernel", f"void({_B4}, i8, i8, i8, i8, {_B4})"),
        "pool_real": _POOL_REAL,
        "pool_sign": _POOL_SIGN,
    }
    fusions = (match_pool_sign,)

    def check(self, c):
        v = c.inputs[0]
        c.kind(v, ("bits", "real"), ndim=4)
        out, counts, p = _pool_common(c, v)
        return out, counts, p + (v,)

    def reference(self, c, p):
        from ..kernels import reference as kr

        kernel, stride, v = p
        if v.kind == "bits":
            ch = v.channels
            return lambda x: kr.maxpool_bits_reference(x, ch, kernel, stride)
        return lambda x: kr.maxpool_real_reference(x, kernel, stride)

    def bind(self, c, p, info):
        from ..compile import registry

        ((kh, kw), (sh, sw), v), oshape = p, info.out_info.shape
        if v.kind == "bits":
            kern = registry.get("maxpool_bits")

            def step(x):
                out = np.empty((x.shape[0],) + oshape, np.uint64)
                kern(x, kh, kw, sh, sw, out)
                return out

            return Bound(step)
        kern = registry.get("pool_real")

        def step(x):
            out = np.empty((x.shape[0],) + oshape, np.float32)
            kern(x, kh, kw, sh, sw, True, out)
            return out

        return Bound(step, fuse=p[:2])


@register
class AvgPool(Op):
    """Average pooling of reals."""

    name = "avgpool"
    kernels = {"pool_real": _POOL_REAL}

    def check(self, c):
        v = c.inputs[0]
        c.kind(v, ("real",), ndim=4)
        return _pool_common(c, v)

    def reference(self, c, p):
        from ..kernels import reference as kr

        kernel, stride = p
        return lambda x: kr.avgpool_reference(x, kernel, stride)

    def bind(self, c, p, info):
        from ..compile import registry

        (kh, kw), (sh, sw) = p
        oshape = info.out_info.shape
        kern = registry.get("pool_real")

        def step(x):
            out = np.empty((x.shape[0],) + oshape, np.float32)
            kern(x, kh, kw, sh, sw, False, out)
            return out

        return Bound(step, fuse=p)


@register
class GlobalAvgPool(Op):
    """Mean over height and width: reals, or bits read as ±1."""

    name = "global_avgpool"
    kernels = {
        "gap_real": ("bitnet.kernels.pool", "_gap_real_kernel", f"void({_F4}, f4[:, ::1])"),
        "gap_bits": ("bitnet.kernels.pool", "_gap_bits_kernel", f"void({_B4}, i8, f4[:, ::1])"),
    }

    def check(self, c):
        c.allowed(("channels",))
        c.roles(())
        v = c.inputs[0]
        c.kind(v, ("bits", "real"), ndim=4)
        ch = c.channels_match("channels", v)
        return ValueInfo("real", (ch,), ch), Counts(macs=v.shape[0] * v.shape[1] * ch), (ch, v.kind)

    def reference(self, c, p):
        from ..kernels import reference as kr

        ch, kind = p
        if kind == "bits":
            return lambda x: kr.global_avgpool_bits_reference(x, ch)
        return kr.global_avgpool_reference

    def bind(self, c, p, info):
        from ..compile import registry

        ch, kind = p
        if kind == "bits":
            kern = registry.get("gap_bits")

            def step(x):
                out = np.empty((x.shape[0], ch), np.float32)
                kern(x, ch, out)
                return out
        else:
            kern = registry.get("gap_real")

            def step(x):
                out = np.empty((x.shape[0], ch), np.float32)
                kern(x, out)
                return out

        return Bound(step)
