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
  densely, tap-major (*patch packing*, DESIGN §2's "re-tile at load time"): a 3×3
  window of 16 channels is 3 words instead of 9. The kernel gathers the windows of a
  whole output row into a ``(Kp, W_out)`` buffer (word-major); ``Kp`` is the window's word count
  rounded up to a multiple of the group size ``G`` (3 for windows of up to 6 words,
  else 9). Padded words are zero on both sides and add nothing to the popcount.
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

Work is split over output rows with ``prange``; every output element is computed by
one thread in a fixed order, so results are identical for any thread count.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import jit
from ..errors import ParameterError
from ..packing import n_words, pack_signs, unpack_signs
from ._common import (block_affine, block_sum, block_thresh, block_width, group_words,
                      serial_and_parallel, threshold_bounds)
from .geometry import conv_geometry

__all__ = ["BConv", "bconv", "bdense", "MODES"]

#: output mode codes passed to the kernels
MODES = {"int": 0, "threshold": 1, "affine": 2}

# layout of the int64 parameter vector ``ip`` of the kernel
_KH, _KW, _SH, _SW, _PT, _PL, _HO, _WO, _MODE, _N, _CO, _GW, _DENSE, _NCH = range(14)
_NHDR = 14


# The per-row loops live in small functions of their own: compiled inside the big
# parallel kernel, the same loops ran ~40% slower (register pressure of the whole
# kernel around the 8-zmm vector values). The accumulate flags of the block intrinsics
# are constants at every call site (a runtime flag cost ~40% too), hence the separate
# one-group and many-group loops.


@jit()
def _row_threshold(xr, wt, ob, gw, acc, bound, flip, out_row):
    """Threshold outputs of one row for output block ``ob``: ``out_row[xo, ob]``."""
    kp = wt.shape[1]
    L = wt.shape[2]
    ng = kp // gw
    base = ob * kp * L
    lo = ob * L
    if ng == 1:
        for xo in range(xr.shape[1]):
            # bit j set iff v_j > bound (padded channels: bound = int64 max)
            word = block_thresh(wt, base, acc, False, L, gw, xr, xo, bound, lo)
            out_row[xo, ob] = np.uint64(word ^ flip)
        return
    last = (ng - 1) * gw
    for xo in range(xr.shape[1]):
        xoff = xo
        block_sum(wt, base, acc, False, L, gw, xr, xoff)
        for g in range(1, ng - 1):
            block_sum(wt, base + g * gw * L, acc, True, L, gw, xr, xoff + g * gw * xr.shape[1])
        word = block_thresh(wt, base + last * L, acc, True, L, gw, xr, xoff + last * xr.shape[1], bound, lo)
        out_row[xo, ob] = np.uint64(word ^ flip)


@jit()
def _row_affine(xr, wt, ob, gw, acc, n, scale, bias, out_real, row_off, c_out):
    """Affine outputs of one row for block ``ob`` when the block is full
    (``(ob+1)·L <= C_out``): stored straight from the vector registers."""
    kp = wt.shape[1]
    L = wt.shape[2]
    ng = kp // gw
    base = ob * kp * L
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
            block_sum(wt, base + g * gw * L, acc, True, L, gw, xr, xoff + g * gw * xr.shape[1])
        block_affine(wt, base + last * L, acc, True, L, gw, xr, xoff + last * xr.shape[1], n, scale, bias,
                     lo, out_real, off)


@jit()
def _row_dot(xr, wt, ob, gw, acc, mode, n, scale, bias, out_int, out_real, b, y, c_out):
    """int (mode 0) or affine (mode 2) outputs of one row for block ``ob``, channel by
    channel (int outputs, and the last, partial block of affine outputs)."""
    kp = wt.shape[1]
    L = wt.shape[2]
    ng = kp // gw
    base = ob * kp * L
    lo = ob * L
    for xo in range(xr.shape[1]):
        xoff = xo
        block_sum(wt, base, acc, False, L, gw, xr, xoff)
        for g in range(1, ng):
            block_sum(wt, base + g * gw * L, acc, True, L, gw, xr, xoff + g * gw * xr.shape[1])
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
    nblk, kp, L = wt.shape
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
    for t in prange(nchunks):
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
                    _row_threshold(xr, wt, ob, gw, acc, bound, flipw[ob], out_bits[b, y])
                elif mode == 2 and (ob + 1) * L <= c_out:
                    _row_affine(xr, wt, ob, gw, acc, n, scale, bias, out_real, r * w_out * c_out, c_out)
                else:
                    _row_dot(xr, wt, ob, gw, acc, mode, n, scale, bias, out_int, out_real, b, y, c_out)


_bconv_kernel, _bconv_kernel_parallel = serial_and_parallel(_bconv_impl)


_EMPTY_U64 = np.zeros((0, 0, 0, 0), np.uint64)
_EMPTY_I32 = np.zeros((0, 0, 0, 0), np.int32)
_EMPTY_F32 = np.zeros((0, 0, 0, 0), np.float32)


def _check_output_tensors(where, c_out, output, thresh, thresh_sign, scale, bias):
    if output not in MODES:
        raise ParameterError(f"{where}: output must be one of {sorted(MODES)}, got {output!r}")
    if output == "threshold":
        for name, t in (("thresh", thresh), ("thresh_sign", thresh_sign)):
            t = None if t is None else np.asarray(t)
            if t is None or t.dtype != np.int32 or t.shape != (c_out,):
                got = "nothing" if t is None else f"{t.dtype} {t.shape}"
                raise ParameterError(f"{where}: {name} must be int32 of shape ({c_out},), got {got}")
        if not np.isin(np.asarray(thresh_sign), (-1, 1)).all():
            raise ParameterError(f"{where}: thresh_sign must hold only +1 and -1")
    elif output == "affine":
        for name, t in (("scale", scale), ("bias", bias)):
            t = None if t is None else np.asarray(t)
            if t is None or t.dtype != np.float32 or t.shape != (c_out,):
                got = "nothing" if t is None else f"{t.dtype} {t.shape}"
                raise ParameterError(f"{where}: {name} must be float32 of shape ({c_out},), got {got}")


class BConv:
    """A prepared binary convolution (weights re-tiled once); call it on packed inputs.

    Parameters
    ----------
    weight : uint64 ``(C_out, kh, kw, ceil(C_in/64))``
        Packed weights (set bit = −1), canonical layout of DESIGN §2.
    in_channels : int
        ``C_in`` (the true channel count; pad bits of ``weight`` must be zero).
    stride : (int, int)
    padding : ``"same"`` (pad value +1) or ``"valid"``
    output : ``"int"``, ``"threshold"`` or ``"affine"``
    thresh, thresh_sign : int32 ``(C_out,)`` (threshold output)
    scale, bias : float32 ``(C_out,)`` (affine output)

    Examples
    --------
    >>> conv = BConv(w, 64, stride=(1, 1), padding="same", output="threshold",
    ...              thresh=t, thresh_sign=s)                    # doctest: +SKIP
    >>> y = conv(x)   # uint64 (N, H, W, 1) -> uint64 (N, H, W, 1)   # doctest: +SKIP
    """

    def __init__(self, weight, in_channels, stride=(1, 1), padding="same", output="int",
                 thresh=None, thresh_sign=None, scale=None, bias=None, name="bconv"):
        weight = np.asarray(weight)
        if weight.dtype != np.uint64 or weight.ndim != 4:
            raise ParameterError(f"{name}: weight must be uint64 (C_out, kh, kw, Cw), got {weight.dtype} {weight.shape}")
        c_out, kh, kw, cw = weight.shape
        if in_channels < 1 or cw != n_words(in_channels):
            raise ParameterError(f"{name}: weight has {cw} words per pixel but in_channels={in_channels} needs {n_words(max(in_channels, 1))}")
        if c_out < 1 or kh < 1 or kw < 1:
            raise ParameterError(f"{name}: empty weight shape {weight.shape}")
        if padding not in ("same", "valid"):
            raise ParameterError(f"{name}: padding must be 'same' or 'valid', got {padding!r}")
        stride = tuple(int(s) for s in stride)
        if len(stride) != 2 or min(stride) < 1:
            raise ParameterError(f"{name}: stride must be two positive integers, got {stride}")
        _check_output_tensors(name, c_out, output, thresh, thresh_sign, scale, bias)
        self.name = name
        self.in_channels = int(in_channels)
        self.out_channels = c_out
        self.kernel = (kh, kw)
        self.stride = stride
        self.padding = padding
        self.output = output
        self.n = kh * kw * self.in_channels
        if in_channels < 64:
            # patch packing: the kh·kw·C_in bits of a window, tap-major, packed densely
            # (the gather in the kernel builds the same layout from the input pixels)
            wv = unpack_signs(weight, in_channels).reshape(c_out, kh * kw * in_channels)
            wwin = pack_signs(wv)
            dense_c = in_channels
        else:
            wwin = weight.reshape(c_out, kh * kw * cw)
            dense_c = 0
        k = wwin.shape[1]
        gw, kp = group_words(k)
        L = block_width(c_out)
        nblk = -(-c_out // L)
        cp = nblk * L
        wt = np.zeros((kp, cp), np.uint64)          # zero rows past k pair with zero words
        wt[:k, :c_out] = wwin.T
        self.wt = np.ascontiguousarray(wt.reshape(kp, nblk, L).transpose(1, 0, 2))
        hdr = np.zeros(_NHDR, np.int64)
        hdr[_KH], hdr[_KW], hdr[_SH], hdr[_SW] = kh, kw, stride[0], stride[1]
        hdr[_MODE], hdr[_N], hdr[_CO] = MODES[output], self.n, c_out
        hdr[_GW], hdr[_DENSE] = gw, dense_c
        bound = np.full(cp, np.iinfo(np.int64).max, np.int64)
        flipw = np.zeros(n_words(c_out), np.int64)
        if output == "threshold":
            bound[:c_out], flipw = threshold_bounds(thresh, thresh_sign, -2, self.n)
        self._hdr = hdr
        self._tail = np.concatenate([bound, flipw])
        self.fp = np.zeros(2 * cp, np.float32)
        if output == "affine":
            self.fp[:c_out] = scale
            self.fp[cp:cp + c_out] = bias
        self._ip_cache = {}

    def out_hw(self, h, w):
        """Output height and width for an ``h × w`` input (ParameterError if empty)."""
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
        """A fresh output array of the right kind for ``nb × ho × wo`` pixels."""
        if self.output == "threshold":
            return np.empty((nb, ho, wo, n_words(self.out_channels)), np.uint64)
        if self.output == "int":
            return np.empty((nb, ho, wo, self.out_channels), np.int32)
        return np.empty((nb, ho, wo, self.out_channels), np.float32)

    def run(self, x, ip, out, parallel=False):
        """Run the kernel with no checks (C-contiguous input; ``ip`` from
        :meth:`params` with the same ``parallel``)."""
        m = self.output
        kern = _bconv_kernel_parallel if parallel else _bconv_kernel
        kern(x, self.wt, ip, self.fp,
             out if m == "threshold" else _EMPTY_U64,
             out if m == "int" else _EMPTY_I32,
             out if m == "affine" else _EMPTY_F32)
        return out

    def __call__(self, x):
        """Apply to packed input ``x`` uint64 ``(N, H, W, ceil(C_in/64))``."""
        from .._jit import ensure_threads

        x = np.asarray(x)
        cw = n_words(self.in_channels)
        if x.dtype != np.uint64 or x.ndim != 4 or x.shape[3] != cw:
            raise ParameterError(f"{self.name}: input must be uint64 (N, H, W, {cw}), got {x.dtype} {x.shape}")
        x = np.ascontiguousarray(x)
        nb, h, w, _ = x.shape
        ho, wo = self.out_hw(h, w)
        par = ensure_threads() > 1
        return self.run(x, self.params(h, w, nb, par), self.new_output(nb, ho, wo), par)


def bconv(x, weight, in_channels, stride=(1, 1), padding="same", output="int", thresh=None,
          thresh_sign=None, scale=None, bias=None):
    """Binary convolution of packed NHWC ``x`` (see :class:`BConv`).

    Returns int32 ``(N, Ho, Wo, C_out)``, packed uint64 ``(N, Ho, Wo, ceil(C_out/64))``
    or float32 ``(N, Ho, Wo, C_out)`` for ``output`` = int / threshold / affine.
    """
    return BConv(weight, in_channels, stride, padding, output, thresh, thresh_sign, scale, bias)(x)


class BDense(BConv):
    """A prepared binary dense layer: uint64 ``(N, ceil(C_in/64))`` → ``(N, ...)``."""

    def __init__(self, weight, in_features, output="int", thresh=None, thresh_sign=None,
                 scale=None, bias=None, name="bdense"):
        weight = np.asarray(weight)
        if weight.dtype != np.uint64 or weight.ndim != 2:
            raise ParameterError(f"{name}: weight must be uint64 (C_out, Cw), got {weight.dtype} {weight.shape}")
        super().__init__(weight[:, None, None, :], in_features, (1, 1), "valid", output, thresh,
                         thresh_sign, scale, bias, name=name)

    def __call__(self, x):
        x = np.asarray(x)
        cw = n_words(self.in_channels)
        if x.dtype != np.uint64 or x.ndim != 2 or x.shape[1] != cw:
            raise ParameterError(f"{self.name}: input must be uint64 (N, {cw}), got {x.dtype} {x.shape}")
        y = super().__call__(np.ascontiguousarray(x)[:, None, None, :])
        return y[:, 0, 0, :]


def bdense(x, weight, in_features, output="int", thresh=None, thresh_sign=None, scale=None,
           bias=None):
    """Binary dense layer on packed ``x`` uint64 ``(N, ceil(C_in/64))`` (see :class:`BConv`)."""
    return BDense(weight, in_features, output, thresh, thresh_sign, scale, bias)(x)


__all__ += ["BDense"]
