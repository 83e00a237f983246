"""Layer norm over the last axis (channels): the ``layernorm`` op's kernel and reference.

Convention (docs/graph.md "layernorm"): for each row ``x`` of ``C`` float32 values,
in float64,

    mean = Σ x / C,   var = Σ (x − mean)² / C   (biased, as PyTorch),
    r = 1 / sqrt(var + eps),   y = (x − mean) · r · weight + bias,

rounded once to float32. The two sums run in one fixed order, the same in the kernel
(every ISA path) and in the NumPy reference, so the two agree bit for bit: the first
``C16 = C − C mod 16`` elements in sixteen partial sums (partial sum ``8a + l`` adds
the elements ``j ≡ 8a + l (mod 16)`` in order), each group of eight joined as
``((p0 + p4) + (p2 + p6)) + ((p1 + p5) + (p3 + p7))``, the two groups added, then the
remaining elements one by one. Any other float64 order (PyTorch's eval-mode model in
``trainer/transformer.py``) differs only where a sum rounds to another float32, which
is rare: a ``sign`` that follows then sees the same value on both sides.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..compile.options import jit
from ._common import _bcast, _intp, _is_arr, _prefer_512, _ptr
from .sign import sign_words

__all__ = ["layernorm_reference"]


def _ordered_sum(d):
    """``Σ`` over the last axis of float64 ``d (rows, C)`` in the kernel's order (module
    docstring): sixteen partial sums, two trees of eight, then the rest in order."""
    rows, c = d.shape
    c16 = c - c % 16
    acc = np.zeros((rows, 16))
    for k in range(0, c16, 16):          # one element per partial sum per step, in order
        acc += d[:, k:k + 16]

    def tree(p):
        return ((p[:, 0] + p[:, 4]) + (p[:, 2] + p[:, 6])) + ((p[:, 1] + p[:, 5]) + (p[:, 3] + p[:, 7]))

    s = tree(acc[:, :8]) + tree(acc[:, 8:])
    for j in range(c16, c):
        s = s + d[:, j]
    return s


def layernorm_reference(x, weight, bias, eps):
    """NumPy layer norm of float32 ``(..., C)`` over the last axis (module docstring),
    bit for bit the kernel's result."""
    x = np.asarray(x, np.float32)
    c = x.shape[-1]
    xd = x.reshape(-1, c).astype(np.float64)
    mu = _ordered_sum(xd) / c
    dev = xd - mu[:, None]
    var = _ordered_sum(dev * dev) / c
    r = 1.0 / np.sqrt(var + float(eps))
    y = dev * r[:, None] * np.asarray(weight, np.float64) + np.asarray(bias, np.float64)
    return y.astype(np.float32).reshape(x.shape)


_F64 = ir.DoubleType()
_V8D = ir.VectorType(_F64, 8)


def _hsum(builder, v):
    """Σ of the 8 lanes of ``v`` in a fixed tree order ((0+4)+(2+6))+((1+5)+(3+7))."""
    e = [builder.extract_element(v, ir.Constant(ir.IntType(32), i)) for i in range(8)]
    return builder.fadd(builder.fadd(builder.fadd(e[0], e[4]), builder.fadd(e[2], e[6])),
                        builder.fadd(builder.fadd(e[1], e[5]), builder.fadd(e[3], e[7])))


def _rowsum(square):
    """Intrinsic ``rowsum(x, off, n, mu)`` -> float64: ``Σ_{j<n} d_j`` with ``d_j =
    float64(x[off + j])`` (``square`` False) or ``Σ (d_j − mu)²`` (True), ``n`` a multiple
    of 16. Two 8-lane float64 accumulators (lane ``l`` of accumulator ``a`` sums the
    elements ``j ≡ 8a + l (mod 16)`` in order), then one fixed tree over the 16 partial
    sums: the same order on every ISA path (no fused multiply-add), so every path rounds
    alike. The plain loop leaves the sum scalar (one chain; float adds do not reassociate)."""

    @intrinsic
    def rowsum(typingctx, x, off, n, mu):
        if not (_is_arr(x, types.float32) and isinstance(off, types.Integer)
                and isinstance(n, types.Integer) and isinstance(mu, types.Float)):
            return None

        def codegen(context, builder, sig, args):
            _prefer_512(context, builder.function)
            off_, n_ = _intp(context, builder, args[1], sig.args[1]), _intp(context, builder, args[2], sig.args[2])
            mub = _bcast(builder, context.cast(builder, args[3], sig.args[3], types.float64), _V8D)
            accs = [cgutils.alloca_once_value(builder, ir.Constant(_V8D, None)) for _ in range(2)]
            v8f = ir.VectorType(ir.FloatType(), 8)
            count = builder.udiv(n_, ir.Constant(n_.type, 16))
            with cgutils.for_range(builder, count) as loop:
                base = builder.add(off_, builder.mul(loop.index, ir.Constant(n_.type, 16)))
                for a in range(2):
                    at = builder.add(base, ir.Constant(base.type, 8 * a))
                    v = builder.load(_ptr(context, builder, sig.args[0], args[0], at, v8f), align=4)
                    d = builder.fpext(v, _V8D)
                    if square:
                        d = builder.fsub(d, mub)
                        d = builder.fmul(d, d)
                    builder.store(builder.fadd(builder.load(accs[a]), d), accs[a])
            return builder.fadd(_hsum(builder, builder.load(accs[0])), _hsum(builder, builder.load(accs[1])))

        return types.float64(x, off, n, mu), codegen

    return rowsum


_rowsum_plain = _rowsum(False)
_rowsum_sq = _rowsum(True)


@jit()
def _ln_rows(x, weight, bias, eps, out):
    """``out[r] = layernorm(x[r])`` for every row of float32 ``(rows, C)`` (module
    docstring). The first ``c − c mod 16`` elements of a row are summed by
    :func:`_rowsum` (sixteen partial sums in vector registers), the rest in order after
    them: the order the reference follows (module docstring). The rows run in this one
    function: a call per row cost more than a short row's arithmetic. The last loop
    vectorises as written (no reduction in it)."""
    rows, c = x.shape
    c16 = c - c % 16
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for r in range(rows):
        off = r * c
        s = _rowsum_plain(xf, off, c16, 0.0)
        for j in range(c16, c):
            s += np.float64(xf[off + j])
        mu = s / c
        v = _rowsum_sq(xf, off, c16, mu)
        for j in range(c16, c):
            d = np.float64(xf[off + j]) - mu
            v += d * d
        rs = 1.0 / np.sqrt(v / c + eps)
        for j in range(c):
            y = (np.float64(xf[off + j]) - mu) * rs * np.float64(weight[j]) + np.float64(bias[j])
            of[off + j] = np.float32(y)


@jit()
def _layernorm_kernel(x, weight, bias, eps, out):
    """``out[r] = layernorm(x[r])`` for every row of float32 ``(rows, C)``."""
    _ln_rows(x, weight, bias, eps, out)


@jit()
def _layernorm_sign_kernel(x, weight, bias, eps, shift, has_shift, out):
    """``sign(layernorm(x) + shift)`` into packed bits ``out (rows, Cw)``: bit for bit
    the two kernels in a row (the float32 rows are made by the same function, then
    packed by ``sign_words``)."""
    rows, c = x.shape
    cw = out.shape[1]
    y = np.empty((rows, c), np.float32)
    _ln_rows(x, weight, bias, eps, y)
    yf = y.reshape(-1)
    of = out.reshape(-1)
    for r in range(rows):
        sign_words(yf, r * c, c, shift, has_shift, of, r * cw)
