"""Binary convolution and binary dense: XNOR-popcount over packed ±1 values.

For a pixel and an output channel ``c``, with the window's packed input words ``x_k``
and the weight words ``w_k`` of channel ``c`` (pad bits zero in both):

    dot = n − 2·Σ_k popcount(x_k XOR w_k),    n = kh·kw·C_in

Padded pixels of ``same`` padding hold +1, i.e. words of zeros, and still count in ``n``
(see :mod:`bitnet.kernels.geometry` for where the padding goes). A dense layer is the
same kernel on a 1×1 image with a 1×1 window.

Kernel layout (prepared once, in :class:`BConv`):

* **Windows.** For ``C_in >= 64`` a window is its ``kh·kw·ceil(C_in/64)`` words in
  (ky, kx, word) order. For ``C_in < 64`` the window's ``kh·kw·C_in`` bits are packed
  densely, tap-major (*patch packing*, docs/design.md §2's "re-tile at load time"): a 3×3
  window of 16 channels is 3 words instead of 9. The kernel gathers the windows of a
  whole output row into a ``(Kp, W_out)`` buffer (word-major); ``Kp`` is the window's word count
  rounded up to a multiple of the group size ``G`` (3 for windows of up to 6 words,
  else 9, or 4 where that pads less: :func:`.layout.group_words`). Padded words are
  zero on both sides and add nothing to the popcount.
* **Weights** become blocks of ``L`` output channels (``L`` = 16, 32 or 64: the
  smallest that holds ``C_out``, 64 for wide layers): ``wt[block, k, j]`` is window
  word ``k`` of output channel ``block·L + j``. One block is at most ``Kp·L`` words
  (18 KiB for 256 input channels), so it stays in L1 while the row's pixels stream.
* **Inner step** (:mod:`._common` block intrinsics): for one pixel and one block, the
  ``G`` window words of a group are broadcast against ``G`` weight rows of ``L``
  words as explicit ``<L x i64>`` vector code (``vpxorq``, ``vpopcntq``, ``vpaddq`` on
  zmm registers), the group sums accumulate, and the last group is fused with the
  output transform: ``threshold`` compares the popcount with per-channel bounds
  (``vpcmpq`` into mask registers: the block's output bits in a few instructions,
  never a float), ``affine`` converts and stores ``L`` floats at once.
* **Threshold bounds.** ``thresh_sign·dot ≥ thresh`` with ``dot = n − 2·v`` becomes
  ``bit = (v > bound) XOR flip`` at preparation (:func:`._common.threshold_bounds`
  has the derivation); padded channels get ``bound = int64 max``, so their bits stay 0.

With more than one thread, :mod:`bitnet._threads` runs the kernel on parts of the
output rows at once (the header's part index); every output element is computed by
one part in a fixed order, so results are identical for any thread count.
"""

from __future__ import annotations

import numpy as np

from ..compile.options import jit
from ._common import block_affine, block_sum, block_thresh, weight_planes
# the layer preparation (pure Python, no numba) lives in bconv_layer; re-exported here
from .bconv_layer import (_CO, _DENSE, _GW, _HO, _KH, _KW, _MODE, _N, _NCH, _NHDR, _T0, _T1,  # noqa: F401
                          _PL, _PT, _SH, _SW, _WO, _EMPTY_F32, _EMPTY_I32, _EMPTY_U64,
                          MODES, BConv, BDense, _check_output_tensors, bconv, bdense)

__all__ = ["BConv", "BDense", "bconv", "bdense", "MODES"]

# The per-row loops live in small functions of their own: compiled inside the big
# parallel kernel, the same loops ran ~40% slower (register pressure of the whole
# kernel around the 8-zmm vector values). The accumulate flags of the block intrinsics
# are constants at every call site (a runtime flag cost ~40% too), hence the separate
# one-group and many-group loops.


@jit()
def _put_bits(out_row, xo, ob, L, word, flipw):
    """Store the ``L`` threshold bits ``word`` of block ``ob`` at pixel ``xo``, XORed
    with their flip bits: the block's channels ``ob·L ..`` are bits ``(ob·L) % 64 ..``
    of output word ``(ob·L) // 64``. A block narrower than 64 channels shares its word
    with the next blocks (blocks run in order: the first one in a word assigns it,
    the others OR into it)."""
    lo = ob * L
    wi = lo >> 6
    if L == 64:
        out_row[xo, wi] = np.uint64(word ^ flipw[wi])
        return
    sh = lo & 63
    bits = np.uint64((word ^ (flipw[wi] >> sh)) & ((1 << L) - 1))
    if sh == 0:
        out_row[xo, wi] = bits
    else:
        out_row[xo, wi] |= bits << np.uint64(sh)


@jit()
def _row_threshold(xr, wt, ob, gw, acc, bound, flipw, out_row):
    """Threshold outputs of one row for output block ``ob``: ``out_row[xo, ob]``."""
    kp = wt.shape[1]
    R = wt.shape[2]                 # words per weight row (L, or 2L: nibble planes)
    L = R // weight_planes(R)
    ng = kp // gw
    base = ob * kp * R
    lo = ob * L
    if ng == 1:
        for xo in range(xr.shape[1]):
            # bit j set iff v_j > bound (padded channels: bound = int64 max)
            word = block_thresh(wt, base, acc, False, L, gw, xr, xo, bound, lo)
            _put_bits(out_row, xo, ob, L, word, flipw)
        return
    last = (ng - 1) * gw
    for xo in range(xr.shape[1]):
        xoff = xo
        block_sum(wt, base, acc, False, L, gw, xr, xoff)
        for g in range(1, ng - 1):
            block_sum(wt, base + g * gw * R, acc, True, L, gw, xr, xoff + g * gw * xr.shape[1])
        word = block_thresh(wt, base + last * R, acc, True, L, gw, xr, xoff + last * xr.shape[1], bound, lo)
        _put_bits(out_row, xo, ob, L, word, flipw)


@jit()
def _row_affine(xr, wt, ob, gw, acc, n, scale, bias, out_real, row_off, c_out):
    """Affine outputs of one row for block ``ob`` when the block is full
    (``(ob+1)·L <= C_out``): stored straight from the vector registers."""
    kp = wt.shape[1]
    R = wt.shape[2]                 # words per weight row (L, or 2L: nibble planes)
    L = R // weight_planes(R)
    ng = kp // gw
    base = ob * kp * R
    lo = ob * L
    last = (ng - 1) * gw
    for xo in range(xr.shape[1]):
        off = row_off + xo * c_out + lo
        xoff = xo
        if ng == 1:
            block_affine(wt, base, acc, False, L, gw, xr, xoff, n, scale, bias, lo, out_real, off)
            continue
        block_sum(wt, base, acc, False, L, gw, xr, xoff)
        for g in range(1, ng - 1):
            block_sum(wt, base + g * gw * R, acc, True, L, gw, xr, xoff + g * gw * xr.shape[1])
        block_affine(wt, base + last * R, acc, True, L, gw, xr, xoff + last * xr.shape[1], n, scale, bias,
                     lo, out_real, off)


@jit()
def _row_dot(xr, wt, ob, gw, acc, mode, n, scale, bias, out_int, out_real, b, y, c_out):
    """int (mode 0) or affine (mode 2) outputs of one row for block ``ob``, channel by
    channel (int outputs, and the last, partial block of affine outputs)."""
    kp = wt.shape[1]
    R = wt.shape[2]                 # words per weight row (L, or 2L: nibble planes)
    L = R // weight_planes(R)
    ng = kp // gw
    base = ob * kp * R
    lo = ob * L
    for xo in range(xr.shape[1]):
        xoff = xo
        block_sum(wt, base, acc, False, L, gw, xr, xoff)
        for g in range(1, ng):
            block_sum(wt, base + g * gw * R, acc, True, L, gw, xr, xoff + g * gw * xr.shape[1])
        if mode == 0:
            for j in range(min(L, c_out - lo)):
                out_int[b, y, xo, lo + j] = np.int32(n - 2 * acc[j])
        else:
            for j in range(min(L, c_out - lo)):
                out_real[b, y, xo, lo + j] = np.float32(n - 2 * acc[j]) * scale[lo + j] + bias[lo + j]


@jit()
def _tap_ranges(kw, sw, pl, w, w_out):
    """Per tap column kx: the output pixels xo with 0 <= xo·sw − pl + kx < w, as
    ``[xlo[kx], xhi[kx])``; entry ``kw`` is the intersection over all taps."""
    xlo = np.empty(kw + 1, np.int64)
    xhi = np.empty(kw + 1, np.int64)
    for kx in range(kw):
        xlo[kx] = max(0, -((kx - pl) // sw))
        xhi[kx] = min(w_out, (w - 1 + pl - kx) // sw + 1)
    xlo[kw] = xlo[0]
    xhi[kw] = xhi[kw - 1]
    return xlo, xhi


@jit()
def _gather_row(x, b, y, xr, seg, kh, kw, sh, pt, pl, sw, xlo, xhi, dense_c):
    """Gather the windows of output row ``y`` of image ``b`` into ``xr`` (Kp, W_out),
    ``xlo[kx] <= xo < xhi[kx]`` being the pixels whose tap ``kx`` lies inside the image
    (index ``kw``: all taps), precomputed per call (integer divisions per row and tap
    cost more than the gather itself);
    word-major (word k of pixel xo is ``xr[k, xo]``). Padded pixels are +1: zero words;
    the tail of each window stays zero. Every innermost loop runs over the row's pixels
    on contiguous memory (an innermost loop over 1-4 words made LLVM emit vector
    preambles with alias checks per pixel and tap, which cost more than the
    convolution); a function of its own, because inlined in the big kernel the same
    loops ran ~4x slower."""
    # (column indices are cast to unsigned: they are never negative here, and numba's
    # negative-index wraparound on a signed index stopped these loops vectorising)
    h = x.shape[1]
    w = x.shape[2]
    cw_in = x.shape[3]
    w_out = xr.shape[1]
    x2 = x.reshape(x.shape[0] * h, w * cw_in)
    xr[:] = 0
    for ky in range(kh):
        iy = y * sh - pt + ky
        if iy < 0 or iy >= h:
            continue
        if dense_c and kw * dense_c <= 64:
            # patch packing, one window row at a time: the kw taps of the row
            # form a kw·C_in-bit segment, placed at bit ky·kw·C_in of the window
            # pixels whose whole window row lies inside the image
            i_lo = xlo[kw]
            i_hi = xhi[kw]
            if kw == 3 and i_lo < i_hi:
                # the common 3-tap row in one pass; edge pixels tap by tap
                s1 = np.uint64(dense_c)
                s2 = np.uint64(2 * dense_c)
                if sw == 1:
                    ri = b * h + iy             # cw_in == 1 here: a contiguous row
                    for xo in range(i_lo, i_hi):
                        ix = np.uint64(xo - pl)
                        seg[xo] = (x2[ri, ix] | x2[ri, ix + np.uint64(1)] << s1
                                   | x2[ri, ix + np.uint64(2)] << s2)
                else:
                    for xo in range(i_lo, i_hi):
                        ix = np.uint64(xo * sw - pl)
                        seg[xo] = (x[b, iy, ix, 0] | x[b, iy, ix + np.uint64(1), 0] << s1
                                   | x[b, iy, ix + np.uint64(2), 0] << s2)
                edges = (0, i_lo, i_hi, w_out)
            else:
                edges = (0, w_out, w_out, w_out)
            for e in range(2):
                e_lo = edges[2 * e]
                e_hi = edges[2 * e + 1]
                if e_lo >= e_hi:
                    continue
                for xo in range(e_lo, e_hi):
                    seg[xo] = 0
                for kx in range(kw):
                    x_lo = max(e_lo, xlo[kx])
                    x_hi = min(e_hi, xhi[kx])
                    sft = np.uint64(kx * dense_c)
                    for xo in range(x_lo, x_hi):
                        seg[xo] |= x[b, iy, np.uint64(xo * sw - pl + kx), 0] << sft
            o = ky * kw * dense_c
            wi = o >> 6
            s = np.uint64(o & 63)
            for xo in range(w_out):
                xr[wi, xo] |= seg[xo] << s
            if (o & 63) + kw * dense_c > 64:
                for xo in range(w_out):
                    xr[wi + 1, xo] |= seg[xo] >> (np.uint64(64) - s)
            continue
        for kx in range(kw):
            # pixels whose input column xo·sw − pl + kx lies inside [0, w)
            x_lo = xlo[kx]
            x_hi = xhi[kx]
            if dense_c:
                # patch packing (C_in < 64): tap t's C_in bits go to bit t·C_in
                # of the window, possibly straddling two words
                o = (ky * kw + kx) * dense_c
                wi = o >> 6
                s = np.uint64(o & 63)
                for xo in range(x_lo, x_hi):
                    xr[wi, xo] |= x[b, iy, np.uint64(xo * sw - pl + kx), 0] << s
                if (o & 63) + dense_c > 64:
                    for xo in range(x_lo, x_hi):
                        xr[wi + 1, xo] |= x[b, iy, np.uint64(xo * sw - pl + kx), 0] >> (np.uint64(64) - s)
            elif sw == 1:
                ri = b * h + iy             # a row of words: contiguous for one word
                for cw in range(cw_in):
                    k = (ky * kw + kx) * cw_in + cw
                    d = (kx - pl) * cw_in + cw
                    for xo in range(x_lo, x_hi):
                        xr[k, xo] = x2[ri, np.uint64(xo * cw_in + d)]
            else:
                for cw in range(cw_in):
                    k = (ky * kw + kx) * cw_in + cw
                    for xo in range(x_lo, x_hi):
                        xr[k, xo] = x[b, iy, np.uint64(xo * sw - pl + kx), cw]


def _bconv_impl(x, wt, ip, fp, out_bits, out_int, out_real):
    """Binary conv of one batch; see the module docstring for the layout.

    x (N,H,W,Cw) u64; wt (nblk, Kp, L) u64: blocks of L output channels of the
    re-tiled weights (L = 16, 32 or 64), Kp window words rounded up to the group size,
    zero rows and columns past the real ones; ip = header + bound(nblk·L) +
    flipw(ceil(C_out/64)) (int64); fp = scale(nblk·L) + bias(nblk·L) (float32,
    zero-padded); exactly one of the three outputs is used (by mode).
    """
    nb, h, w, cw_in = x.shape
    nblk, kp, R = wt.shape
    L = R // weight_planes(R)      # output channels per block
    c_out = ip[_CO]
    kh = ip[_KH]
    kw = ip[_KW]
    sh = ip[_SH]
    sw = ip[_SW]
    pt = ip[_PT]
    pl = ip[_PL]
    h_out = ip[_HO]
    w_out = ip[_WO]
    mode = ip[_MODE]
    n = ip[_N]
    gw = ip[_GW]
    dense_c = ip[_DENSE]
    bound = ip[_NHDR:_NHDR + nblk * L]
    flipw = ip[_NHDR + nblk * L:]
    scale = fp[:nblk * L]
    bias = fp[nblk * L:]
    # one chunk of consecutive output rows per thread, with its own buffers (allocated
    # once per chunk, not per row: an allocation per row cost more than a 16-channel
    # row of convolution); a row is computed the same way in any chunk
    rows = nb * h_out
    nchunks = max(1, min(ip[_NCH], rows))
    xlo, xhi = _tap_ranges(kw, sw, pl, w, w_out)
    for t in range(ip[_T0], min(ip[_T1], nchunks)):
        xr = np.zeros((kp, w_out), dtype=np.uint64)     # word k of pixel xo: xr[k, xo]
        seg = np.zeros(w_out, dtype=np.uint64)
        acc = np.zeros(64, dtype=np.int64)
        for r in range(t * rows // nchunks, (t + 1) * rows // nchunks):
            b = r // h_out
            y = r - b * h_out
            _gather_row(x, b, y, xr, seg, kh, kw, sh, pt, pl, sw, xlo, xhi, dense_c)
            # one block of weights at a time (Kp·L words: L1-resident)
            for ob in range(nblk):
                if mode == 1:
                    _row_threshold(xr, wt, ob, gw, acc, bound, flipw, out_bits[b, y])
                elif mode == 2 and (ob + 1) * L <= c_out:
                    _row_affine(xr, wt, ob, gw, acc, n, scale, bias, out_real, r * w_out * c_out, c_out)
                else:
                    _row_dot(xr, wt, ob, gw, acc, mode, n, scale, bias, out_int, out_real, b, y, c_out)


_bconv_kernel = jit()(_bconv_impl)
