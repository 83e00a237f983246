"""First-layer (k-bit levels × binary weights) preparation, in pure Python.

The kernel is described in :mod:`bitnet.kernels.qconv`; this module prepares a layer
for it and calls it through :mod:`bitnet.compile.registry` (no numba import here).
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from ..packing import n_words, unpack_signs
from .bconv_layer import MODES, _PreparedConv
from . import isa
from .layout import FGROUP_SIZES, JOB_QCONV, ROWS3X3, aligned, block_width, group_words

__all__ = ["QConv", "qconv"]

_KH, _KW, _SH, _SW, _PT, _PL, _HO, _WO, _MODE, _CO, _GW, _NCH, _T0, _T1 = range(14)
_NHDR = 14


class QConv(_PreparedConv):
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

    _KERNEL = "qconv"
    _JOB = JOB_QCONV
    _SLOTS = (_PT, _PL, _HO, _WO, _NCH, _T0, _T1)

    def __init__(self, weight, in_channels, bits, stride=(1, 1), padding="same", output="int",
                 thresh=None, thresh_sign=None, scale=None, bias=None, name="qconv"):
        weight = self._check_and_set(weight, in_channels, stride, padding, output, thresh,
                                     thresh_sign, scale, bias, name)
        c_out, kh, kw, cw = weight.shape
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 8:
            raise ParameterError(f"{name}: bits must be an integer in 1..8, got {bits!r}")
        if ((1 << bits) - 1) * kh * kw * in_channels >= 1 << 24:
            raise ParameterError(f"{name}: window of {kh}x{kw}x{in_channels} {bits}-bit levels is too large for exact accumulation")
        self.bits = int(bits)
        wv = unpack_signs(weight, in_channels).astype(np.float32)      # (C_out, kh, kw, C_in)
        k = kh * kw * in_channels
        gw, kp = group_words(k, FGROUP_SIZES)
        L = block_width(c_out, isa.qlanes())
        nblk = -(-c_out // L)
        cp = nblk * L
        wf = np.zeros((kp, cp), np.float32)              # zero rows/columns add nothing
        wf[:k, :c_out] = wv.reshape(c_out, k).T
        self.wf = aligned(wf.reshape(kp, nblk, L).transpose(1, 0, 2))
        hdr = np.zeros(_NHDR, np.int64)
        hdr[_KH], hdr[_KW], hdr[_SH], hdr[_SW] = kh, kw, stride[0], stride[1]
        if (kh, kw) == (3, 3) and stride == (1, 1) and in_channels == 1 and (
                output == "threshold" or (output == "affine" and c_out % L == 0)):
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
        self.fp = aligned(np.concatenate([fbound, sc, bi]).astype(np.float32))
        self._w = self.wf
        self._ip_cache = {}

    def __call__(self, levels):
        """Apply to uint8 levels ``(N, H, W, C_in)`` (values must be below ``2**bits``)."""
        lv = np.asarray(levels)
        if lv.dtype != np.uint8 or lv.ndim != 4 or lv.shape[3] != self.in_channels:
            raise ParameterError(f"{self.name}: input must be uint8 (N, H, W, {self.in_channels}), got {lv.dtype} {lv.shape}")
        if lv.size and lv.max() >= (1 << self.bits):
            raise ParameterError(f"{self.name}: levels exceed {self.bits} bits")
        lv = np.ascontiguousarray(lv)
        nb, h, w, _ = lv.shape
        return self._call(lv, h, w, nb)


def qconv(levels, weight, in_channels, bits, stride=(1, 1), padding="same", output="int",
          thresh=None, thresh_sign=None, scale=None, bias=None):
    """First-layer convolution of uint8 levels with packed binary weights (see :class:`QConv`)."""
    return QConv(weight, in_channels, bits, stride, padding, output, thresh, thresh_sign,
                 scale, bias)(levels)
