"""``concat``: two real values joined along channels.

Reference (also the fast step: a copy): :func:`bitnet.kernels.reference.concat_reference`.
"""

from __future__ import annotations

from ..graph.values import ValueInfo
from . import register
from ._base import Bound, Counts, Op


@register
class Concat(Op):
    """Concatenate two real values along the channel axis."""

    name = "concat"
    n_inputs = 2

    def check(self, c):
        c.allowed(())
        c.roles(())
        a, b = c.inputs
        c.kind(a, ("real",))
        c.kind(b, ("real",))
        if a.shape[:-1] != b.shape[:-1]:
            c.fail(f"inputs differ in more than channels: {a.shape} and {b.shape}")
        ch = a.shape[-1] + b.shape[-1]
        return ValueInfo("real", a.shape[:-1] + (ch,), ch), Counts(), None

    def reference(self, c, p):
        from ..kernels.reference import concat_reference

        return concat_reference

    def bind(self, c, p, info):
        from ..kernels.reference import concat_reference

        return Bound(concat_reference)
