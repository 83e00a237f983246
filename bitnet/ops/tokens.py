"""``tokens``: patches ``(N, Hp, Wp, C)`` → tokens ``(N, 1, Hp·Wp, C)`` plus a learned
position embedding.

Kernel and reference: :mod:`bitnet.kernels.tokens`.
"""

from __future__ import annotations

import numpy as np

from ..graph.values import ValueInfo
from . import register
from ._base import Bound, Counts, Op


@register
class Tokens(Op):
    """Patches to tokens (docs/graph.md "tokens")."""

    name = "tokens"
    kernels = {"tokens": ("bitnet.kernels.tokens", "_tokens_kernel",
                          "void(f4[:, :, ::1], f4[:, ::1], f4[:, :, ::1])")}

    def check(self, c):
        c.allowed(("channels", "tokens"))
        c.roles(("pos",))
        v = c.inputs[0]
        c.kind(v, ("real",), ndim=4)
        ch = c.channels_match("channels", v)
        t = c.pos_int("tokens")
        if t != v.shape[0] * v.shape[1]:
            c.fail(f"tokens={t} but the input has {v.shape[0]}x{v.shape[1]} = {v.shape[0] * v.shape[1]} patches")
        pos = c.tensor("pos", np.float32, (t, ch))
        counts = Counts(params=pos.size, macs=pos.size, weight_bytes=pos.nbytes)
        return ValueInfo("real", (1, t, ch), ch), counts, (pos, t, ch)

    def reference(self, c, p):
        from ..kernels.tokens import tokens_reference

        pos = p[0]
        return lambda x: tokens_reference(x, pos)

    def bind(self, c, p, info):
        from ..compile import registry

        pos, t, ch = p
        kern = registry.get("tokens")

        def step(x):
            n = x.shape[0]
            out = np.empty((n, 1, t, ch), np.float32)
            kern(x.reshape(n, t, ch), pos, out.reshape(n, t, ch))
            return out

        return Bound(step)
