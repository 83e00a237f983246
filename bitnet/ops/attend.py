"""``attend``: attention probabilities × packed ±1 values, heads merged; real
probabilities (float64 sums) or binarised ones (AND-popcount).

Kernels and reference: :mod:`bitnet.kernels.attend`.
"""

from __future__ import annotations

import numpy as np

from ..graph.values import ValueInfo
from . import register
from ._base import Bound, Counts, Op
from .bmatmul import channels_heads, tokens_bits


@register
class Attend(Op):
    """``P × V`` of attention (docs/graph.md "attend")."""

    name = "attend"
    n_inputs = 2
    kernels = {
        "attend_real": ("bitnet.kernels.attend", "_attend_real_kernel",
                        "void(f4[:, :, :, ::1], u8[:, :, ::1], i8, f4[:, :, ::1])"),
        "attend_binary": ("bitnet.kernels.attend", "_attend_binary_kernel",
                          "void(f4[:, :, :, ::1], u8[:, :, ::1], i8, i8, f4[::1], f4[:, :, ::1])"),
    }

    def check(self, c):
        c.allowed(("channels", "heads", "probs"))
        ch, heads = channels_heads(c)
        probs = c.attrs["probs"]
        if probs not in ("real", "binary"):
            c.fail(f"attribute 'probs' must be 'real' or 'binary', got {probs!r}")
        c.roles(("tau",) if probs == "binary" else ())
        pv, vv = c.inputs
        c.kind(pv, ("real",), ndim=4)
        s = tokens_bits(c, vv, ch)
        if pv.shape[0] != heads or pv.shape[2] != s:
            c.fail(f"probabilities must be (N, {heads}, T, {s}) for {heads} heads and {s} value tokens, "
                   f"got (N, {', '.join(map(str, pv.shape))})")
        t = pv.shape[1]
        tau = c.tensor("tau", np.float32, (heads,)) if probs == "binary" else None
        n = t * s * ch
        counts = Counts(params=0 if tau is None else heads, macs=n, binary_macs=n if tau is not None else 0,
                        weight_bytes=0 if tau is None else tau.nbytes)
        return ValueInfo("real", (1, t, ch), ch), counts, (ch, heads, probs, tau, t, s)

    def kind(self, layer):
        return "binary" if (layer.get("attrs") or {}).get("probs") == "binary" else "float"

    def reference(self, c, p):
        from ..kernels.attend import attend_reference

        ch, heads, probs, tau, _, _ = p
        return lambda pr, v: attend_reference(pr, v, ch, heads, probs, tau)

    def bind(self, c, p, info):
        from ..compile import registry

        ch, heads, probs, tau, t, s = p
        d = ch // heads
        if probs == "real":
            kern = registry.get("attend_real")

            def step(pr, v):
                n = pr.shape[0]
                out = np.empty((n, 1, t, ch), np.float32)
                kern(pr, v.reshape(n, s, -1), d, out.reshape(n, t, ch))
                return out
        else:
            kern = registry.get("attend_binary")

            def step(pr, v):
                n = pr.shape[0]
                out = np.empty((n, 1, t, ch), np.float32)
                kern(pr, v.reshape(n, s, -1), ch, d, tau, out.reshape(n, t, ch))
                return out

        return Bound(step)
