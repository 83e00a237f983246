"""The ``sign`` and ``quantize`` ops as Numba kernels (the NumPy versions live in
:mod:`bitnet.packing`, which owns the conventions: bit set iff ``x + shift < 0``)."""

from __future__ import annotations

import numpy as np

from ..compile.options import jit
from ._common import sign_word, sign_word_shift
from ..errors import ParameterError
from ..packing import n_words

__all__ = ["sign", "quantize"]


@jit()
def sign_words(x, xoff, ch, shift, has_shift, out, ooff):
    """The ``sign`` op of ``ch`` values ``x[xoff:xoff+ch]`` into words ``out[ooff:]``
    (both flat, C-contiguous): full words by one compare-to-mask each (sign_word), the
    last, partial word of a channel count that is not a multiple of 64 bit by bit.
    Shared by every kernel that emits packed bits from float32 values."""
    full = ch // 64
    for ow in range(full):
        if has_shift:
            out[ooff + ow] = sign_word_shift(x, xoff + ow * 64, shift, ow * 64)
        else:
            out[ooff + ow] = sign_word(x, xoff + ow * 64)
    lo = full * 64
    if lo < ch:
        word = np.int64(0)
        for c in range(lo, ch):
            v = x[xoff + c]
            if has_shift:
                v = v + shift[c]
            if v < 0:
                word |= np.int64(1) << (c - lo)
        out[ooff + full] = np.uint64(word)


@jit()
def _sign_kernel(x, shift, has_shift, out):
    rows, ch = x.shape
    cw = out.shape[1]
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for r in range(rows):
        sign_words(xf, r * ch, ch, shift, has_shift, of, r * cw)


@jit()
def _quantize_kernel(x, offset, scale, top, out):
    half = np.float32(0.5)
    for i in range(x.shape[0]):
        y = np.floor((x[i] - offset) * scale + half)
        if not y >= 0:          # also NaN
            y = np.float32(0)
        if y > top:
            y = top
        out[i] = np.uint8(y)


_NO_SHIFT = np.zeros(1, np.float32)


def sign(x, shift=None, out=None):
    """Pack float32 ``(..., C)`` into bits ``(..., ceil(C/64))``: bit set iff ``x + shift < 0``."""
    x = np.asarray(x)
    if x.dtype != np.float32 or x.ndim < 1:
        raise ParameterError(f"sign: input must be float32, got {x.dtype} {x.shape}")
    ch = x.shape[-1]
    if shift is not None:
        shift = np.asarray(shift)
        if shift.dtype != np.float32 or shift.shape != (ch,):
            raise ParameterError(f"sign: shift must be float32 of shape ({ch},), got {shift.dtype} {shift.shape}")
    if out is None:
        out = np.empty(x.shape[:-1] + (n_words(ch),), np.uint64)
    x2 = np.ascontiguousarray(x).reshape(-1, ch)
    _sign_kernel(x2, _NO_SHIFT if shift is None else shift, shift is not None,
                 out.reshape(-1, out.shape[-1]))
    return out


def quantize(x, bits, offset, scale, out=None):
    """Numba twin of :func:`bitnet.packing.quantize` (float32 in, uint8 levels out)."""
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise ParameterError(f"quantize: input must be float32, got {x.dtype}")
    if out is None:
        out = np.empty(x.shape, np.uint8)
    _quantize_kernel(np.ascontiguousarray(x).reshape(-1), np.float32(offset), np.float32(scale),
                     np.float32((1 << int(bits)) - 1), out.reshape(-1))
    return out
