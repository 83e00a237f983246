"""Pieces shared by the Numba kernels: the popcount intrinsic and the threshold emitter.

Nothing here runs at ``import bitnet``: kernel modules are imported lazily.
"""

from __future__ import annotations

import numpy as np
from numba import types
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
