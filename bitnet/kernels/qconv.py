"""First layer: k-bit unsigned input levels × binary weights, exact integer arithmetic.

DESIGN §2 defines the first-layer dot through bitplanes,
``dot = Σ_b 2^b · (popcount(x_b) − 2·popcount(x_b AND w_neg))`` (the NumPy reference,
:func:`bitnet.kernels.reference.qconv_reference`, computes exactly that). Since
``Σ_b 2^b·x_b = q``, it equals ``Σ q·w`` with ``w = ±1``, which is what this kernel
computes: the levels are small integers and every partial sum stays below ``2**24``
(checked at preparation), so float32 multiply-adds of ``q`` with ``±1.0`` are exact
(no fused multiply-add, no reassociation: ``fastmath`` is off) and the result is the
same integer. This is the "re-tile at load time" freedom of DESIGN §2: the weights are
stored as ±1.0 in a ``(kh·kw·C_in, C_out)`` matrix so the inner loop runs over output
channels (16 float32 per zmm). ``same`` padding pads with level 0, which adds nothing.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import jit
from ..errors import ParameterError
from ..packing import n_words, unpack_signs
from ._common import emit_threshold, threshold_bounds
from .bconv import MODES, _EMPTY_F32, _EMPTY_I32, _EMPTY_U64, _check_output_tensors
from .geometry import conv_geometry

__all__ = ["QConv", "qconv"]

_KH, _KW, _SH, _SW, _PT, _PL, _HO, _WO, _MODE = range(9)
_NHDR = 9


@jit(parallel=True)
def _qconv_kernel(lv, wf, ip, fp, out_bits, out_int, out_real):
    """lv (N,H,W,C_in) u8; wf (kh*kw*C_in, C_out) f32 ±1; ip = header + bound + flipw;
    fp = scale + bias."""
    nb, h, w, c_in = lv.shape
    c_out = wf.shape[1]
    kh = ip[_KH]
    kw = ip[_KW]
    sh = ip[_SH]
    sw = ip[_SW]
    pt = ip[_PT]
    pl = ip[_PL]
    h_out = ip[_HO]
    w_out = ip[_WO]
    mode = ip[_MODE]
    bound = ip[_NHDR:_NHDR + c_out]
    flipw = ip[_NHDR + c_out:]
    scale = fp[:c_out]
    bias = fp[c_out:]
    for r in prange(nb * h_out):
        b = r // h_out
        y = r - b * h_out
        acc = np.empty(c_out, dtype=np.float32)
        v = np.empty(c_out, dtype=np.int64)
        for xo in range(w_out):
            acc[:] = 0
            for ky in range(kh):
                iy = y * sh - pt + ky
                if iy < 0 or iy >= h:
                    continue
                for kx in range(kw):
                    ix = xo * sw - pl + kx
                    if ix < 0 or ix >= w:
                        continue
                    kbase = (ky * kw + kx) * c_in
                    for ci in range(c_in):
                        q = np.float32(lv[b, iy, ix, ci])
                        wrow = wf[kbase + ci]
                        for c in range(c_out):
                            acc[c] += q * wrow[c]
            if mode == 1:
                for c in range(c_out):
                    v[c] = -np.int64(acc[c])
                emit_threshold(v, bound, flipw, out_bits[b, y, xo], c_out)
            elif mode == 0:
                for c in range(c_out):
                    out_int[b, y, xo, c] = np.int32(acc[c])
            else:
                for c in range(c_out):
                    out_real[b, y, xo, c] = acc[c] * scale[c] + bias[c]


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
        self.wf = np.ascontiguousarray(wv.reshape(c_out, -1).T)
        hdr = np.zeros(_NHDR, np.int64)
        hdr[_KH], hdr[_KW], hdr[_SH], hdr[_SW] = kh, kw, stride[0], stride[1]
        hdr[_MODE] = MODES[output]
        if output == "threshold":
            bound, flipw = threshold_bounds(thresh, thresh_sign, -1, 0)
        else:
            bound, flipw = np.zeros(c_out, np.int64), np.zeros(n_words(c_out), np.int64)
        self._hdr = hdr
        self._tail = np.concatenate([bound, flipw])
        if output == "affine":
            self.fp = np.concatenate([np.asarray(scale, np.float32), np.asarray(bias, np.float32)])
        else:
            self.fp = np.zeros(2 * c_out, np.float32)
        self._ip_cache = {}

    def out_hw(self, h, w):
        try:
            ho, wo, _, _ = conv_geometry(h, w, self.kernel, self.stride, self.padding)
        except ValueError as e:
            raise ParameterError(f"{self.name}: {e}") from None
        return ho, wo

    def params(self, h, w):
        ip = self._ip_cache.get((h, w))
        if ip is None:
            ho, wo, pt, pl = conv_geometry(h, w, self.kernel, self.stride, self.padding)
            hdr = self._hdr.copy()
            hdr[_PT], hdr[_PL], hdr[_HO], hdr[_WO] = pt, pl, ho, wo
            ip = np.concatenate([hdr, self._tail])
            self._ip_cache[(h, w)] = ip
        return ip

    def new_output(self, nb, ho, wo):
        if self.output == "threshold":
            return np.empty((nb, ho, wo, n_words(self.out_channels)), np.uint64)
        if self.output == "int":
            return np.empty((nb, ho, wo, self.out_channels), np.int32)
        return np.empty((nb, ho, wo, self.out_channels), np.float32)

    def run(self, lv, ip, out):
        m = self.output
        _qconv_kernel(lv, self.wf, ip, self.fp,
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
        ensure_threads()
        return self.run(lv, self.params(h, w), self.new_output(nb, ho, wo))


def qconv(levels, weight, in_channels, bits, stride=(1, 1), padding="same", output="int",
          thresh=None, thresh_sign=None, scale=None, bias=None):
    """First-layer convolution of uint8 levels with packed binary weights (see :class:`QConv`)."""
    return QConv(weight, in_channels, bits, stride, padding, output, thresh, thresh_sign,
                 scale, bias)(levels)
