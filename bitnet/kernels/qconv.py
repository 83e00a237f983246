"""First layer: k-bit unsigned input levels × binary weights, exact integer arithmetic.

docs/design.md §2 defines the first-layer dot through bitplanes,
``dot = Σ_b 2^b · (popcount(x_b) − 2·popcount(x_b AND w_neg))`` (the NumPy reference,
:func:`bitnet.kernels.reference.qconv_reference`, computes exactly that). Since
``Σ_b 2^b·x_b = q``, it equals ``Σ q·w`` with ``w = ±1``, which is what this kernel
computes: the levels are small integers and every partial sum stays below ``2**24``
(checked at preparation), so float32 products of ``q`` with ``±1.0`` and their sums are
exact integers whatever the order or fusion (the block intrinsics use ``llvm.fma`` in
three chains), and the result is the same integer. This is the "re-tile at load time"
freedom of docs/design.md §2: the weights are stored as ±1.0 in blocks of ``L`` output
channels (``(nblk, Kp, L)``, as in bconv) so one tap is broadcast against 16 output
channels per zmm register. ``same`` padding pads with level 0, which adds nothing.

The windows of a row are gathered as float32, tap-major (``(Kp, W_out)``). The usual
first layer (3×3, stride 1, one input channel, threshold output, or affine output
with whole blocks of output channels) skips the gather: the
block intrinsic reads its nine taps straight from three zero-padded rows of levels.
"""

from __future__ import annotations

import numpy as np

from ..compile.options import jit
from ._common import ROWS3X3, fblock_affine, fblock_sum, fblock_thresh
from .bconv import _put_bits, _tap_ranges
# the layer preparation (pure Python, no numba) lives in qconv_layer; re-exported here
from .qconv_layer import (_CO, _GW, _HO, _KH, _KW, _MODE, _NCH, _NHDR, _T0, _T1, _PL, _PT,  # noqa: F401
                          _SH, _SW, _WO, QConv, qconv)

__all__ = ["QConv", "qconv"]

@jit()
def _row_threshold(qr, wf, ob, gw, acc, fbound, flipw, out_row):
    """Threshold outputs of one row for output block ``ob`` (see bconv for why the
    accumulate flags are constants and the helpers small)."""
    kp = wf.shape[1]
    L = wf.shape[2]
    ng = kp // gw
    base = ob * kp * L
    lo = ob * L
    if ng == 1:
        for xo in range(qr.shape[1]):
            word = fblock_thresh(wf, base, acc, False, L, gw, qr, xo, fbound, lo)
            _put_bits(out_row, xo, ob, L, word, flipw)
        return
    last = (ng - 1) * gw
    for xo in range(qr.shape[1]):
        qoff = xo
        fblock_sum(wf, base, acc, False, L, gw, qr, qoff)
        for g in range(1, ng - 1):
            fblock_sum(wf, base + g * gw * L, acc, True, L, gw, qr, qoff + g * gw * qr.shape[1])
        word = fblock_thresh(wf, base + last * L, acc, True, L, gw, qr, qoff + last * qr.shape[1], fbound, lo)
        _put_bits(out_row, xo, ob, L, word, flipw)


@jit()
def _row_threshold_rows(fr, wf, ob, acc, fbound, flipw, out_row, w_out):
    """Threshold outputs of one row of a stride-1 3×3 single-channel first layer, taps
    read straight from three padded rows of levels ``fr`` (no per-tap gather)."""
    kp = wf.shape[1]
    L = wf.shape[2]
    base = ob * kp * L
    lo = ob * L
    for xo in range(w_out):
        word = fblock_thresh(wf, base, acc, False, L, ROWS3X3, fr, xo, fbound, lo)
        _put_bits(out_row, xo, ob, L, word, flipw)


@jit()
def _row_affine_rows(fr, wf, ob, acc, scale, bias, out_real, row_off, c_out, w_out):
    """Affine outputs of one row of a stride-1 3×3 single-channel first layer (full
    blocks only), taps read straight from three padded rows of levels ``fr``."""
    kp = wf.shape[1]
    L = wf.shape[2]
    base = ob * kp * L
    lo = ob * L
    for xo in range(w_out):
        fblock_affine(wf, base, acc, False, L, ROWS3X3, fr, xo, scale, bias, lo, out_real,
                      row_off + xo * c_out + lo)


@jit()
def _row_affine(qr, wf, ob, gw, acc, scale, bias, out_real, row_off, c_out):
    """Affine outputs of one row for a full block ``ob`` (stored from registers)."""
    kp = wf.shape[1]
    L = wf.shape[2]
    ng = kp // gw
    base = ob * kp * L
    lo = ob * L
    last = (ng - 1) * gw
    for xo in range(qr.shape[1]):
        off = row_off + xo * c_out + lo
        qoff = xo
        if ng == 1:
            fblock_affine(wf, base, acc, False, L, gw, qr, qoff, scale, bias, lo, out_real, off)
            continue
        fblock_sum(wf, base, acc, False, L, gw, qr, qoff)
        for g in range(1, ng - 1):
            fblock_sum(wf, base + g * gw * L, acc, True, L, gw, qr, qoff + g * gw * qr.shape[1])
        fblock_affine(wf, base + last * L, acc, True, L, gw, qr, qoff + last * qr.shape[1], scale, bias, lo,
                      out_real, off)


@jit()
def _row_dot(qr, wf, ob, gw, acc, mode, scale, bias, out_int, out_real, b, y, c_out):
    """int outputs (mode 0), and affine outputs of a partial last block, channel by channel."""
    kp = wf.shape[1]
    L = wf.shape[2]
    ng = kp // gw
    base = ob * kp * L
    lo = ob * L
    for xo in range(qr.shape[1]):
        qoff = xo
        fblock_sum(wf, base, acc, False, L, gw, qr, qoff)
        for g in range(1, ng):
            fblock_sum(wf, base + g * gw * L, acc, True, L, gw, qr, qoff + g * gw * qr.shape[1])
        if mode == 0:
            for j in range(min(L, c_out - lo)):
                out_int[b, y, xo, lo + j] = np.int32(acc[j])
        else:
            for j in range(min(L, c_out - lo)):
                out_real[b, y, xo, lo + j] = acc[j] * scale[lo + j] + bias[lo + j]


def _qconv_impl(lv, wf, ip, fp, out_bits, out_int, out_real):
    """lv (N,H,W,C_in) u8; wf (nblk, Kp, L) f32 ±1 (zero rows/columns past the real
    ones, Kp = kh·kw·C_in rounded up to G); ip = header + flipw(ceil(C_out/64))
    (int64); fp = fbound(nblk·L) + scale(nblk·L) + bias(nblk·L) (float32)."""
    nb, h, w, c_in = lv.shape
    nblk, kp, L = wf.shape
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
    flipw = ip[_NHDR:]
    cp = nblk * L
    fbound = fp[:cp]
    scale = fp[cp:2 * cp]
    bias = fp[2 * cp:]
    gw = ip[_GW]
    # one chunk of consecutive output rows per thread, with its own buffers (allocated
    # once per chunk, not per row: an allocation per row cost more than a 16-channel
    # row of convolution); a row is computed the same way in any chunk
    rows = nb * h_out
    nchunks = max(1, min(ip[_NCH], rows))
    xlo, xhi = _tap_ranges(kw, sw, pl, w, w_out)
    lv2 = lv.reshape(nb * h, w * c_in)
    for t in range(ip[_T0], min(ip[_T1], nchunks)):
        qr = np.zeros((kp, w_out), dtype=np.float32)     # tap k of pixel xo: qr[k, xo]
        acc = np.zeros(64, dtype=np.float32)
        fr = np.zeros((kh, w_out + kw - 1), dtype=np.float32)
        for r in range(t * rows // nchunks, (t + 1) * rows // nchunks):
            b = r // h_out
            y = r - b * h_out
            if gw == ROWS3X3:
                # three rows of levels as float32, padded columns (and rows) at level 0
                fr[:] = 0
                for ky in range(3):
                    iy = y - pt + ky
                    if iy >= 0 and iy < h:
                        ri = b * h + iy
                        for j in range(w):
                            fr[ky, np.uint64(j + pl)] = np.float32(lv2[ri, np.uint64(j)])
                for ob in range(nblk):
                    if mode == 1:
                        _row_threshold_rows(fr, wf, ob, acc, fbound, flipw, out_bits[b, y], w_out)
                    else:       # affine, full blocks (see QConv)
                        _row_affine_rows(fr, wf, ob, acc, scale, bias, out_real, r * w_out * c_out, c_out,
                                         w_out)
                continue
            qr[:] = 0
            # levels of every window of the output row, as float32 (padding: level 0)
            # (innermost loop over the row's pixels: see the gather in bconv)
            for ky in range(kh):
                iy = y * sh - pt + ky
                if iy < 0 or iy >= h:
                    continue
                for kx in range(kw):
                    x_lo = xlo[kx]
                    x_hi = xhi[kx]
                    if c_in == 1 and sw == 1:
                        # contiguous row, unsigned index (no wraparound check): the
                        # conversion loop vectorises (the general one below does not)
                        # (2-D indexing, no row views: a view costs two atomic
                        # reference-count updates, more than this loop)
                        ri = b * h + iy
                        k = ky * kw + kx
                        d = kx - pl
                        for xo in range(x_lo, x_hi):
                            qr[k, xo] = np.float32(lv2[ri, np.uint64(xo + d)])
                        continue
                    for ci in range(c_in):
                        k = (ky * kw + kx) * c_in + ci
                        for xo in range(x_lo, x_hi):
                            qr[k, xo] = np.float32(lv[b, iy, np.uint64(xo * sw - pl + kx), ci])
            for ob in range(nblk):
                if mode == 1:
                    _row_threshold(qr, wf, ob, gw, acc, fbound, flipw, out_bits[b, y])
                elif mode == 2 and (ob + 1) * L <= c_out:
                    _row_affine(qr, wf, ob, gw, acc, scale, bias, out_real, r * w_out * c_out, c_out)
                else:
                    _row_dot(qr, wf, ob, gw, acc, mode, scale, bias, out_int, out_real, b, y, c_out)



_qconv_kernel = jit()(_qconv_impl)
