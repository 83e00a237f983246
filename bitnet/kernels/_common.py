"""Pieces shared by the Numba kernels: the popcount intrinsic and the threshold emitter.

Nothing here runs at ``import bitnet``: kernel modules are imported lazily.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.core import cgutils
from llvmlite import ir
from numba.extending import intrinsic

from .._jit import jit


#: LLVM function attribute that lets the loop vectoriser use 512-bit registers. LLVM's
#: tuning for recent Intel cores (``prefer-256-bit``) keeps auto-vectorised loops on
#: ymm registers; the XNOR-popcount loops measured ~20% faster on zmm here (vpopcntq
#: zmm). Setting it per function, from the popcount intrinsic, keeps the choice local
#: to bitnet's own kernels instead of changing numba's global CPU features.
_PREFER_512 = '"prefer-vector-width"="512"'


def _prefer_512(fn):
    # llvmlite only accepts known keyword attributes through ``add``; a string
    # attribute is written verbatim into the function's attribute list.
    if _PREFER_512 not in fn.attributes:
        set.add(fn.attributes, _PREFER_512)


@intrinsic
def popcount(typingctx, x):
    """``llvm.ctpop.i64`` as an int64: one ``popcnt`` (``vpopcntq`` once vectorised).

    Returning int64 (not uint64) keeps the accumulators signed: numba promotes
    ``int64 + uint64`` to float64.
    """
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        _prefer_512(builder.function)
        return builder.ctpop(args[0])

    return types.int64(types.uint64), codegen


@intrinsic
def signbits64(typingctx, arr, start):
    """Bit ``j`` of the int64 result = sign bit of ``arr[start + j]``, ``j < 64``.

    ``arr`` is a C-contiguous int64 array with at least ``start + 64`` elements (not
    checked). LLVM lowers the ``<64 x i64>`` compare-with-zero and the ``<64 x i1>`` →
    ``i64`` bitcast to 8 ``vpmovq2m`` and mask unpacks: a handful of instructions to
    pack 64 threshold decisions into one output word.
    """
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.layout == "C"
            and isinstance(start, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        _prefer_512(builder.function)
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        start = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = builder.gep(ary.data, [start])
        vty = ir.VectorType(ir.IntType(64), 64)
        vec = builder.load(builder.bitcast(ptr, vty.as_pointer()), align=8)
        neg = builder.icmp_signed("<", vec, ir.Constant(vty, None))
        return builder.bitcast(neg, ir.IntType(64))

    return types.int64(arr, start), codegen


_V64 = ir.VectorType(ir.IntType(64), 64)


def _load_v64(context, builder, aryty, ary_val, index):
    """Load ``<64 x i64>`` from element ``index`` of a C-contiguous array."""
    ary = context.make_array(aryty)(context, builder, ary_val)
    ptr = builder.gep(ary.data, [index])
    return builder.load(builder.bitcast(ptr, _V64.as_pointer()), align=8)


def _store_v64(context, builder, aryty, ary_val, index, vec):
    ary = context.make_array(aryty)(context, builder, ary_val)
    ptr = builder.gep(ary.data, [index])
    builder.store(vec, builder.bitcast(ptr, _V64.as_pointer()), align=8)


def _block_popsum(context, builder, sig, args):
    """Σ_i ctpop(x_i XOR wb[k + i, 0:64]) over G = 9 words, as a ``<64 x i64>``."""
    wbty, kty = sig.args[0], sig.args[1]
    k = context.cast(builder, args[1], kty, types.intp)
    xs = args[-9:]
    total = None
    ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V64, [_V64]),
                                           "llvm.ctpop.v64i64")
    zero_mask = ir.Constant(ir.VectorType(ir.IntType(32), 64), None)
    for i, xv in enumerate(xs):
        row = builder.add(k, ir.Constant(k.type, 64 * i))
        w = _load_v64(context, builder, wbty, args[0], row)
        xb = builder.insert_element(ir.Constant(_V64, ir.Undefined), xv, ir.Constant(ir.IntType(32), 0))
        xb = builder.shuffle_vector(xb, ir.Constant(_V64, ir.Undefined), zero_mask)
        pc = builder.call(ctpop, [builder.xor(xb, w)])
        total = pc if total is None else builder.add(total, pc)
    return total


def _block_sig(wb, k, acc, x):
    ok = (isinstance(wb, types.Array) and wb.layout == "C" and wb.dtype == types.uint64
          and isinstance(k, types.Integer) and isinstance(acc, types.Array) and acc.layout == "C"
          and acc.dtype == types.int64 and all(t == types.uint64 for t in x))
    return ok


@intrinsic
def block_sum9(typingctx, wb, k, acc, add, x0, x1, x2, x3, x4, x5, x6, x7, x8):
    """``acc[0:64] = (acc[0:64] if add else 0) + Σ_i popcount(x_i XOR row_i)``, where
    ``row_i`` is the 64 words of the C-contiguous uint64 array ``wb`` starting at flat
    element ``k + 64·i`` (a ``(..., Kp, 64)`` array of re-tiled weight blocks).
    ``acc`` is an int64 array of at least 64 elements, ``add`` a runtime bool. Written as explicit
    ``<64 x i64>`` vector code (8 zmm registers per value): no loop, so no runtime
    alias checks, and every operand stays in registers.
    """
    xs = (x0, x1, x2, x3, x4, x5, x6, x7, x8)
    if not (_block_sig(wb, k, acc, xs) and isinstance(add, types.Boolean)):
        return None

    def codegen(context, builder, signature, args):
        _prefer_512(builder.function)
        total = _block_popsum(context, builder, signature, args)
        zero = ir.Constant(ir.IntType(64), 0)
        old = _load_v64(context, builder, signature.args[2], args[2], zero)
        keep = builder.select(args[3], old, ir.Constant(_V64, None))
        _store_v64(context, builder, signature.args[2], args[2], zero, builder.add(total, keep))
        return context.get_dummy_value()

    return types.none(wb, k, acc, add, *xs), codegen


@intrinsic
def block_thresh9(typingctx, wb, k, acc, add, bound, lo, x0, x1, x2, x3, x4, x5, x6, x7, x8):
    """Word whose bit ``j`` is ``v_j > bound[lo + j]`` with
    ``v = (acc[0:64] if add else 0) + Σ_i popcount(x_i XOR wb[k+i, 0:64])``."""
    xs = (x0, x1, x2, x3, x4, x5, x6, x7, x8)
    if not (_block_sig(wb, k, acc, xs) and isinstance(add, types.Boolean)
            and isinstance(bound, types.Array) and bound.dtype == types.int64
            and isinstance(lo, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        _prefer_512(builder.function)
        total = _block_popsum(context, builder, signature, args)
        zero = ir.Constant(ir.IntType(64), 0)
        old = _load_v64(context, builder, signature.args[2], args[2], zero)
        keep = builder.select(args[3], old, ir.Constant(_V64, None))
        v = builder.add(total, keep)
        lo_ = context.cast(builder, args[5], signature.args[5], types.intp)
        bnd = _load_v64(context, builder, signature.args[4], args[4], lo_)
        gt = builder.icmp_signed(">", v, bnd)
        return builder.bitcast(gt, ir.IntType(64))

    return types.int64(wb, k, acc, add, bound, lo, *xs), codegen


_F64 = ir.VectorType(ir.FloatType(), 64)


def _load_f64(context, builder, aryty, ary_val, index):
    ary = context.make_array(aryty)(context, builder, ary_val)
    ptr = builder.gep(ary.data, [index])
    return builder.load(builder.bitcast(ptr, _F64.as_pointer()), align=4)


def _block_fma(context, builder, sig, args):
    """acc' = (acc if add else 0) + Σ_i q_i · wb[k + i, 0:64] (float32, fused multiply-add)."""
    wbty, kty, accty = sig.args[0], sig.args[1], sig.args[2]
    k = context.cast(builder, args[1], kty, types.intp)
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_F64, [_F64, _F64, _F64]),
                                         "llvm.fma.v64f32")
    zero = ir.Constant(ir.IntType(64), 0)
    old = _load_f64(context, builder, accty, args[2], zero)
    total = builder.select(args[3], old, ir.Constant(_F64, None))
    zero_mask = ir.Constant(ir.VectorType(ir.IntType(32), 64), None)
    for i, q in enumerate(args[-9:]):
        row = builder.add(k, ir.Constant(k.type, 64 * i))
        w = _load_f64(context, builder, wbty, args[0], row)
        qb = builder.insert_element(ir.Constant(_F64, ir.Undefined), q, ir.Constant(ir.IntType(32), 0))
        qb = builder.shuffle_vector(qb, ir.Constant(_F64, ir.Undefined), zero_mask)
        total = builder.call(fma, [qb, w, total])
    return total


def _fblock_sig(wb, k, acc, add, q):
    return (isinstance(wb, types.Array) and wb.layout == "C" and wb.dtype == types.float32
            and isinstance(k, types.Integer) and isinstance(acc, types.Array) and acc.layout == "C"
            and acc.dtype == types.float32 and isinstance(add, types.Boolean)
            and all(t == types.float32 for t in q))


@intrinsic
def fblock_sum9(typingctx, wb, k, acc, add, q0, q1, q2, q3, q4, q5, q6, q7, q8):
    """``acc[0:64] = (acc if add else 0) + Σ_i q_i · wb[k+i, 0:64]`` in float32 with
    ``llvm.fma``. Exact for the first layer (integers below ``2**24``, see qconv)."""
    qs = (q0, q1, q2, q3, q4, q5, q6, q7, q8)
    if not _fblock_sig(wb, k, acc, add, qs):
        return None

    def codegen(context, builder, signature, args):
        _prefer_512(builder.function)
        total = _block_fma(context, builder, signature, args)
        ary = context.make_array(signature.args[2])(context, builder, args[2])
        builder.store(total, builder.bitcast(ary.data, _F64.as_pointer()), align=4)
        return context.get_dummy_value()

    return types.none(wb, k, acc, add, *qs), codegen


@intrinsic
def fblock_thresh9(typingctx, wb, k, acc, add, fbound, lo, q0, q1, q2, q3, q4, q5, q6, q7, q8):
    """Word whose bit ``j`` is ``dot_j < fbound[lo + j]``, ``dot`` as in :func:`fblock_sum9`."""
    qs = (q0, q1, q2, q3, q4, q5, q6, q7, q8)
    if not (_fblock_sig(wb, k, acc, add, qs) and isinstance(fbound, types.Array)
            and fbound.dtype == types.float32 and isinstance(lo, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        _prefer_512(builder.function)
        total = _block_fma(context, builder, signature, args)
        lo_ = context.cast(builder, args[5], signature.args[5], types.intp)
        bnd = _load_f64(context, builder, signature.args[4], args[4], lo_)
        lt = builder.fcmp_ordered("<", total, bnd)
        return builder.bitcast(lt, ir.IntType(64))

    return types.int64(wb, k, acc, add, fbound, lo, *qs), codegen


@jit()
def emit_threshold(acc, bound, flipw, out_row, c_out):
    """Pack threshold outputs of one pixel into ``out_row`` (``ceil(C_out/64)`` words).

    ``acc[c]`` is an int64 value ``v`` per channel and the output bit of channel ``c``
    is ``(v > bound[c]) XOR flip[c]`` (set = −1); ``flipw`` holds the flip bits packed
    per word (zero past the last channel, so pad bits stay zero). The layer wrappers
    derive ``v``, ``bound`` and ``flip`` from ``thresh_sign · dot ≥ thresh`` (see
    :func:`threshold_bounds`).
    """
    n_w = out_row.shape[0]
    for ow in range(n_w):
        lo = ow * 64
        hi = min(lo + 64, c_out)
        word = np.int64(0)
        for c in range(lo, hi):
            # sign bit of (bound - v): 1 iff v > bound
            word |= ((bound[c] - acc[c]) >> 63 & 1) << (c - lo)
        out_row[ow] = np.uint64(word ^ flipw[ow])


def threshold_bounds(thresh, thresh_sign, slope, offset):
    """Turn ``thresh_sign·dot ≥ thresh`` into ``bit = (v > bound) XOR flip``.

    The kernels accumulate ``v`` with ``dot = offset + slope·v`` and ``slope`` = −2
    (binary layers: ``v`` = popcount of the XOR, ``dot = n − 2·v``) or −1 (``qconv``:
    ``v = −dot``). The output is −1 (bit set) iff ``thresh_sign·dot < thresh``:

    * ``thresh_sign = +1``: set iff ``dot < t`` ⟺ ``offset + slope·v ≤ t − 1`` ⟺
      ``v ≥ (offset − t + 1) / (−slope)`` ⟺ ``v > ceil((offset − t + 1)/(−slope)) − 1``;
      so ``bound = ceil((offset − t + 1)/|slope|) − 1``, ``flip = 0``.
    * ``thresh_sign = −1``: set iff ``dot > −t`` ⟺ ``offset + slope·v ≥ 1 − t`` ⟺
      ``v ≤ floor((offset + t − 1)/|slope|)`` ⟺ not ``(v > bound)`` with that
      ``bound``; so ``flip = 1``.

    Everything is int64 (``thresh`` is int32, ``offset`` small): no overflow.

    Returns
    -------
    bound : int64 ``(C_out,)``, flipw : int64 ``(ceil(C_out/64),)``
    """
    t = np.asarray(thresh, dtype=np.int64)
    s = np.asarray(thresh_sign, dtype=np.int64)
    m = -int(slope)
    off = int(offset)
    pos = -((-(off - t + 1)) // m) - 1          # ceil(a/m) - 1
    neg = (off + t - 1) // m                    # floor(a/m)
    bound = np.where(s > 0, pos, neg).astype(np.int64)
    flip = (s < 0)
    c_out = t.shape[0]
    n_w = (c_out + 63) // 64
    flipw = np.zeros(n_w, dtype=np.uint64)
    for c in np.nonzero(flip)[0]:
        flipw[c // 64] |= np.uint64(1) << np.uint64(c % 64)
    return np.ascontiguousarray(bound), flipw.view(np.int64)
