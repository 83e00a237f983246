"""Pieces shared by the Numba kernels: popcount and the block intrinsics.

The hot loops of the convolutions are written as explicit LLVM vector code (numba
``@intrinsic``): one call handles one pixel × one block of ``L`` output channels
(``L`` from the instruction-set path's block widths, :mod:`.isa`, chosen per layer from
C_out) × one group of ``G`` = 3, 4 or 9 input words (3 or 9 first-layer taps). Written this
way the operands stay in vector registers, there is no loop for LLVM to guard with
runtime alias checks, and the L threshold decisions of a block become one output word
through a vector compare (``vpcmpq`` → mask registers on AVX-512). The code emitted
depends on the path the target CPU gets (:func:`.isa.codegen_path`): the popcount in
:func:`_popsum` (64-bit counts with ``vpopcntq``; byte counters from ``vpshufb``
nibble tables on AVX2 or ``cnt`` on NEON, widened once per group), fused multiply-add
or not in :func:`_fmasum`, and the block widths the shape switch covers.

Caching caveat: numba's on-disk cache of a kernel is keyed on the kernel's own source
file and the target CPU only. The intrinsics here are compiled *into* the kernels of bconv.py / qconv.py,
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
from . import isa
from .layout import (FGROUPS, GROUPS, ROWS3X3, block_width, group_words,  # noqa: F401
                     threshold_bounds)


#: LLVM function attribute that lets the loop vectoriser use 512-bit registers. LLVM's
#: tuning for recent Intel cores (``prefer-256-bit``) keeps auto-vectorised loops on
#: ymm registers; the XNOR-popcount loops measured ~20% faster on zmm here (vpopcntq
#: zmm). Setting it per function, from the popcount intrinsic, keeps the choice local
#: to bitnet's own kernels instead of changing numba's global CPU features.
_PREFER_512 = '"prefer-vector-width"="512"'


def _prefer_512(context, fn):
    # llvmlite only accepts known keyword attributes through ``add``; a string
    # attribute is written verbatim into the function's attribute list.
    if _PREFER_512 not in fn.attributes and isa.codegen_path(context) == "avx512":
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
        _prefer_512(context, builder.function)
        return builder.ctpop(args[0])

    return types.int64(types.uint64), codegen


I64 = ir.IntType(64)
I32 = ir.IntType(32)
I8 = ir.IntType(8)
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





def _by_shape(context, builder, lanes_val, lanes_ty, gw_val, gw_ty, emit, ret=None, groups=GROUPS,
              first_layer=False):
    """Emit ``emit(L, G)`` for each block width L of the target's path (:mod:`.isa`) and
    group size G, behind one switch on the runtime values (LLVM unswitches the loops
    around the call). A width the path has no code for falls to the widest one; layer
    preparation never asks for it (it reads the same table)."""
    shapes = isa.PATHS[isa.codegen_path(context)]
    lanes = shapes["qlanes" if first_layer else "lanes"]
    key = builder.add(builder.mul(_intp(context, builder, lanes_val, lanes_ty), ir.Constant(I64, 100)),
                      _intp(context, builder, gw_val, gw_ty))
    fn = builder.function
    end = fn.append_basic_block("shape.end")
    blocks = {(L, G): fn.append_basic_block(f"shape.{L}.{G}") for L in lanes for G in groups}
    default = (lanes[-1], groups[-1])
    sw = builder.switch(key, blocks[default])
    for (L, G), bb in blocks.items():
        if (L, G) != default:
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
    (arguments: w, k, acc, add, lanes, gw, xs, xoff, ...).

    The popcount follows the compilation target's path (:mod:`.isa`): 64-bit counts per
    word (``vpopcntq``) on AVX-512; elsewhere byte counters (``ctpop`` of ``<8L x i8>``:
    ``vpshufb`` nibble lookups on AVX2, ``cnt.16b`` on NEON) summed over the group's
    words and widened to 64 bits once (a byte holds at most 8·G ≤ 72).
    """
    path = isa.codegen_path(context)
    vty = ir.VectorType(I64, L)
    k = _intp(context, builder, args[1], sig.args[1])
    xoff = _intp(context, builder, args[7], sig.args[7])
    ncols = _ncols(context, builder, sig.args[6], args[6])
    if isa.PATHS[path]["nibbles"]:
        total = _nibble_popsum(context, builder, L, G, sig, args, k, xoff, ncols)
    else:
        wide = path == "avx512"
        cty = vty if wide else ir.VectorType(I8, 8 * L)
        ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(cty, [cty]),
                                               f"llvm.ctpop.v{cty.count}i{cty.element.width}")
        total = None
        for i in range(G):
            w = _load(context, builder, sig.args[0], args[0], builder.add(k, ir.Constant(I64, L * i)), vty)
            x = _scalar(context, builder, sig.args[6], args[6],
                        builder.add(xoff, builder.mul(ncols, ir.Constant(I64, i))), I64)
            v = builder.xor(_bcast(builder, x, vty), w)
            pc = builder.call(ctpop, [v if wide else builder.bitcast(v, cty)])
            total = pc if total is None else builder.add(total, pc)
        if not wide:
            total = _widen_bytes(builder, total, L, path)
    old = _load(context, builder, sig.args[2], args[2], ir.Constant(I64, 0), vty)
    return builder.add(total, builder.select(args[3], old, ir.Constant(vty, None)))


#: popcount of each nibble value, twice (one 128-bit lane of ``vpshufb`` each)
_NIBBLE_COUNTS = [bin(i).count("1") for i in range(16)] * 2


def _nibble_popsum(context, builder, L, G, sig, args, k, xoff, ncols):
    """The AVX2 popcount over nibble planes: weight row ``i`` is ``2L`` words at
    ``k + 2L·i``, the low nibbles of the ``L`` channels' words then the high nibbles
    (:func:`.layout.nibble_planes`). The input word is split the same way once per
    word; then ``x XOR w`` of each plane is already a vector of nibbles, looked up
    in the 16-entry count table with ``vpshufb`` (no masking per weight word: 6
    instructions per 256 bits instead of 8), counts added as bytes, widened once."""
    vty = ir.VectorType(I64, L)
    t32 = ir.VectorType(I8, 32)
    pshufb = cgutils.get_or_insert_function(builder.module, ir.FunctionType(t32, [t32, t32]),
                                            "llvm.x86.avx2.pshuf.b")
    table = ir.Constant(t32, _NIBBLE_COUNTS)
    low = ir.Constant(vty, [0x0F0F0F0F0F0F0F0F] * L)
    four = ir.Constant(vty, [4] * L)
    total = None
    for i in range(G):
        x = _scalar(context, builder, sig.args[6], args[6],
                    builder.add(xoff, builder.mul(ncols, ir.Constant(I64, i))), I64)
        xb = _bcast(builder, x, vty)
        planes = (builder.and_(xb, low), builder.and_(builder.lshr(xb, four), low))
        row = builder.add(k, ir.Constant(I64, 2 * L * i))
        for half, xp in enumerate(planes):
            w = _load(context, builder, sig.args[0], args[0], builder.add(row, ir.Constant(I64, L * half)), vty)
            v = builder.bitcast(builder.xor(xp, w), ir.VectorType(I8, 8 * L))
            pc = _concat(builder, [builder.call(pshufb, [table, _slice(builder, v, 32 * j, 32)])
                                   for j in range(L // 4)])
            total = pc if total is None else builder.add(total, pc)
    return _widen_bytes(builder, total, L, "avx2")


def _slice(builder, v, start, n):
    """Elements ``start .. start+n`` of vector ``v`` (a register-level shuffle)."""
    return builder.shuffle_vector(v, ir.Constant(v.type, ir.Undefined),
                                  ir.Constant(ir.VectorType(I32, n), list(range(start, start + n))))


def _concat(builder, parts):
    """One vector of the vectors ``parts`` (same type), in order."""
    while len(parts) > 1:
        nxt = []
        for a, b in zip(parts[0::2], parts[1::2]):
            n = a.type.count
            nxt.append(builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(I32, 2 * n), list(range(2 * n)))))
        parts = nxt
    return parts[0]


def _widen_bytes(builder, b, L, path):
    """``<8L x i8>`` byte counts -> ``<L x i64>``: the sum of each group of eight bytes
    (one per 64-bit word). AVX2: ``vpsadbw`` against zero per 32 bytes; NEON: three
    pairwise widening adds (``uaddlp``) per 16 bytes; generic: shifts and masks."""
    vty = ir.VectorType(I64, L)
    if path == "avx2":
        t32 = ir.VectorType(I8, 32)
        sad = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VectorType(I64, 4), [t32, t32]),
                                             "llvm.x86.avx2.psad.bw")
        zero = ir.Constant(t32, None)
        return _concat(builder, [builder.call(sad, [_slice(builder, b, 32 * j, 32), zero])
                                 for j in range(L // 4)])
    if path == "neon":
        def uaddlp(v, src, dst):
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(dst, [src]),
                                                f"llvm.aarch64.neon.uaddlp.v{dst.count}i{dst.element.width}"
                                                f".v{src.count}i{src.element.width}")
            return builder.call(fn, [v])

        t8, t16, t32, t64 = (ir.VectorType(ir.IntType(w), 128 // w) for w in (8, 16, 32, 64))
        parts = []
        for j in range(L // 2):
            v = uaddlp(_slice(builder, b, 16 * j, 16), t8, t16)
            parts.append(uaddlp(uaddlp(v, t16, t32), t32, t64))
        return _concat(builder, parts)
    v = builder.bitcast(b, vty)
    for shift, mask in ((8, 0x00FF00FF00FF00FF), (16, 0x0000FFFF0000FFFF), (32, 0x00000000FFFFFFFF)):
        m = ir.Constant(vty, [mask] * L)
        v = builder.add(builder.and_(v, m), builder.and_(builder.lshr(v, ir.Constant(vty, [shift] * L)), m))
    return v


def _fmasum(context, builder, L, G, sig, args):
    """``(acc[0:L] if add else 0) + Σ_{i<G} q_i · w[k + L·i : +L]`` in float32 (<L x float>).

    Chains of three fused multiply-adds, then a sum; every partial sum of the first
    layer is an exact integer, so the association does not change the result.
    """
    vty = ir.VectorType(F32, L)
    if isa.PATHS[isa.codegen_path(context)]["fma"]:
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty, vty, vty]),
                                            f"llvm.fma.v{L}f32")

        def fma(a, b, c):
            return builder.call(fn, [a, b, c])
    else:
        # no fused multiply-add on the target (llvm.fma would become a libm call per
        # lane): multiply, then add; every partial sum is an exact integer, so the
        # result is the same
        def fma(a, b, c):
            return builder.fadd(builder.fmul(a, b), c)
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
            chains[-1] = fma(qb, w, chains[-1])
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
#   gw     G, words per group (layout.GROUPS: 3, 4 or 9; first layer 3, 9 or ROWS3X3)
#   xs     the gathered input words (uint64) or levels (float32) of a row of pixels,
#          a 2-D (Kp, pixels) array: word k of pixel p is xs[k, p]
#   xoff   flat offset of the group's first word of the pixel, k0·pixels + p


@intrinsic
def block_sum(typingctx, w, k, acc, add, lanes, gw, xs, xoff):
    """``acc[0:L] = (acc[0:L] if add else 0) + Σ_i popcount(x_i XOR w_i)``."""
    if not _check_common(w, k, acc, add, lanes, gw, xs, xoff, types.uint64, types.int64):
        return None

    def codegen(context, builder, sig, args):
        _prefer_512(context, builder.function)

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
        _prefer_512(context, builder.function)
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
        _prefer_512(context, builder.function)
        n_ = _intp(context, builder, args[8], sig.args[8])
        lo_ = _intp(context, builder, args[11], sig.args[11])
        off_ = _intp(context, builder, args[13], sig.args[13])

        def emit(L, G):
            v = _popsum(context, builder, L, G, sig, args)
            fty = ir.VectorType(F32, L)
            dot = builder.sub(_bcast(builder, n_, v.type), builder.shl(v, ir.Constant(v.type, [1] * L)))
            sc = _load(context, builder, sig.args[9], args[9], lo_, fty)
            bi = _load(context, builder, sig.args[10], args[10], lo_, fty)
            # |dot| <= n < 2**31: converted through int32 (vcvtdq2ps; AVX2 has no
            # int64 -> float vector conversion, LLVM would do it lane by lane), exact
            dot32 = builder.trunc(dot, ir.VectorType(I32, L))
            y = builder.fadd(builder.fmul(builder.sitofp(dot32, fty), sc), bi)
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
        _prefer_512(context, builder.function)

        def emit(L, G):
            v = _fmasum(context, builder, L, G, sig, args)
            builder.store(v, _ptr(context, builder, sig.args[2], args[2], ir.Constant(I64, 0), v.type), align=4)

        _by_shape(context, builder, args[4], sig.args[4], args[5], sig.args[5], emit, groups=FGROUPS, first_layer=True)
        return context.get_dummy_value()

    return types.none(w, k, acc, add, lanes, gw, qs, qoff), codegen


@intrinsic
def fblock_thresh(typingctx, w, k, acc, add, lanes, gw, qs, qoff, fbound, lo):
    """Word with bit ``j`` = ``dot_j < fbound[lo + j]``, ``dot`` as in fblock_sum."""
    if not (_check_common(w, k, acc, add, lanes, gw, qs, qoff, types.float32, types.float32)
            and _is_arr(fbound, types.float32) and isinstance(lo, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        _prefer_512(context, builder.function)
        lo_ = _intp(context, builder, args[9], sig.args[9])

        def emit(L, G):
            v = _fmasum(context, builder, L, G, sig, args)
            bnd = _load(context, builder, sig.args[8], args[8], lo_, v.type)
            bits = builder.bitcast(builder.fcmp_ordered("<", v, bnd), ir.IntType(L))
            return builder.zext(bits, I64) if L < 64 else bits

        return _by_shape(context, builder, args[4], sig.args[4], args[5], sig.args[5], emit, I64, groups=FGROUPS, first_layer=True)

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
        _prefer_512(context, builder.function)
        lo_ = _intp(context, builder, args[10], sig.args[10])
        off_ = _intp(context, builder, args[12], sig.args[12])

        def emit(L, G):
            v = _fmasum(context, builder, L, G, sig, args)
            sc = _load(context, builder, sig.args[8], args[8], lo_, v.type)
            bi = _load(context, builder, sig.args[9], args[9], lo_, v.type)
            y = builder.fadd(builder.fmul(v, sc), bi)
            builder.store(y, _ptr(context, builder, sig.args[11], args[11], off_, v.type), align=4)

        _by_shape(context, builder, args[4], sig.args[4], args[5], sig.args[5], emit, groups=FGROUPS, first_layer=True)
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
        _prefer_512(context, builder.function)
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
        _prefer_512(context, builder.function)
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


@intrinsic
def isa_code_const(typingctx, x):
    """The code (:data:`.isa.PATHS`) of the instruction-set path this very code is
    compiled for, as an int64 constant (``x`` is ignored; it gives the signature)."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        return ir.Constant(I64, isa.PATHS[isa.codegen_path(context)]["code"])

    return types.int64(x), codegen


@intrinsic
def weight_planes(typingctx, x):
    """Weight rows per block row on this path: 2 where binary weights are stored as
    low and high nibble planes (:func:`.layout.nibble_planes`), else 1 (``x`` gives
    the signature)."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        return ir.Constant(I64, 2 if isa.PATHS[isa.codegen_path(context)]["nibbles"] else 1)

    return types.int64(x), codegen


def _flag_ptr(context, builder, aryty, aryval, index):
    ary = context.make_array(aryty)(context, builder, aryval)
    return builder.gep(ary.data, [_intp(context, builder, index[0], index[1])])


@intrinsic
def load_acquire(typingctx, flags, i):
    """``flags[i]`` (int64, C-contiguous) as an atomic load with acquire ordering: read
    afresh on every call (a plain load would be hoisted out of a spin loop), and
    nothing the other thread wrote before its release store is missed."""
    if not (_is_arr(flags, types.int64) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = _flag_ptr(context, builder, sig.args[0], args[0], (args[1], sig.args[1]))
        return builder.load_atomic(ptr, "acquire", 8)

    return types.int64(flags, i), codegen


@intrinsic
def store_release(typingctx, flags, i, value):
    """``flags[i] = value`` as an atomic store with release ordering: everything this
    thread wrote before (a kernel's output rows) is visible to a thread that sees it."""
    if not (_is_arr(flags, types.int64) and isinstance(i, types.Integer)
            and isinstance(value, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = _flag_ptr(context, builder, sig.args[0], args[0], (args[1], sig.args[1]))
        val = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(val, ptr, "release", 8)
        return context.get_dummy_value()

    return types.none(flags, i, value), codegen


@intrinsic
def cpu_relax(typingctx, x):
    """A spin-wait hint (``pause`` on x86, ``yield`` on ARM64; nothing elsewhere); ``x``
    gives the signature."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        arch = isa.codegen_target(context)[0]
        if arch.startswith("x86_64"):
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse2.pause")
            builder.call(fn, [])
        elif arch.startswith(("aarch64", "arm64")):
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [I32]),
                                                "llvm.aarch64.hint")
            builder.call(fn, [ir.Constant(I32, 1)])
        return context.get_dummy_value()

    return types.none(x), codegen


@intrinsic
def voidptr_at(typingctx, addr):
    """The address ``addr`` (an integer from :attr:`numpy.ndarray.ctypes.data`) as a
    ``void*``, for :func:`numba.carray` views of arrays handed over as job rows."""
    if not isinstance(addr, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], ir.IntType(8).as_pointer())

    return types.voidptr(addr), codegen


@intrinsic
def os_yield(typingctx, x):
    """``sched_yield()`` where the target has it (Linux and other POSIX; nothing
    elsewhere): a spinning thread gives its core to any other runnable thread, such as
    the thread it waits for when the OS has put both on one core (a busy machine).
    ``x`` gives the signature."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        triple = isa.codegen_target(context)[0]
        if "linux" in triple or "darwin" in triple or "bsd" in triple:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(I32, []), "sched_yield")
            builder.call(fn, [])
        return context.get_dummy_value()

    return types.none(x), codegen
