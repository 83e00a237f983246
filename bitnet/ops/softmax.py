"""``softmax``: softmax of real values over their last axis (attention rows), float64
inside, float32 out.

Kernel and reference: :mod:`bitnet.kernels.softmax`.
"""

from __future__ import annotations

import numpy as np

from . import register
from ._base import Bound, Counts, Op


@register
class Softmax(Op):
    """Row softmax (docs/graph.md "softmax")."""

    name = "softmax"
    kernels = {"softmax": ("bitnet.kernels.softmax", "_softmax_kernel", "void(f4[:, ::1], f4[:, ::1])")}

    def check(self, c):
        c.allowed(())
        c.roles(())
        v = c.inputs[0]
        c.kind(v, ("real",))
        # one exp and one division per element (counted as MACs of any kind)
        return v, Counts(macs=int(np.prod(v.shape))), v.shape[-1]

    def reference(self, c, p):
        from ..kernels.softmax import softmax_reference

        return softmax_reference

    def bind(self, c, p, info):
        from ..compile import registry

        n = p
        kern = registry.get("softmax")

        def step(x):
            out = np.empty(x.shape, np.float32)
            kern(x.reshape(-1, n), out.reshape(-1, n))
            return out

        return Bound(step)
