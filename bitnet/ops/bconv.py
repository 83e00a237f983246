"""``bconv``: binary convolution of packed bits by packed ±1 weights (XNOR-popcount),
with the fused chain bconv (affine) → avgpool → [flatten] → sign.

Kernels: :mod:`bitnet.kernels.bconv` (and :mod:`bitnet.kernels.fused`); reference:
:func:`bitnet.kernels.reference.bconv_reference`.
"""

from __future__ import annotations

import numpy as np

from . import register
from ._base import Bound, Op, out_value
from ._conv import (_B4, _F4, _I4, PARALLEL_MIN_WORK, conv_common, conv_counts, conv_out_hw,
                    conv_step, conv_step_parts, weight)


def match_conv_pool_sign(prepared, i, private):
    """bconv (affine, serial) → avgpool → [flatten] → sign: ``(step, n_layers)`` or None."""
    from ..compile import registry

    conv = prepared[i]
    if conv.info.op != "bconv" or conv.fuse is None or conv.step_par is not None:
        return None
    if i + 2 >= len(prepared):
        return None
    pool = prepared[i + 1]
    if pool.info.op != "avgpool" or not private(conv, pool):
        return None
    j = i + 2
    flat = prepared[j].info.op == "flatten"
    if flat:
        if j + 1 >= len(prepared) or not private(pool, prepared[j]):
            return None
        j += 1
    sign = prepared[j]
    if sign.info.op != "sign" or not private(prepared[j - 1], sign):
        return None
    from ..kernels import fused_layer as kf

    bc, (h, w), wt0 = conv.fuse
    (pkh, pkw), (psh, psw) = pool.fuse
    pho, pwo = pool.info.out_info.shape[:2]
    wseg = kf.segment_weights(bc, wt0)
    pp = kf.pool_params((pkh, pkw), (psh, psw), pho, pwo, flat, wseg is not None)
    shift = sign.fuse
    has = shift is not None
    sh = shift if has else kf._NO_SHIFT
    kern = registry.get("bconv_pool_sign_flat" if flat else "bconv_pool_sign")
    wt, ip, fp = (bc.wt if wseg is None else wseg), bc.params(h, w), bc.fp
    oshape = sign.info.out_info.shape

    def step(x):
        out = np.empty((x.shape[0],) + oshape, np.uint64)
        kern(x, wt, ip, fp, pp, sh, has, out)
        return out

    return step, j - i + 1


@register
class BConv(Op):
    """Binary 2-D convolution, NHWC bits in (docs/graph.md "bconv")."""

    name = "bconv"
    binary = True
    kernels = {
        "bconv": ("bitnet.kernels.bconv", "_bconv_kernel",
                  f"void({_B4}, u8[:, :, ::1], i8[::1], f4[::1], {_B4}, {_I4}, {_F4})"),
        # fused chains (bitnet.kernels.fused): the flattened variant has a 2-D output
        "bconv_pool_sign": ("bitnet.kernels.fused", "_bconv_pool_sign_kernel",
                            f"void({_B4}, u8[:, :, ::1], i8[::1], f4[::1], i8[::1], f4[::1], b1, {_B4})"),
        "bconv_pool_sign_flat": ("bitnet.kernels.fused", "_bconv_pool_sign_kernel",
                                 f"void({_B4}, u8[:, :, ::1], i8[::1], f4[::1], i8[::1], f4[::1], b1, u8[:, ::1])"),
    }
    fusions = (match_conv_pool_sign,)

    def check(self, c):
        c.allowed(("in_channels", "out_channels", "kernel", "output"), ("stride", "padding"))
        v = c.inputs[0]
        c.kind(v, ("bits",), ndim=4)
        kernel, stride, padding, c_in, c_out = conv_common(c, v.channels)
        wt = weight(c, (c_out,) + kernel, c_in)
        output, ot, nbytes = c.out_tensors(c_out)
        hw = v.shape[:2]
        ho, wo = conv_out_hw(c, hw, kernel, stride, padding)
        n_w = c_out * kernel[0] * kernel[1] * c_in
        counts = conv_counts(ho * wo * n_w, 1, c_out, len(ot), wt, nbytes, n_w)
        p = dict(wt=wt, c_in=c_in, kernel=kernel, stride=stride, padding=padding, output=output, ot=ot, hw=hw)
        return out_value(output, (ho, wo), c_out), counts, p

    def reference(self, c, p):
        from ..kernels.reference import bconv_reference

        return lambda x: bconv_reference(x, p["wt"], p["c_in"], p["kernel"], p["stride"], p["padding"],
                                         p["output"], **p["ot"])

    def bind(self, c, p, info):
        from ..compile import registry
        from ..kernels import bconv_layer as kb

        h, w = p["hw"]
        conv = kb.BConv(p["wt"], p["c_in"], p["stride"], p["padding"], p["output"], name=c.where, **p["ot"])
        b = Bound(conv_step(registry.get("bconv"), conv.wt, conv.params(h, w), conv.fp, p["output"], info.out_info))
        if info.macs >= PARALLEL_MIN_WORK:
            b.step_par = conv_step_parts(conv, (h, w), info.out_info)
        if p["output"] == "affine":
            b.fuse = (conv, (h, w), p["wt"])
        return b
