"""Layout constants and helpers of the convolution kernels, in pure Python.

Shared by the kernels (:mod:`._common`, :mod:`.bconv`, :mod:`.qconv`) and by the
layer preparation (:mod:`.bconv_layer`, :mod:`.qconv_layer`), which must not import
numba: with the ahead-of-time kernels (:mod:`bitnet.compile.aot`) a model runs without it.
"""

from __future__ import annotations

import numpy as np

#: block widths of the AVX-512 path; each instruction-set path has its own
#: (:data:`bitnet.kernels.isa.PATHS`), and the ``lanes`` argument of the block
#: intrinsics picks one at run time (LLVM unswitches the loops around them)
LANES = (16, 32, 64)

#: input words per group of the binary layers: 9 for wide windows, 3 for small ones, 4
#: for the 1×1 windows of 256·k channels (the transformer's linear layers: 4 or 16
#: words, which groups of 3 or 9 would pad by 50 % or 12.5 %)
GROUPS = (3, 4, 9)
#: taps per group of the first layer (float levels against ±1 weights)
FGROUP_SIZES = (3, 9)
#: first-layer group code for "3×3 taps read from three padded rows": tap (ky, kx) of
#: pixel xo is ``qs[ky, xo + kx]`` (stride-1 3×3 windows of one input channel, no
#: per-tap gather)
ROWS3X3 = 19
FGROUPS = (3, 9, ROWS3X3)


def group_words(words: int, groups=GROUPS) -> tuple[int, int]:
    """``(G, Kp)``: group size and padded word count for a window of ``words`` words
    (or first-layer taps, ``groups=FGROUP_SIZES``): 3 up to 6 words, else 9, unless
    groups of 4 (where ``groups`` has them) pad the window less."""
    g = 3 if words <= 6 else 9
    if 4 in groups and -(-words // 4) * 4 < -(-words // g) * g:
        g = 4
    return g, -(-words // g) * g


def block_width(c_out: int, lanes=LANES) -> int:
    """Output channels per block: the smallest of ``lanes`` (the block widths of the
    kernels' instruction-set path, :func:`bitnet.kernels.isa.lanes`) that holds
    ``c_out``, else the widest (wider layers use several blocks)."""
    for L in lanes:
        if c_out <= L:
            return L
    return lanes[-1]


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


def nibble_planes(wt):
    """Weight blocks ``(nblk, Kp, L)`` uint64 -> ``(nblk, Kp, 2L)``: each row's ``L``
    words with only their low nibbles (``w & 0x0F…``), then only their high nibbles
    shifted down (``(w >> 4) & 0x0F…``). The AVX2 kernels split each input word the
    same way once, so that ``x XOR w`` per plane is a vector of 4-bit table indices
    for ``vpshufb`` (popcount(x XOR w) = sum of the two planes' nibble counts)."""
    wt = np.asarray(wt, np.uint64)
    m = np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.concatenate([wt & m, (wt >> np.uint64(4)) & m], axis=2)


#: byte alignment of every array a kernel reads with vector loads (weights, bounds,
#: scales): a cache line, so no 32- or 64-byte load ever straddles two lines. NumPy
#: only promises 16 bytes; how often loads straddled then depended on where the
#: allocator put each array, a different place in every process.
ALIGN = 64


def aligned(a, align: int = ALIGN):
    """A C-contiguous copy of ``a`` whose data starts at a multiple of ``align`` bytes."""
    a = np.asarray(a)
    buf = np.empty(a.nbytes + align, np.uint8)
    off = (-buf.ctypes.data) % align
    out = buf[off:off + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


#: job rows of the pool threads' native loop (:mod:`.worker`): words per row, kinds
JOB_WORDS = 20
JOB_PY, JOB_BCONV, JOB_QCONV = 1, 2, 3
