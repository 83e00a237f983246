"""``quantize``: real features to k-bit levels, and the fused chain quantize → qconv
(3×3, stride 1, one channel, threshold output).

Kernels: :mod:`bitnet.kernels.sign` (and :mod:`bitnet.kernels.fused`); reference:
:func:`bitnet.kernels.reference.quantize_reference`.
"""

from __future__ import annotations

import numpy as np

from ..graph.values import ValueInfo
from . import register
from ._base import Bound, Counts, Op
from ._conv import _B4, _F4


def match_quantize_qconv(prepared, i, private):
    """quantize → qconv (3×3, stride 1, one channel, threshold): ``(step, 2)`` or None."""
    from ..compile import registry

    quant = prepared[i]
    if quant.info.op != "quantize" or i + 1 >= len(prepared):
        return None
    qc = prepared[i + 1]
    if qc.info.op != "qconv" or qc.fuse is None or qc.step_par is not None or not private(quant, qc):
        return None
    from ..kernels import fused_layer as kf

    conv, (h, w) = qc.fuse
    if not kf.quantize_qconv_applies(conv):
        return None
    off, sc, top = quant.fuse
    kern = registry.get("quantize_qconv")
    wf, ip, fp = conv.wf, conv.params(h, w), conv.fp
    oshape = qc.info.out_info.shape

    def step(x):
        out = np.empty((x.shape[0],) + oshape, np.uint64)
        kern(x, off, sc, top, wf, ip, fp, out)
        return out

    return step, 2


@register
class Quantize(Op):
    """Uniform k-bit quantizer (docs/graph.md "quantize")."""

    name = "quantize"
    kernels = {
        "quantize": ("bitnet.kernels.sign", "_quantize_kernel", "void(f4[::1], f4, f4, f4, u1[::1])"),
        "quantize_qconv": ("bitnet.kernels.fused", "_quantize_qconv_kernel",
                           f"void({_F4}, f4, f4, f4, f4[:, :, ::1], i8[::1], f4[::1], {_B4})"),
    }
    fusions = (match_quantize_qconv,)

    def check(self, c):
        c.allowed(("bits", "offset", "scale"))
        c.roles(())
        v = c.inputs[0]
        c.kind(v, ("real",))
        bits = c.attrs["bits"]
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 8:
            c.fail(f"bits must be an integer in 1..8, got {bits!r}")
        try:
            offset, scale = float(c.attrs["offset"]), float(c.attrs["scale"])
        except (TypeError, ValueError):
            c.fail("offset and scale must be numbers")
        f32max = float(np.finfo(np.float32).max)
        if not (abs(offset) <= f32max and 0 < scale <= f32max):
            c.fail(f"offset must be a finite float32 and scale a positive "
                   f"finite float32, got offset={offset!r}, scale={scale!r}")
        bits = int(bits)
        return ValueInfo("levels", v.shape, v.channels, bits), Counts(), (bits, offset, scale)

    def reference(self, c, p):
        from ..kernels.reference import quantize_reference

        bits, offset, scale = p
        return lambda x: quantize_reference(x, bits, offset, scale)

    def bind(self, c, p, info):
        from ..compile import registry

        bits, offset, scale = p
        kern = registry.get("quantize")
        off, sc, top = np.float32(offset), np.float32(scale), np.float32((1 << bits) - 1)

        def step(x):
            out = np.empty(x.shape, np.uint8)
            kern(x.reshape(-1), off, sc, top, out.reshape(-1))
            return out

        return Bound(step, fuse=(off, sc, top))
