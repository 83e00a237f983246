"""``flatten``: a real NHWC value to a vector per example (order h, w, c).

Reference: :func:`bitnet.kernels.reference.flatten_reference`; the fast step is a
reshape (no copy).
"""

from __future__ import annotations

import numpy as np

from ..graph.values import ValueInfo
from . import register
from ._base import Bound, Counts, Op


@register
class Flatten(Op):
    """Flatten height, width and channels."""

    name = "flatten"

    def check(self, c):
        c.allowed(())
        c.roles(())
        v = c.inputs[0]
        c.kind(v, ("real",), ndim=4)
        n = int(np.prod(v.shape))
        return ValueInfo("real", (n,), n), Counts(), n

    def reference(self, c, p):
        from ..kernels.reference import flatten_reference

        return flatten_reference

    def bind(self, c, p, info):
        n = p
        return Bound(lambda x: x.reshape(x.shape[0], n))
