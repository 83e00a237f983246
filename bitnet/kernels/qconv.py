"""First layer: k-bit unsigned input levels × binary weights, exact integer arithmetic.

DESIGN §2 defines the first-layer dot through bitplanes,
``dot = Σ_b 2^b · (popcount(x_b) − 2·popcount(x_b AND w_neg))`` (the NumPy reference,
:func:`bitnet.kernels.reference.qconv_reference`, computes exactly that). Since
``Σ_b 2^b·x_b = q``, it equals ``Σ q·w`` with ``w = ±1``, which is what this kernel
computes: the levels are small integers and every partial sum stays below ``2**24``
(checked at preparation), so float32 products of ``q`` with ``±1.0`` and their sums are
exact integers whatever the order or fusion (the block intrinsics use ``llvm.fma`` in
three chains), and the result is the same integer. This is the "re-tile at load time"
freedom of DESIGN §2: the weights are stored as ±1.0 in blocks of ``L`` output
channels (``(nblk, Kp, L)``, as in bconv) so one tap is broadcast against 16 output
channels per zmm register. ``same`` padding pads with level 0, which adds nothing.

The windows of a row are gathered as float32, tap-major (``(Kp, W_out)``). The usual
first layer (3×3, stride 1, one input channel, threshold output) skips the gather: the
block intrinsic reads its nine taps straight from three zero-padded rows of levels.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import jit
from ..errors import ParameterError
from ..packing import n_words, unpack_signs
from ._common import (ROWS3X3, block_width, fblock_affine, fblock_sum, fblock_thresh,
                      group_words, serial_and_parallel)
from .bconv import MODES, _tap_ranges, _EMPTY_F32, _EMPTY_I32, _EMPTY_U64, _check_output_tensors
from .geometry import conv_geometry

__all__ = ["QConv", "qconv"]

_KH, _KW, _SH, _SW, _PT, _PL, _HO, _WO, _MODE, _CO, _GW, _NCH = range(12)
_NHDR = 12


@jit()
def _row_threshold(qr, wf, ob, gw, acc, fbound, flip, out_row):
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
            out_row[xo, ob] = np.uint64(word ^ flip)
        return
    last = (ng - 1) * gw
    for xo in range(qr.shape[1]):
        qoff = xo
        fblock_sum(wf, base, acc, False, L, gw, qr, qoff)
        for g in range(1, ng - 1):
            fblock_sum(wf, base + g * gw * L, acc, True, L, gw, qr, qoff + g * gw * qr.shape[1])
        word = fblock_thresh(wf, base + last * L, acc, True, L, gw, qr, qoff + last * qr.shape[1], fbound, lo)
        out_row[xo, ob] = np.uint64(word ^ flip)


@jit()
def _row_threshold_rows(fr, wf, ob, acc, fbound, flip, out_row, w_out):
    """Threshold outputs of one row of a stride-1 3×3 single-channel first layer, taps
    read straight from three padded rows of levels ``fr`` (no per-tap gather)."""
    kp = wf.shape[1]
    L = wf.shape[2]
    base = ob * kp * L
    lo = ob * L
    for xo in range(w_out):
        word = fblock_thresh(wf, base, acc, False, L, ROWS3X3, fr, xo, fbound, lo)
        out_row[xo, ob] = np.uint64(word ^ flip)


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
    for t in prange(nchunks):
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
                    _row_threshold_rows(fr, wf, ob, acc, fbound, flipw[ob], out_bits[b, y], w_out)
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
                    _row_threshold(qr, wf, ob, gw, acc, fbound, flipw[ob], out_bits[b, y])
                elif mode == 2 and (ob + 1) * L <= c_out:
                    _row_affine(qr, wf, ob, gw, acc, scale, bias, out_real, r * w_out * c_out, c_out)
                else:
                    _row_dot(qr, wf, ob, gw, acc, mode, scale, bias, out_int, out_real, b, y, c_out)



_qconv_kernel, _qconv_kernel_parallel = serial_and_parallel(_qconv_impl)


class QConv:
    """A prepared first layer: uint8 levels ``(N, H, W, C_in)`` → int / bits / real.

    Parameters
    ----------
    weight : uint64 ``(C_out, kh, kw, ceil(C_in/64))``, packed binary weights.
    in_channels : int
    bits : int
        k, the number of bits of the input levels (1..8).
    stride, padding, output, thresh, thresh_sign, scale, bias
        As :class:`bitnet.kernels.bconv.BConv`; ``same`` pads with level 0.
    """

    def __init__(self, weight, in_channels, bits, stride=(1, 1), padding="same", output="int",
                 thresh=None, thresh_sign=None, scale=None, bias=None, name="qconv"):
        weight = np.asarray(weight)
        if weight.dtype != np.uint64 or weight.ndim != 4:
            raise ParameterError(f"{name}: weight must be uint64 (C_out, kh, kw, Cw), got {weight.dtype} {weight.shape}")
        c_out, kh, kw, cw = weight.shape
        if in_channels < 1 or cw != n_words(in_channels):
            raise ParameterError(f"{name}: weight has {cw} words per pixel but in_channels={in_channels} needs {n_words(max(in_channels, 1))}")
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 8:
            raise ParameterError(f"{name}: bits must be an integer in 1..8, got {bits!r}")
        if ((1 << bits) - 1) * kh * kw * in_channels >= 1 << 24:
            raise ParameterError(f"{name}: window of {kh}x{kw}x{in_channels} {bits}-bit levels is too large for exact accumulation")
        if padding not in ("same", "valid"):
            raise ParameterError(f"{name}: padding must be 'same' or 'valid', got {padding!r}")
        stride = tuple(int(s) for s in stride)
        if len(stride) != 2 or min(stride) < 1:
            raise ParameterError(f"{name}: stride must be two positive integers, got {stride}")
        _check_output_tensors(name, c_out, output, thresh, thresh_sign, scale, bias)
        self.name = name
        self.in_channels = int(in_channels)
        self.out_channels = c_out
        self.bits = int(bits)
        self.kernel = (kh, kw)
        self.stride = stride
        self.padding = padding
        self.output = output
        wv = unpack_signs(weight, in_channels).astype(np.float32)      # (C_out, kh, kw, C_in)
        k = kh * kw * in_channels
        gw, kp = group_words(k)
        L = block_width(c_out)
        nblk = -(-c_out // L)
        cp = nblk * L
        wf = np.zeros((kp, cp), np.float32)              # zero rows/columns add nothing
        wf[:k, :c_out] = wv.reshape(c_out, k).T
        self.wf = np.ascontiguousarray(wf.reshape(kp, nblk, L).transpose(1, 0, 2))
        hdr = np.zeros(_NHDR, np.int64)
        hdr[_KH], hdr[_KW], hdr[_SH], hdr[_SW] = kh, kw, stride[0], stride[1]
        if (kh, kw) == (3, 3) and stride == (1, 1) and in_channels == 1 and output == "threshold":
            gw = ROWS3X3           # taps read from three padded rows, no gather
        hdr[_MODE], hdr[_CO], hdr[_GW] = MODES[output], c_out, gw
        # threshold: the output bit is set (−1) iff thresh_sign·dot < thresh, i.e.
        # dot < t (sign +1) or dot > −t (sign −1). With flip words as in bconv:
        # bit = (dot < fb) XOR flip, fb = t (sign +1) or 1 − t (sign −1), because
        # dot > −t ⟺ not(dot < 1 − t) for integers. |dot| < 2**24, so rounding fb to
        # float32 never changes a comparison (a bound that rounds is beyond any dot).
        fbound = np.full(cp, np.float32(-(2.0**31)), np.float32)   # padded: never set
        flipw = np.zeros(n_words(c_out), np.uint64)
        if output == "threshold":
            t = np.asarray(thresh, np.int64)
            sgn = np.asarray(thresh_sign, np.int64)
            fbound[:c_out] = np.where(sgn > 0, t, 1 - t).astype(np.float32)
            for c in np.nonzero(sgn < 0)[0]:
                flipw[c // 64] |= np.uint64(1) << np.uint64(c % 64)
        self._hdr = hdr
        self._tail = flipw.view(np.int64)
        sc = np.zeros(cp, np.float32)
        bi = np.zeros(cp, np.float32)
        if output == "affine":
            sc[:c_out] = scale
            bi[:c_out] = bias
        self.fp = np.concatenate([fbound, sc, bi]).astype(np.float32)
        self._ip_cache = {}

    def out_hw(self, h, w):
        try:
            ho, wo, _, _ = conv_geometry(h, w, self.kernel, self.stride, self.padding)
        except ValueError as e:
            raise ParameterError(f"{self.name}: {e}") from None
        return ho, wo

    def params(self, h, w, nb=1, parallel=False):
        """The kernel's int64 parameter vector for ``nb`` inputs of ``h × w`` (cached).

        The serial kernel takes the rows as one chunk (buffers allocated once); the
        parallel one as one chunk per output row (numba hoists the buffers of a
        ``prange`` body to one allocation per thread).
        """
        key = (h, w, nb if parallel else 0)
        ip = self._ip_cache.get(key)
        if ip is None:
            ho, wo, pt, pl = conv_geometry(h, w, self.kernel, self.stride, self.padding)
            hdr = self._hdr.copy()
            hdr[_PT], hdr[_PL], hdr[_HO], hdr[_WO] = pt, pl, ho, wo
            hdr[_NCH] = nb * ho if parallel else 1
            ip = np.concatenate([hdr, self._tail])
            self._ip_cache[key] = ip
        return ip

    def new_output(self, nb, ho, wo):
        if self.output == "threshold":
            return np.empty((nb, ho, wo, n_words(self.out_channels)), np.uint64)
        if self.output == "int":
            return np.empty((nb, ho, wo, self.out_channels), np.int32)
        return np.empty((nb, ho, wo, self.out_channels), np.float32)

    def run(self, lv, ip, out, parallel=False):
        """Run the kernel with no checks (C-contiguous input; ``ip`` from
        :meth:`params` with the same ``parallel``)."""
        m = self.output
        kern = _qconv_kernel_parallel if parallel else _qconv_kernel
        kern(lv, self.wf, ip, self.fp,
             out if m == "threshold" else _EMPTY_U64,
             out if m == "int" else _EMPTY_I32,
             out if m == "affine" else _EMPTY_F32)
        return out

    def __call__(self, levels):
        """Apply to uint8 levels ``(N, H, W, C_in)`` (values must be below ``2**bits``)."""
        from .._jit import ensure_threads

        lv = np.asarray(levels)
        if lv.dtype != np.uint8 or lv.ndim != 4 or lv.shape[3] != self.in_channels:
            raise ParameterError(f"{self.name}: input must be uint8 (N, H, W, {self.in_channels}), got {lv.dtype} {lv.shape}")
        if lv.size and lv.max() >= (1 << self.bits):
            raise ParameterError(f"{self.name}: levels exceed {self.bits} bits")
        lv = np.ascontiguousarray(lv)
        nb, h, w, _ = lv.shape
        ho, wo = self.out_hw(h, w)
        par = ensure_threads() > 1
        return self.run(lv, self.params(h, w, nb, par), self.new_output(nb, ho, wo), par)


def qconv(levels, weight, in_channels, bits, stride=(1, 1), padding="same", output="int",
          thresh=None, thresh_sign=None, scale=None, bias=None):
    """First-layer convolution of uint8 levels with packed binary weights (see :class:`QConv`)."""
    return QConv(weight, in_channels, bits, stride, padding, output, thresh, thresh_sign,
                 scale, bias)(levels)
