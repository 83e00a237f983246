"""Attention probabilities × binary values, heads merged: the ``attend`` op.

Convention (docs/graph.md "attend"): ``p`` float32 ``(N, H, T, S)`` (a ``softmax`` of
``bmatmul`` scores) and ``v`` packed ±1 tokens ``(N, 1, S, Cw)`` of ``C`` channels;
head ``h`` owns the channels ``[h·d, (h+1)·d)``. The output is real ``(N, 1, T, C)``,
the heads side by side (no reshape op needed):

* ``probs="real"``: ``out[t, c] = Σ_s p[h, t, s] · v[s, c]`` (``v = ±1``), summed in
  float64 and rounded once to float32 (see :mod:`bitnet.kernels.layernorm` for why).
* ``probs="binary"``: the probabilities are binarised, ``β[t, s] = 1 if p[h, t, s] >=
  tau[h] else 0`` (a float32 comparison), and ``out[t, c] = Σ_s β[t, s] · v[s, c]``, an
  exact integer: with ``β`` packed over ``s`` and the values' −1 bits transposed
  (``vneg[c]`` packed over ``s``), ``out = popcount(β) − 2·popcount(β AND vneg[c])``
  (AND-popcount), stored as float32 (exact: ``|out| <= S``).
"""

from __future__ import annotations

import numpy as np

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..compile.options import jit
from ..packing import unpack_signs
from . import isa
from ._common import _bcast, _intp, _is_arr, _prefer_512, _ptr, _scalar, popcount

__all__ = ["attend_reference"]


def attend_reference(p, v, channels, heads, probs="real", tau=None):
    """``(N, 1, T, C)`` float32 from the unpacked ±1 values (module docstring)."""
    p = np.asarray(p, np.float32)
    vv = unpack_signs(v, channels)[:, 0]                        # (N, S, C) ±1
    d = channels // heads
    out = np.empty((p.shape[0], 1, p.shape[2], channels), np.float32)
    for h in range(heads):
        vh = vv[..., h * d:(h + 1) * d]
        if probs == "real":
            o = np.einsum("nts,nsc->ntc", p[:, h].astype(np.float64), vh.astype(np.float64))
        else:
            beta = (p[:, h] >= np.float32(tau[h])).astype(np.int64)
            o = np.einsum("nts,nsc->ntc", beta, vh.astype(np.int64))
        out[:, 0, :, h * d:(h + 1) * d] = o.astype(np.float32)
    return out


_F64 = ir.DoubleType()


def _prow(nv, rows):
    """Intrinsic ``prow(vf, voff, vstep, pf, poff, pstep, n, acc)``: for each ``r < rows``,
    ``acc[r·8nv : +8nv] = Σ_{j<n} pf[poff + r·pstep + j] · vf[voff + j·vstep : +8nv]`` in
    float64, ``j`` in order (one fused multiply-add per term where the path has one, else
    multiply then add). The ``rows × nv`` accumulators of 8 lanes stay in vector
    registers across the loop, independent chains that keep the FMA units busy (the
    vectoriser leaves such a loop scalar, its accumulators in memory)."""

    @intrinsic
    def prow(typingctx, vf, voff, vstep, pf, poff, pstep, n, acc):
        if not (_is_arr(vf, types.float64) and _is_arr(pf, types.float64) and _is_arr(acc, types.float64)
                and all(isinstance(a, types.Integer) for a in (voff, vstep, poff, pstep, n))):
            return None

        def codegen(context, builder, sig, args):
            _prefer_512(context, builder.function)
            vty = ir.VectorType(_F64, 8)
            if isa.PATHS[isa.codegen_path(context)]["fma"]:
                fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty, vty, vty]),
                                                    "llvm.fma.v8f64")

                def fma(a, b, c):
                    return builder.call(fn, [a, b, c])
            else:
                def fma(a, b, c):
                    return builder.fadd(builder.fmul(a, b), c)
            voff_, vstep_, poff_, pstep_, n_ = (_intp(context, builder, args[i], sig.args[i])
                                                for i in (1, 2, 4, 5, 6))
            accs = [cgutils.alloca_once_value(builder, ir.Constant(vty, None)) for _ in range(rows * nv)]
            with cgutils.for_range(builder, n_) as loop:
                j = loop.index
                base = builder.add(voff_, builder.mul(j, vstep_))
                ws = [builder.load(_ptr(context, builder, sig.args[0], args[0],
                                        builder.add(base, ir.Constant(base.type, 8 * q)), vty), align=8)
                      for q in range(nv)]
                for r in range(rows):
                    at = builder.add(builder.add(poff_, j), builder.mul(pstep_, ir.Constant(j.type, r)))
                    pb = _bcast(builder, _scalar(context, builder, sig.args[3], args[3], at, _F64), vty)
                    for q in range(nv):
                        a = accs[r * nv + q]
                        builder.store(fma(pb, ws[q], builder.load(a)), a)
            for k, a in enumerate(accs):
                dst = _ptr(context, builder, sig.args[7], args[7], ir.Constant(voff_.type, 8 * k), vty)
                builder.store(builder.load(a), dst, align=8)
            return context.get_dummy_value()

        return types.none(vf, voff, vstep, pf, poff, pstep, n, acc), codegen

    return prow


_prow4x2 = _prow(4, 2)   # 32 channels × 2 rows: 8 chains
_prow1x2 = _prow(1, 2)
_prow4x1 = _prow(4, 1)
_prow1x1 = _prow(1, 1)


@jit()
def _attend_real_kernel(p, v, d, out):
    """``p (N, H, T, S)`` real × ``v (N, S, Cw)`` ±1 → ``out (N, T, C)`` (float64 sums).

    Per head, the values become a float64 ``(S, dp)`` table (``dp`` = ``d`` rounded up
    to 8; the padding lanes are 0 and never stored) and the probabilities a float64
    ``(T, S)`` one; output rows are then made two at a time (the last one alone) in
    blocks of 32 or 8 channels by :func:`_prow`, each summed over ``s`` in order."""
    nb, heads, t, s_n = p.shape
    dp = (d + 7) & ~7
    vf = np.zeros(s_n * dp, np.float64)
    pf = np.empty(t * s_n, np.float64)
    acc = np.empty(64, np.float64)
    for n in range(nb):
        for h in range(heads):
            c0 = h * d
            for j in range(s_n):
                for c in range(d):
                    ch = c0 + c
                    neg = (v[n, j, ch >> 6] >> np.uint64(ch & 63)) & np.uint64(1)
                    vf[j * dp + c] = -1.0 if neg else 1.0
            for i in range(t):
                for j in range(s_n):
                    pf[i * s_n + j] = p[n, h, i, j]
            for i in range(0, t, 2):
                two = i + 1 < t
                cb = 0
                while cb < d:
                    if dp - cb >= 32:
                        w = 32
                        if two:
                            _prow4x2(vf, cb, dp, pf, i * s_n, s_n, s_n, acc)
                        else:
                            _prow4x1(vf, cb, dp, pf, i * s_n, s_n, s_n, acc)
                    else:
                        w = 8
                        if two:
                            _prow1x2(vf, cb, dp, pf, i * s_n, s_n, s_n, acc)
                        else:
                            _prow1x1(vf, cb, dp, pf, i * s_n, s_n, s_n, acc)
                    m = min(w, d - cb)
                    for q in range(m):
                        out[n, i, c0 + cb + q] = np.float32(acc[q])
                    if two:
                        for q in range(m):
                            out[n, i + 1, c0 + cb + q] = np.float32(acc[w + q])
                    cb += w


@jit()
def _attend_binary_kernel(p, v, channels, d, tau, out):
    """Binarised ``p >= tau[h]`` × ``v`` by AND-popcount → ``out (N, T, C)``."""
    nb, heads, t, s_n = p.shape
    sw = (s_n + 63) >> 6
    vneg = np.zeros((channels, sw), np.uint64)     # values' −1 bits, transposed
    beta = np.empty(sw, np.uint64)
    for n in range(nb):
        vneg[:, :] = 0
        for j in range(s_n):
            for ch in range(channels):
                if (v[n, j, ch >> 6] >> np.uint64(ch & 63)) & np.uint64(1):
                    vneg[ch, j >> 6] |= np.uint64(1) << np.uint64(j & 63)
        for h in range(heads):
            th = tau[h]
            for i in range(t):
                beta[:] = 0
                for j in range(s_n):
                    if p[n, h, i, j] >= th:
                        beta[j >> 6] |= np.uint64(1) << np.uint64(j & 63)
                cnt = 0
                for w in range(sw):
                    cnt += popcount(beta[w])
                for c in range(d):
                    ch = h * d + c
                    neg = 0
                    for w in range(sw):
                        neg += popcount(beta[w] & vneg[ch, w])
                    out[n, i, ch] = np.float32(cnt - 2 * neg)
