"""``qconv``: the first layer, k-bit input levels × packed ±1 weights (docs/design.md
§2: the dot through bitplanes).

Kernel: :mod:`bitnet.kernels.qconv`; reference:
:func:`bitnet.kernels.reference.qconv_reference`.
"""

from __future__ import annotations

from . import register
from ._base import Bound, Op, out_value
from ._conv import (_B4, _F4, _I4, PARALLEL_MIN_WORK, conv_common, conv_counts, conv_out_hw,
                    conv_step, conv_step_parts, weight)


@register
class QConv(Op):
    """k-bit levels in, binary weights (docs/graph.md "qconv")."""

    name = "qconv"
    binary = True
    kernels = {
        "qconv": ("bitnet.kernels.qconv", "_qconv_kernel",
                  f"void(u1[:, :, :, ::1], f4[:, :, ::1], i8[::1], f4[::1], {_B4}, {_I4}, {_F4})"),
    }

    def check(self, c):
        c.allowed(("in_channels", "out_channels", "kernel", "bits", "output"), ("stride", "padding"))
        v = c.inputs[0]
        c.kind(v, ("levels",), ndim=4)
        kernel, stride, padding, c_in, c_out = conv_common(c, v.channels)
        bits = c.attrs["bits"]
        if bits != v.bits:
            c.fail(f"bits={bits!r} but the input levels have {v.bits} bits")
        wt = weight(c, (c_out,) + kernel, c_in)
        output, ot, nbytes = c.out_tensors(c_out)
        hw = v.shape[:2]
        ho, wo = conv_out_hw(c, hw, kernel, stride, padding)
        n_w = c_out * kernel[0] * kernel[1] * c_in
        # one MAC per level × weight; k binary MACs each, one per bitplane
        counts = conv_counts(ho * wo * n_w, int(bits), c_out, len(ot), wt, nbytes, n_w)
        p = dict(wt=wt, c_in=c_in, bits=bits, kernel=kernel, stride=stride, padding=padding, output=output,
                 ot=ot, hw=hw)
        return out_value(output, (ho, wo), c_out), counts, p

    def reference(self, c, p):
        from ..kernels.reference import qconv_reference

        return lambda x: qconv_reference(x, p["wt"], p["c_in"], p["bits"], p["kernel"], p["stride"],
                                         p["padding"], p["output"], **p["ot"])

    def bind(self, c, p, info):
        from ..compile import registry
        from ..kernels import qconv_layer as kq

        h, w = p["hw"]
        conv = kq.QConv(p["wt"], p["c_in"], p["bits"], p["stride"], p["padding"], p["output"], name=c.where,
                        **p["ot"])
        b = Bound(conv_step(registry.get("qconv"), conv.wf, conv.params(h, w), conv.fp, p["output"],
                            info.out_info), fuse=(conv, (h, w)))
        if 32 * info.macs >= PARALLEL_MIN_WORK:      # a level MAC costs ~32 binary MACs
            b.step_par = conv_step_parts(conv, (h, w), info.out_info)
        return b
