"""Pieces shared by the Numba kernels: popcount and the block intrinsics.

The hot loops of the convolutions are written as explicit LLVM vector code (numba
``@intrinsic``): one call handles one pixel × one block of ``L`` output channels
(``L`` = 16, 32 or 64, chosen per layer from C_out) × one group of ``G = 9`` input words
(or first-layer taps). Written this way the operands stay in zmm registers, there is
no loop for LLVM to guard with runtime alias checks, and the 64 threshold decisions of
a block become one output word through ``vpcmpq`` → mask registers (``kunpck``).

Caching caveat: numba's on-disk cache of a kernel is keyed on the kernel's own source
file only. The intrinsics here are compiled *into* the kernels of bconv.py / qconv.py,
so after editing this file clear ``bitnet/kernels/__pycache__`` (or touch those files),
or the old code keeps running from the cache.

Nothing here runs at ``import bitnet``: kernel modules are imported lazily.
"""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from llvmlite import ir
from numba.extending import intrinsic

# the layout constants and helpers are pure Python (bitnet.kernels.layout); they are
# re-exported here for the kernels
from .layout import (FGROUPS, GROUPS, LANES, ROWS3X3, block_width, group_words,  # noqa: F401
                     threshold_bounds)


def serial_and_parallel(fn):
    """Compile ``fn`` (a kernel written with ``prange``) twice: ``(serial, parallel)``.

    The serial twin runs the default, one-thread case with no threading layer at all:
    nothing to start, nothing shared between Python threads, no spinning workers on a
    busy machine. The parallel twin (``parallel=True``) is used when
    :func:`bitnet.set_num_threads` asked for more than one thread. The parallel twin
    is a copy of the function under another name, so the two keep separate on-disk
    cache entries.
    """
    import types as _pytypes

    from .._jit import jit

    twin = _pytypes.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_parallel",
                                 fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_parallel"
    twin.__doc__ = fn.__doc__
    twin.__module__ = fn.__module__
    return jit()(fn), jit(parallel=True)(twin)


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


I64 = ir.IntType(64)
I32 = ir.IntType(32)
F32 = ir.FloatType()



def _ptr(context, builder, aryty, aryval, index, vty):
    """Pointer to a ``vty`` vector at flat element ``index`` of a C-contiguous array."""
    ary = context.make_array(aryty)(context, builder, aryval)
    return builder.bitcast(builder.gep(ary.data, [index]), vty.as_pointer())


def _load(context, builder, aryty, aryval, index, vty):
    return builder.load(_ptr(context, builder, aryty, aryval, index, vty), align=4)


def _bcast(builder, val, vty):
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), val, ir.Constant(I32, 0))
    return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined),
                                  ir.Constant(ir.VectorType(I32, vty.count), None))


def _intp(context, builder, val, ty):
    return context.cast(builder, val, ty, types.intp)





def _by_shape(context, builder, lanes_val, lanes_ty, gw_val, gw_ty, emit, ret=None, groups=GROUPS):
    """Emit ``emit(L, G)`` for each block width L and group size G, behind one switch on
    the runtime values (LLVM unswitches the loops around the call)."""
    key = builder.add(builder.mul(_intp(context, builder, lanes_val, lanes_ty), ir.Constant(I64, 100)),
                      _intp(context, builder, gw_val, gw_ty))
    fn = builder.function
    end = fn.append_basic_block("shape.end")
    blocks = {(L, G): fn.append_basic_block(f"shape.{L}.{G}") for L in LANES for G in groups}
    sw = builder.switch(key, blocks[(64, 9)])
    for (L, G), bb in blocks.items():
        if (L, G) != (64, 9):
            sw.add_case(ir.Constant(I64, 100 * L + G), bb)
    incoming = []
    for (L, G), bb in blocks.items():
        builder.position_at_end(bb)
        val = emit(L, G)
        incoming.append((val, builder.block))
        builder.branch(end)
    builder.position_at_end(end)
    if ret is None:
        return None
    phi = builder.phi(ret)
    for val, bb in incoming:
        phi.add_incoming(val, bb)
    return phi


def _scalar(context, builder, aryty, aryval, index, ty):
    ary = context.make_array(aryty)(context, builder, aryval)
    return builder.load(builder.gep(ary.data, [index]))


def _ncols(context, builder, aryty, aryval):
    """Length of the last axis of an array (the row stride of a 2-D C array)."""
    ary = context.make_array(aryty)(context, builder, aryval)
    return cgutils.unpack_tuple(builder, ary.shape, aryty.ndim)[aryty.ndim - 1]


def _popsum(context, builder, L, G, sig, args):
    """``(acc[0:L] if add else 0) + Σ_{i<G} ctpop(x_i XOR w[k + L·i : +L])`` as <L x i64>,
    with ``x_i = xs.flat[xoff + i·ncols]``: ``xs`` is a ``(Kp, pixels)`` array, word-major
    (arguments: w, k, acc, add, lanes, gw, xs, xoff, ...)."""
    vty = ir.VectorType(I64, L)
    ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty]),
                                           f"llvm.ctpop.v{L}i64")
    k = _intp(context, builder, args[1], sig.args[1])
    xoff = _intp(context, builder, args[7], sig.args[7])
    ncols = _ncols(context, builder, sig.args[6], args[6])
    total = None
    for i in range(G):
        w = _load(context, builder, sig.args[0], args[0], builder.add(k, ir.Constant(I64, L * i)), vty)
        x = _scalar(context, builder, sig.args[6], args[6],
                    builder.add(xoff, builder.mul(ncols, ir.Constant(I64, i))), I64)
        pc = builder.call(ctpop, [builder.xor(_bcast(builder, x, vty), w)])
        total = pc if total is None else builder.add(total, pc)
    old = _load(context, builder, sig.args[2], args[2], ir.Constant(I64, 0), vty)
    return builder.add(total, builder.select(args[3], old, ir.Constant(vty, None)))


def _fmasum(context, builder, L, G, sig, args):
    """``(acc[0:L] if add else 0) + Σ_{i<G} q_i · w[k + L·i : +L]`` in float32 (<L x float>).

    Chains of three fused multiply-adds, then a sum; every partial sum of the first
    layer is an exact integer, so the association does not change the result.
    """
    vty = ir.VectorType(F32, L)
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty, vty, vty]),
                                         f"llvm.fma.v{L}f32")
    k = _intp(context, builder, args[1], sig.args[1])
    qoff = _intp(context, builder, args[7], sig.args[7])
    ncols = _ncols(context, builder, sig.args[6], args[6])
    chains = []
    rows = G == ROWS3X3
    for i in range(9 if rows else G):
        w = _load(context, builder, sig.args[0], args[0], builder.add(k, ir.Constant(I64, L * i)), vty)
        if rows:
            at = builder.add(qoff, builder.add(builder.mul(ncols, ir.Constant(I64, i // 3)),
                                               ir.Constant(I64, i % 3)))
        else:
            at = builder.add(qoff, builder.mul(ncols, ir.Constant(I64, i)))
        q = _scalar(context, builder, sig.args[6], args[6], at, F32)
        qb = _bcast(builder, q, vty)
        if i % 3 == 0:
            chains.append(builder.fmul(qb, w))
        else:
            chains[-1] = builder.call(fma, [qb, w, chains[-1]])
    total = chains[0]
    for c in chains[1:]:
        total = builder.fadd(total, c)
    old = _load(context, builder, sig.args[2], args[2], ir.Constant(I64, 0), vty)
    return builder.fadd(total, builder.select(args[3], old, ir.Constant(vty, None)))


def _is_arr(t, dtype):
    return isinstance(t, types.Array) and t.layout == "C" and t.dtype == dtype


def _check_common(w, k, acc, add, lanes, gw, xs, xoff, wdt, accdt):
    return (_is_arr(w, wdt) and isinstance(k, types.Integer) and _is_arr(acc, accdt)
            and isinstance(add, types.Boolean) and isinstance(lanes, types.Integer)
            and isinstance(gw, types.Integer) and _is_arr(xs, wdt)
            and isinstance(xoff, types.Integer))


# Argument conventions of the block intrinsics (offsets are flat element indices):
#   w      C-contiguous weight blocks; row i of the group starts at k + L·i
#   k      offset of the group's first weight row
#   acc    64-element accumulator (int64 for binary layers, float32 for the first layer)
#   add    bool: add acc[0:L] to the group's sum (a constant at every call site)
#   lanes  L, the block width (16, 32 or 64)
#   gw     G, words per group (3 or 9)
#   xs     the gathered input words (uint64) or levels (float32) of a row of pixels,
#          a 2-D (Kp, pixels) array: word k of pixel p is xs[k, p]
#   xoff   flat offset of the group's first word of the pixel, k0·pixels + p


@intrinsic
def block_sum(typingctx, w, k, acc, add, lanes, gw, xs, xoff):
    """``acc[0:L] = (acc[0:L] if add else 0) + Σ_i popcount(x_i XOR w_i)``."""
    if not _check_common(w, k, acc, add, lanes, gw, xs, xoff, types.uint64, types.int64):
        return None

    def codegen(context, builder, sig, args):
        _prefer_512(builder.function)

        def emit(L, G):
            v = _popsum(context, builder, L, G, sig, args)
            builder.store(v, _ptr(context, builder, sig.args[2], args[2], ir.Constant(I64, 0), v.type), align=4)

        _by_shape(context, builder, args[4], sig.args[4], args[5], sig.args[5], emit)
        return context.get_dummy_value()

    return types.none(w, k, acc, add, lanes, gw, xs, xoff), codegen


@intrinsic
def block_thresh(typingctx, w, k, acc, add, lanes, gw, xs, xoff, bound, lo):
    """Word with bit ``j`` = ``v_j > bound[lo + j]`` (``j < L``), ``v`` as in block_sum."""
    if not (_check_common(w, k, acc, add, lanes, gw, xs, xoff, types.uint64, types.int64)
            and _is_arr(bound, types.int64) and isinstance(lo, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        _prefer_512(builder.function)
        lo_ = _intp(context, builder, args[9], sig.args[9])

        def emit(L, G):
            v = _popsum(context, builder, L, G, sig, args)
            bnd = _load(context, builder, sig.args[8], args[8], lo_, v.type)
            bits = builder.bitcast(builder.icmp_signed(">", v, bnd), ir.IntType(L))
            return builder.zext(bits, I64) if L < 64 else bits

        return _by_shape(context, builder, args[4], sig.args[4], args[5], sig.args[5], emit, I64)

    return types.int64(w, k, acc, add, lanes, gw, xs, xoff, bound, lo), codegen


@intrinsic
def block_affine(typingctx, w, k, acc, add, lanes, gw, xs, xoff, n, scale, bias, lo, out, off):
    """``out[off : off+L] = float32(n − 2·v) · scale[lo:lo+L] + bias[lo:lo+L]`` (float32
    multiply, then add: no fusion, as in the reference)."""
    if not (_check_common(w, k, acc, add, lanes, gw, xs, xoff, types.uint64, types.int64)
            and isinstance(n, types.Integer) and _is_arr(scale, types.float32)
            and _is_arr(bias, types.float32) and isinstance(lo, types.Integer)
            and _is_arr(out, types.float32) and isinstance(off, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        _prefer_512(builder.function)
        n_ = _intp(context, builder, args[8], sig.args[8])
        lo_ = _intp(context, builder, args[11], sig.args[11])
        off_ = _intp(context, builder, args[13], sig.args[13])

        def emit(L, G):
            v = _popsum(context, builder, L, G, sig, args)
            fty = ir.VectorType(F32, L)
            dot = builder.sub(_bcast(builder, n_, v.type), builder.shl(v, ir.Constant(v.type, [1] * L)))
            sc = _load(context, builder, sig.args[9], args[9], lo_, fty)
            bi = _load(context, builder, sig.args[10], args[10], lo_, fty)
            y = builder.fadd(builder.fmul(builder.sitofp(dot, fty), sc), bi)
            builder.store(y, _ptr(context, builder, sig.args[12], args[12], off_, fty), align=4)

        _by_shape(context, builder, args[4], sig.args[4], args[5], sig.args[5], emit)
        return context.get_dummy_value()

    return types.none(w, k, acc, add, lanes, gw, xs, xoff, n, scale, bias, lo, out, off), codegen


@intrinsic
def fblock_sum(typingctx, w, k, acc, add, lanes, gw, qs, qoff):
    """``acc[0:L] = (acc[0:L] if add else 0) + Σ_i q_i · w_i`` (float32, exact here)."""
    if not _check_common(w, k, acc, add, lanes, gw, qs, qoff, types.float32, types.float32):
        return None

    def codegen(context, builder, sig, args):
        _prefer_512(builder.function)

        def emit(L, G):
            v = _fmasum(context, builder, L, G, sig, args)
            builder.store(v, _ptr(context, builder, sig.args[2], args[2], ir.Constant(I64, 0), v.type), align=4)

        _by_shape(context, builder, args[4], sig.args[4], args[5], sig.args[5], emit, groups=FGROUPS)
        return context.get_dummy_value()

    return types.none(w, k, acc, add, lanes, gw, qs, qoff), codegen


@intrinsic
def fblock_thresh(typingctx, w, k, acc, add, lanes, gw, qs, qoff, fbound, lo):
    """Word with bit ``j`` = ``dot_j < fbound[lo + j]``, ``dot`` as in fblock_sum."""
    if not (_check_common(w, k, acc, add, lanes, gw, qs, qoff, types.float32, types.float32)
            and _is_arr(fbound, types.float32) and isinstance(lo, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        _prefer_512(builder.function)
        lo_ = _intp(context, builder, args[9], sig.args[9])

        def emit(L, G):
            v = _fmasum(context, builder, L, G, sig, args)
            bnd = _load(context, builder, sig.args[8], args[8], lo_, v.type)
            bits = builder.bitcast(builder.fcmp_ordered("<", v, bnd), ir.IntType(L))
            return builder.zext(bits, I64) if L < 64 else bits

        return _by_shape(context, builder, args[4], sig.args[4], args[5], sig.args[5], emit, I64, groups=FGROUPS)

    return types.int64(w, k, acc, add, lanes, gw, qs, qoff, fbound, lo), codegen


@intrinsic
def fblock_affine(typingctx, w, k, acc, add, lanes, gw, qs, qoff, scale, bias, lo, out, off):
    """``out[off : off+L] = dot · scale[lo:lo+L] + bias[lo:lo+L]`` (float32 multiply, add)."""
    if not (_check_common(w, k, acc, add, lanes, gw, qs, qoff, types.float32, types.float32)
            and _is_arr(scale, types.float32) and _is_arr(bias, types.float32)
            and isinstance(lo, types.Integer) and _is_arr(out, types.float32)
            and isinstance(off, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        _prefer_512(builder.function)
        lo_ = _intp(context, builder, args[10], sig.args[10])
        off_ = _intp(context, builder, args[12], sig.args[12])

        def emit(L, G):
            v = _fmasum(context, builder, L, G, sig, args)
            sc = _load(context, builder, sig.args[8], args[8], lo_, v.type)
            bi = _load(context, builder, sig.args[9], args[9], lo_, v.type)
            y = builder.fadd(builder.fmul(v, sc), bi)
            builder.store(y, _ptr(context, builder, sig.args[11], args[11], off_, v.type), align=4)

        _by_shape(context, builder, args[4], sig.args[4], args[5], sig.args[5], emit, groups=FGROUPS)
        return context.get_dummy_value()

    return types.none(w, k, acc, add, lanes, gw, qs, qoff, scale, bias, lo, out, off), codegen


@intrinsic
def vop16(typingctx, out, ooff, src, soff, op):
    """``out[ooff:ooff+16] = src[soff:soff+16]`` (op 0), ``+=`` (op 1) or elementwise
    max keeping ``out`` unless ``src > out`` (op 2): float32, C-contiguous arrays, flat
    offsets. One zmm register per call; the pools use it over 16-channel chunks."""
    if not (_is_arr(out, types.float32) and _is_arr(src, types.float32)
            and isinstance(ooff, types.Integer) and isinstance(soff, types.Integer)
            and isinstance(op, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        _prefer_512(builder.function)
        vty = ir.VectorType(F32, 16)
        oo = _intp(context, builder, args[1], sig.args[1])
        so = _intp(context, builder, args[3], sig.args[3])
        optr = _ptr(context, builder, sig.args[0], args[0], oo, vty)
        v = builder.load(_ptr(context, builder, sig.args[2], args[2], so, vty), align=4)
        o = builder.load(optr, align=4)
        opv = _intp(context, builder, args[4], sig.args[4])
        added = builder.fadd(o, v)
        maxed = builder.select(builder.fcmp_ordered(">", v, o), v, o)
        res = builder.select(builder.icmp_signed("==", opv, ir.Constant(I64, 0)), v,
                             builder.select(builder.icmp_signed("==", opv, ir.Constant(I64, 1)), added, maxed))
        builder.store(res, optr, align=4)
        return context.get_dummy_value()

    return types.none(out, ooff, src, soff, op), codegen


def _sign_word_codegen(shifted):
    def codegen(context, builder, sig, args):
        _prefer_512(builder.function)
        vty = ir.VectorType(F32, 64)
        xo = _intp(context, builder, args[1], sig.args[1])
        v = builder.load(_ptr(context, builder, sig.args[0], args[0], xo, vty), align=4)
        if shifted:
            so = _intp(context, builder, args[3], sig.args[3])
            v = builder.fadd(v, builder.load(_ptr(context, builder, sig.args[2], args[2], so, vty), align=4))
        neg = builder.fcmp_ordered("<", v, ir.Constant(vty, None))
        return builder.bitcast(neg, I64)

    return codegen


@intrinsic
def sign_word(typingctx, x, xoff):
    """One packed word of the ``sign`` op: bit ``i`` set iff ``x[xoff+i] < 0`` for
    ``i < 64`` (float32, C-contiguous array, flat offset), as a uint64. ``fcmp olt``
    is false for NaN and for ±0.0, as ``v < 0`` is. One ``vcmpps`` per 16 values, the
    64 mask bits assembled with ``kunpck`` (the bitcast of an <64 x i1> vector)."""
    if not (_is_arr(x, types.float32) and isinstance(xoff, types.Integer)):
        return None
    return types.uint64(x, xoff), _sign_word_codegen(False)


@intrinsic
def sign_word_shift(typingctx, x, xoff, shift, soff):
    """:func:`sign_word` of ``x[xoff+i] + shift[soff+i]`` (one float32 add per value,
    the add of the scalar code)."""
    if not (_is_arr(x, types.float32) and _is_arr(shift, types.float32)
            and isinstance(xoff, types.Integer) and isinstance(soff, types.Integer)):
        return None
    return types.uint64(x, xoff, shift, soff), _sign_word_codegen(True)
