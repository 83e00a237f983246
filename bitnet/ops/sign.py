"""``sign``: real values to packed bits (bit set where ``x + shift < 0``).

Kernel: :mod:`bitnet.kernels.sign`; reference:
:func:`bitnet.kernels.reference.sign_reference`.
"""

from __future__ import annotations

import numpy as np

from ..graph.values import ValueInfo
from ..packing import n_words
from . import register
from ._base import Bound, Counts, Op

#: the shift argument of a sign without one (the kernels take an array either way)
NO_SHIFT = np.zeros(1, np.float32)


@register
class Sign(Op):
    """Binarize real values, optionally shifted per channel (docs/graph.md "sign")."""

    name = "sign"
    kernels = {"sign": ("bitnet.kernels.sign", "_sign_kernel", "void(f4[:, ::1], f4[::1], b1, u8[:, ::1])")}

    def check(self, c):
        c.allowed(("channels",))
        c.roles(("shift",))
        v = c.inputs[0]
        c.kind(v, ("real",))
        ch = c.channels_match("channels", v)
        shift = c.tensor("shift", np.float32, (ch,), required=False)
        counts = Counts(params=0 if shift is None else ch, weight_bytes=0 if shift is None else shift.nbytes)
        return ValueInfo("bits", v.shape[:-1] + (n_words(ch),), ch), counts, (ch, shift)

    def reference(self, c, p):
        from ..kernels.reference import sign_reference

        shift = p[1]
        return lambda x: sign_reference(x, shift)

    def bind(self, c, p, info):
        from ..compile import registry

        ch, shift = p
        kern = registry.get("sign")
        has = shift is not None
        sh = shift if has else NO_SHIFT
        cw = n_words(ch)
        oshape = info.out_info.shape

        def step(x):
            out = np.empty((x.shape[0],) + oshape, np.uint64)
            kern(x.reshape(-1, ch), sh, has, out.reshape(-1, cw))
            return out

        # a fused chain ending in this sign needs its shift
        return Bound(step, fuse=shift)
