"""Fused layer chains: kernels that run several graph layers in one pass.

The executor (:mod:`bitnet.graph`) replaces a chain of layers by one of these kernels
when nothing else reads the intermediate values; the results are identical to the
unfused chain because every fused kernel performs the same operations, in the same
order, on the same types (docs/design.md §2; bit-for-bit, floats included).

* :func:`bconv_pool_sign` — ``bconv`` (affine output) → ``avgpool`` → [``flatten``] →
  ``sign``: packed bits in, packed bits out, without materialising the convolution's
  float map. Per conv output row: the affine values of the row
  (``float32(dot)·scale + bias``, float32 multiply then add, the block intrinsics of
  :mod:`.bconv`), then added into the pool accumulators of every window that holds
  the row, in the reference's order (window row ``ky`` outer — conv rows arrive in
  order — then ``kx``; the first term is assigned, not added to 0), then divided by
  ``float32(kh·kw)`` and signed (``x + shift < 0``) like :func:`.sign._sign_kernel`.
  Conv rows and columns that no pool window reads are never computed. Reference:
  :func:`bitnet.kernels.reference.bconv_pool_sign_reference` (the unfused references,
  composed).
* :func:`quantize_qconv` — ``quantize`` → ``qconv`` (3×3, stride 1, one input channel,
  threshold output): the levels go straight into the float32 plane the first-layer
  kernel reads its taps from (the same ``floor((x − offset)·scale + 0.5)``, clipped,
  in float32, as :func:`.sign._quantize_kernel`; a level converts to float32
  exactly), so the uint8 levels are never stored. Reference:
  :func:`bitnet.kernels.reference.quantize_qconv_reference`.
"""

from __future__ import annotations

import numpy as np

from ..compile.options import jit
from .bconv import _CO, _GW, _DENSE, _KH, _KW, _N, _NHDR, _PL, _PT, _SH, _SW, _HO
from .bconv import _gather_row, _put_bits, _row_affine, _row_dot, _tap_ranges
from ._common import ROWS3X3, block_affine, block_sum, fblock_thresh, weight_planes
from .qconv import _HO as _QHO, _NHDR as _QNHDR, _PL as _QPL, _PT as _QPT, _WO as _QWO
from .sign import _sign_kernel

__all__ = ["bconv_pool_sign", "quantize_qconv", "POOL_PARAMS"]

# layout of the int64 pool parameter vector ``pp``, pool_params and segment_weights:
# pure Python, in fused_layer (the graph prepares fused chains without importing numba)
from .fused_layer import (_NO_SHIFT, _PFLAT, _PHO, _PKH, _PKW, _PSEG, _PSH, _PSW, _PWO,  # noqa: F401
                          POOL_PARAMS, pool_params, quantize_qconv_applies, segment_weights)


@jit()
def _segments(x, b, seg, kh, kw, sh, sw, pt, pl, hcov, xlo, xhi, c_in):
    """Row segments of image ``b``: ``seg[r, xo]`` holds the ``kw`` taps of window row
    ``r`` (input row ``r − pt``) of output column ``xo``, tap ``kx`` at bit ``kx·C_in``
    (zero words for padded rows and pixels): a window of output pixel ``(y, xo)`` is
    the words ``seg[y·sh + ky, xo]``, ``ky < kh``, so no per-row gather is needed."""
    h = x.shape[1]
    wc = seg.shape[1]
    rows = (hcov - 1) * sh + kh
    for r in range(rows):
        for xo in range(wc):
            seg[r, xo] = 0
        iy = r - pt
        if iy < 0 or iy >= h:
            continue
        for kx in range(kw):
            sft = np.uint64(kx * c_in)
            for xo in range(xlo[kx], xhi[kx]):
                seg[r, xo] |= x[b, iy, np.uint64(xo * sw - pl + kx), 0] << sft


@jit()
def _row_affine_seg(seg, soff, wt, ob, gw, acc, n, scale, bias, row, c_out):
    """Affine outputs of one conv row from row segments (one group of ``gw = kh`` words
    per window, word ``ky`` of pixel ``xo`` at flat offset ``soff + xo + ky·W`` of
    ``seg``) into ``row`` (W, C)."""
    kp = wt.shape[1]
    R = wt.shape[2]                 # words per weight row (L, or 2L: nibble planes)
    L = R // weight_planes(R)
    base = ob * kp * R
    lo = ob * L
    if (ob + 1) * L <= c_out:
        for xo in range(row.shape[0]):
            block_affine(wt, base, acc, False, L, gw, seg, soff + xo, n, scale, bias, lo, row,
                         xo * c_out + lo)
        return
    for xo in range(row.shape[0]):
        block_sum(wt, base, acc, False, L, gw, seg, soff + xo)
        for j in range(min(L, c_out - lo)):
            row[xo, lo + j] = np.float32(n - 2 * acc[j]) * scale[lo + j] + bias[lo + j]


@jit()
def _bconv_pool_sign_kernel(x, wt, ip, fp, pp, shift, has_shift, out):
    """x (N,H,W,Cw) u64; wt, ip, fp of an affine :class:`.bconv.BConv`; pp pool
    parameters (kh, kw, sh, sw, ho, wo, flat); shift float32 (sign channels) or a
    dummy; out u64 ``(N, ho, wo, ceil(C/64))`` (flat = 0) or ``(N, ceil(ho·wo·C/64))``
    (flat = 1), C-contiguous."""
    nb = x.shape[0]
    h = x.shape[1]
    w = x.shape[2]
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
    n = ip[_N]
    gw = ip[_GW]
    dense_c = ip[_DENSE]
    cp = nblk * L
    scale = fp[:cp]
    bias = fp[cp:]
    pkh = pp[_PKH]
    pkw = pp[_PKW]
    psh = pp[_PSH]
    psw = pp[_PSW]
    pho = pp[_PHO]
    pwo = pp[_PWO]
    flat = pp[_PFLAT]
    segmode = pp[_PSEG]
    # conv rows / columns read by some pool window
    hcov = min(h_out, (pho - 1) * psh + pkh)
    wcov = (pwo - 1) * psw + pkw
    xlo, xhi = _tap_ranges(kw, sw, pl, w, wcov)
    if segmode:
        xr = np.zeros(((hcov - 1) * sh + kh, wcov), dtype=np.uint64)
    else:
        xr = np.zeros((kp, wcov), dtype=np.uint64)
    seg = np.zeros(wcov, dtype=np.uint64)
    acc = np.zeros(64, dtype=np.int64)
    row = np.empty((1, 1, wcov, c_out), dtype=np.float32)
    row2 = row.reshape(wcov, c_out)
    no_int = np.empty((0, 0, 0, 0), dtype=np.int32)
    pacc = np.empty((pho, pwo, c_out), dtype=np.float32)
    inv = np.float32(pkh * pkw)
    if flat:
        prow = pacc.reshape(1, pho * pwo * c_out)
    else:
        prow = pacc.reshape(pho * pwo, c_out)
    per = prow.shape[0]
    out2 = out.reshape(nb * per, out.shape[out.ndim - 1])
    for b in range(nb):
        if segmode:
            _segments(x, b, xr, kh, kw, sh, sw, pt, pl, hcov, xlo, xhi, dense_c)
        for y in range(hcov):
            # pool rows whose window holds conv row y: py·psh <= y < py·psh + pkh
            py_hi = min(pho, y // psh + 1)
            py_lo = max(0, -((pkh - 1 - y) // psh))
            if py_lo >= py_hi:
                continue
            if not segmode:
                _gather_row(x, b, y, xr, seg, kh, kw, sh, pt, pl, sw, xlo, xhi, dense_c)
            for ob in range(nblk):
                if segmode:
                    _row_affine_seg(xr, y * sh * wcov, wt, ob, kh, acc, n, scale, bias, row2, c_out)
                elif (ob + 1) * L <= c_out:
                    _row_affine(xr, wt, ob, gw, acc, n, scale, bias, row, 0, c_out)
                else:
                    _row_dot(xr, wt, ob, gw, acc, 2, n, scale, bias, no_int, row, 0, 0, c_out)
            for py in range(py_lo, py_hi):
                ky = y - py * psh
                for px in range(pwo):
                    for kx in range(pkw):
                        xc = px * psw + kx
                        if ky == 0 and kx == 0:
                            for c in range(c_out):
                                pacc[py, px, c] = row2[xc, c]
                        else:
                            for c in range(c_out):
                                pacc[py, px, c] += row2[xc, c]
        for py in range(pho):
            for px in range(pwo):
                for c in range(c_out):
                    pacc[py, px, c] = pacc[py, px, c] / inv
        _sign_kernel(prow, shift, has_shift, out2[b * per:(b + 1) * per])



def bconv_pool_sign(x, conv, weight, pool_kernel, pool_stride=None, flatten=False, shift=None):
    """``sign(avgpool(conv(x)))`` (with ``flatten`` between pool and sign if asked) in one
    pass; ``conv`` an affine :class:`.bconv.BConv`. Returns packed bits
    ``(N, ho, wo, ceil(C/64))`` or, flattened, ``(N, ceil(ho·wo·C/64))``."""
    from ..errors import ParameterError
    from ..packing import n_words
    from .geometry import pool_geometry

    if conv.output != "affine":
        raise ParameterError(f"bconv_pool_sign: the conv must have affine output, got {conv.output!r}")
    x = np.ascontiguousarray(x)
    nb, h, w, _ = x.shape
    ho, wo = conv.out_hw(h, w)
    pk = tuple(int(k) for k in pool_kernel)
    ps = pk if pool_stride is None else tuple(int(s) for s in pool_stride)
    try:
        pho, pwo = pool_geometry(ho, wo, pk, ps)
    except ValueError as e:
        raise ParameterError(f"bconv_pool_sign: {e}") from None
    wseg = segment_weights(conv, weight)
    pp = pool_params(pk, ps, pho, pwo, flatten, wseg is not None)
    c = conv.out_channels
    ch = pho * pwo * c if flatten else c
    if shift is not None:
        shift = np.ascontiguousarray(shift, np.float32)
        if shift.shape != (ch,):
            raise ParameterError(f"bconv_pool_sign: shift must have shape ({ch},), got {shift.shape}")
    oshape = (nb, n_words(ch)) if flatten else (nb, pho, pwo, n_words(ch))
    out = np.empty(oshape, np.uint64)
    _bconv_pool_sign_kernel(x, conv.wt if wseg is None else wseg, conv.params(h, w), conv.fp, pp,
                            _NO_SHIFT if shift is None else shift, shift is not None, out)
    return out


@jit()
def _quantize_qconv_kernel(x, offset, scale, top, wf, ip, fp, out):
    """x float32 (N, H, W, 1); offset, scale, top float32 (the quantizer); wf, ip, fp
    of a :class:`.qconv.QConv` with 3×3 stride-1 single-channel threshold output (its
    ``ROWS3X3`` layout); out u64 (N, H_out, W_out, ceil(C_out/64))."""
    nb, h, w, _ = x.shape
    nblk, kp, L = wf.shape
    pt = ip[_QPT]
    pl = ip[_QPL]
    h_out = ip[_QHO]
    w_out = ip[_QWO]
    flipw = ip[_QNHDR:]
    fbound = fp[:nblk * L]
    acc = np.zeros(64, dtype=np.float32)
    ncols = w_out + 2
    plane = np.zeros((h_out + 2, ncols), dtype=np.float32)   # level 0 in the padding
    half = np.float32(0.5)
    for b in range(nb):
        for r in range(h_out + 2):
            iy = r - pt
            if iy < 0 or iy >= h:
                continue
            for j in range(w):
                q = np.floor((x[b, iy, j, 0] - offset) * scale + half)
                if not q >= 0:          # also NaN
                    q = np.float32(0)
                if q > top:
                    q = top
                plane[r, np.uint64(j + pl)] = q
        for y in range(h_out):
            for ob in range(nblk):
                _row_thresh_plane(plane, y * ncols, wf, ob, acc, fbound, flipw, out[b, y], w_out)


@jit()
def _row_thresh_plane(plane, poff, wf, ob, acc, fbound, flipw, out_row, w_out):
    """Threshold outputs of one row, taps read from rows ``y .. y+2`` of the padded
    float32 plane of levels (flat offset ``poff`` of row ``y``)."""
    kp = wf.shape[1]
    L = wf.shape[2]
    base = ob * kp * L
    lo = ob * L
    for xo in range(w_out):
        word = fblock_thresh(wf, base, acc, False, L, ROWS3X3, plane, poff + xo, fbound, lo)
        _put_bits(out_row, xo, ob, L, word, flipw)


def quantize_qconv(x, bits, offset, scale, conv):
    """``conv(quantize(x))`` in one pass, ``x`` float32 ``(N, H, W, 1)``, ``conv`` a
    :class:`.qconv.QConv` for which :func:`quantize_qconv_applies`."""
    from ..errors import ParameterError
    from ..packing import n_words

    if not quantize_qconv_applies(conv) or conv.bits != bits:
        raise ParameterError("quantize_qconv: needs a 3x3 stride-1 single-channel threshold qconv of the same bits")
    x = np.ascontiguousarray(x, np.float32)
    nb, h, w, _ = x.shape
    ho, wo = conv.out_hw(h, w)
    out = np.empty((nb, ho, wo, n_words(conv.out_channels)), np.uint64)
    _quantize_qconv_kernel(x, np.float32(offset), np.float32(scale), np.float32((1 << bits) - 1),
                           conv.wf, conv.params(h, w), conv.fp, out)
    return out
