"""``layernorm``: layer norm of real values over their channels (last axis), float64
inside, float32 out.

Kernel and reference: :mod:`bitnet.kernels.layernorm`.
"""

from __future__ import annotations

import math

import numpy as np

from . import register
from ._base import Bound, Counts, Op


def match_layernorm_sign(prepared, i, private):
    """layernorm → sign (the normalised values read by the sign only): ``(step, 2)``
    writing the bits directly, or None."""
    from ..compile import registry
    from .sign import NO_SHIFT

    ln = prepared[i]
    if ln.info.op != "layernorm" or i + 1 >= len(prepared) or ln.fuse is None:
        return None
    sg = prepared[i + 1]
    if sg.info.op != "sign" or not private(ln, sg):
        return None
    w, b, eps, ch = ln.fuse
    shift = sg.fuse
    has = shift is not None
    sh = shift if has else NO_SHIFT
    oshape = sg.info.out_info.shape
    cw = oshape[-1]
    kern = registry.get("layernorm_sign")

    def step(x):
        out = np.empty((x.shape[0],) + oshape, np.uint64)
        kern(x.reshape(-1, ch), w, b, eps, sh, has, out.reshape(-1, cw))
        return out

    return step, 2


@register
class LayerNorm(Op):
    """Layer norm with per-channel weight and bias (docs/graph.md "layernorm")."""

    name = "layernorm"
    kernels = {
        "layernorm": ("bitnet.kernels.layernorm", "_layernorm_kernel",
                      "void(f4[:, ::1], f4[::1], f4[::1], f8, f4[:, ::1])"),
        "layernorm_sign": ("bitnet.kernels.layernorm", "_layernorm_sign_kernel",
                           "void(f4[:, ::1], f4[::1], f4[::1], f8, f4[::1], b1, u8[:, ::1])"),
    }
    fusions = (match_layernorm_sign,)

    def check(self, c):
        c.allowed(("channels", "eps"))
        c.roles(("weight", "bias"))
        v = c.inputs[0]
        c.kind(v, ("real",))
        ch = c.channels_match("channels", v)
        eps = c.attrs["eps"]
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps <= 0:
            c.fail(f"attribute 'eps' must be a positive finite number, got {eps!r}")
        w = c.tensor("weight", np.float32, (ch,))
        b = c.tensor("bias", np.float32, (ch,))
        n = int(np.prod(v.shape))
        counts = Counts(params=2 * ch, macs=3 * n, weight_bytes=w.nbytes + b.nbytes)
        return v, counts, (w, b, float(eps), ch)

    def reference(self, c, p):
        from ..kernels.layernorm import layernorm_reference

        w, b, eps, _ = p
        return lambda x: layernorm_reference(x, w, b, eps)

    def bind(self, c, p, info):
        from ..compile import registry

        w, b, eps, ch = p
        kern = registry.get("layernorm")

        def step(x):
            out = np.empty(x.shape, np.float32)
            kern(x.reshape(-1, ch), w, b, eps, out.reshape(-1, ch))
            return out

        return Bound(step, fuse=p)
