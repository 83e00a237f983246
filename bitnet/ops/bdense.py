"""``bdense``: binary dense layer, packed bits in (runs the ``bconv`` kernel as a 1×1
convolution of a 1×1 image).

Kernel: :mod:`bitnet.kernels.bconv`; reference:
:func:`bitnet.kernels.reference.bdense_reference`.
"""

from __future__ import annotations

from ..graph.values import ValueInfo
from . import register
from ._base import Bound, Op, out_value
from ._conv import conv_counts, conv_step, weight
from .bconv import BConv


@register
class BDense(Op):
    """Binary fully connected layer (docs/graph.md "bdense")."""

    name = "bdense"
    binary = True
    kernels = {"bconv": BConv.kernels["bconv"]}

    def check(self, c):
        c.allowed(("in_features", "out_features", "output"))
        v = c.inputs[0]
        c.kind(v, ("bits",), ndim=2)
        c_in = c.pos_int("in_features")
        c_out = c.pos_int("out_features")
        if c_in != v.channels:
            c.fail(f"in_features={c_in} but the input has {v.channels} features")
        wt = weight(c, (c_out,), c_in)
        output, ot, nbytes = c.out_tensors(c_out)
        out4 = out_value(output, (1, 1), c_out)
        counts = conv_counts(c_out * c_in, 1, c_out, len(ot), wt, nbytes, c_out * c_in)
        p = dict(wt=wt, c_in=c_in, output=output, ot=ot, out4=out4)
        return ValueInfo(out4.kind, out4.shape[2:], c_out), counts, p

    def reference(self, c, p):
        from ..kernels.reference import bdense_reference

        return lambda x: bdense_reference(x, p["wt"], p["c_in"], p["output"], **p["ot"])

    def bind(self, c, p, info):
        from ..compile import registry
        from ..kernels import bconv_layer as kb

        conv = kb.BDense(p["wt"], p["c_in"], p["output"], name=c.where, **p["ot"])
        step4 = conv_step(registry.get("bconv"), conv.wt, conv.params(1, 1), conv.fp, p["output"], p["out4"])

        def step(x):
            return step4(x.reshape(x.shape[0], 1, 1, x.shape[1])).reshape(x.shape[0], -1)

        return Bound(step)
