"""Pooling on packed bits and on real values (``valid`` windows only).

* Max-pool of ±1 values is −1 only where every input is −1: the AND of the words
  (pad bits stay zero because they are zero in every input).
* Average pools sum float32 values over the window in row-major order (ky, then kx)
  and divide by ``float32(kh·kw)``; the references do the same operations in the same
  order, so they agree bit for bit.
* Global average pooling of bits is the mean of the ±1 values,
  ``float32(H·W − 2·count) / float32(H·W)`` with ``count`` the number of −1 values.
"""

from __future__ import annotations

import numpy as np

from ..compile.options import jit
from ._common import vop16
from ..errors import ParameterError
from .geometry import pool_geometry
from .sign import sign_words

__all__ = ["maxpool_bits", "maxpool_real", "add_maxpool_real", "pool_sign", "add_sign", "avgpool", "global_avgpool", "global_avgpool_bits"]


@jit()
def _maxpool_bits_kernel(x, kh, kw, sh, sw, out):
    nb, ho, wo, cw = out.shape
    for b in range(nb):
        for y in range(ho):
            for xo in range(wo):
                for c in range(cw):
                    word = ~np.uint64(0)
                    for ky in range(kh):
                        for kx in range(kw):
                            word &= x[b, y * sh + ky, xo * sw + kx, c]
                    out[b, y, xo, c] = word


@jit()
def _pool_real_kernel(x, kh, kw, sh, sw, is_max, out):
    # each output element sees its window in row-major order (ky, then kx), the
    # order of the reference; channels go 16 at a time through one zmm register
    # (vop16), the rest one by one
    nb, ho, wo, ch = out.shape
    h = x.shape[1]
    w = x.shape[2]
    inv = np.float32(kh * kw)
    c16 = ch - ch % 16
    op = 2 if is_max else 1
    if is_max and kh == 2 and kw == 2:
        # the common 2×2 max-pool: the four values of a window in registers, one store
        # per output (same comparisons in the same order as the general path)
        for b in range(nb):
            for y in range(ho):
                for xo in range(wo):
                    y0 = y * sh
                    x0 = xo * sw
                    for c in range(ch):
                        m = x[b, y0, x0, c]
                        v = x[b, y0, x0 + 1, c]
                        if v > m:
                            m = v
                        v = x[b, y0 + 1, x0, c]
                        if v > m:
                            m = v
                        v = x[b, y0 + 1, x0 + 1, c]
                        if v > m:
                            m = v
                        out[b, y, xo, c] = m
        return
    for b in range(nb):
        for y in range(ho):
            for xo in range(wo):
                ob = ((b * ho + y) * wo + xo) * ch
                for ky in range(kh):
                    for kx in range(kw):
                        xb = ((b * h + y * sh + ky) * w + xo * sw + kx) * ch
                        first = ky == 0 and kx == 0
                        for c in range(0, c16, 16):
                            vop16(out, ob + c, x, xb + c, 0 if first else op)
                        for c in range(c16, ch):
                            v = x[b, y * sh + ky, xo * sw + kx, c]
                            if first:
                                out[b, y, xo, c] = v
                            elif is_max:
                                if v > out[b, y, xo, c]:
                                    out[b, y, xo, c] = v
                            else:
                                out[b, y, xo, c] += v
                if not is_max:
                    for c in range(ch):
                        out[b, y, xo, c] = out[b, y, xo, c] / inv


@jit()
def _add_maxpool_real_kernel(a, b, kh, kw, sh, sw, out):
    # max-pool of the elementwise sum a + b without storing the sum: each value is the
    # one float32 add of the ``add`` op, the window is scanned in row-major order
    # (ky, then kx) keeping the running max unless ``v > max``, as _pool_real_kernel
    nb, ho, wo, ch = out.shape
    for n in range(nb):
        for y in range(ho):
            for xo in range(wo):
                y0 = y * sh
                x0 = xo * sw
                if kh == 2 and kw == 2:
                    for c in range(ch):
                        m = a[n, y0, x0, c] + b[n, y0, x0, c]
                        v = a[n, y0, x0 + 1, c] + b[n, y0, x0 + 1, c]
                        if v > m:
                            m = v
                        v = a[n, y0 + 1, x0, c] + b[n, y0 + 1, x0, c]
                        if v > m:
                            m = v
                        v = a[n, y0 + 1, x0 + 1, c] + b[n, y0 + 1, x0 + 1, c]
                        if v > m:
                            m = v
                        out[n, y, xo, c] = m
                    continue
                for c in range(ch):
                    m = a[n, y0, x0, c] + b[n, y0, x0, c]
                    for ky in range(kh):
                        for kx in range(kw):
                            v = a[n, y0 + ky, x0 + kx, c] + b[n, y0 + ky, x0 + kx, c]
                            if v > m:
                                m = v
                    out[n, y, xo, c] = m


@jit()
def _pool_sign_kernel(a, b, has_b, kh, kw, sh, sw, shift, has_shift, out, bits):
    # max-pool of a (or of a + b: has_b) into ``out`` and, from each output pixel's
    # channels while they are in L1, the ``sign`` op into ``bits``; the same operations
    # as _add_maxpool_real_kernel / _pool_real_kernel then _sign_kernel
    nb, ho, wo, ch = out.shape
    cw = bits.shape[3]
    of = out.reshape(-1)
    bf = bits.reshape(-1)
    for n in range(nb):
        for y in range(ho):
            for xo in range(wo):
                y0 = y * sh
                x0 = xo * sw
                if kh == 2 and kw == 2:
                    if has_b:
                        for c in range(ch):
                            m = a[n, y0, x0, c] + b[n, y0, x0, c]
                            v = a[n, y0, x0 + 1, c] + b[n, y0, x0 + 1, c]
                            if v > m:
                                m = v
                            v = a[n, y0 + 1, x0, c] + b[n, y0 + 1, x0, c]
                            if v > m:
                                m = v
                            v = a[n, y0 + 1, x0 + 1, c] + b[n, y0 + 1, x0 + 1, c]
                            if v > m:
                                m = v
                            out[n, y, xo, c] = m
                    else:
                        for c in range(ch):
                            m = a[n, y0, x0, c]
                            v = a[n, y0, x0 + 1, c]
                            if v > m:
                                m = v
                            v = a[n, y0 + 1, x0, c]
                            if v > m:
                                m = v
                            v = a[n, y0 + 1, x0 + 1, c]
                            if v > m:
                                m = v
                            out[n, y, xo, c] = m
                else:
                    for c in range(ch):
                        m = a[n, y0, x0, c]
                        if has_b:
                            m = m + b[n, y0, x0, c]
                        for ky in range(kh):
                            for kx in range(kw):
                                v = a[n, y0 + ky, x0 + kx, c]
                                if has_b:
                                    v = v + b[n, y0 + ky, x0 + kx, c]
                                if v > m:
                                    m = v
                        out[n, y, xo, c] = m
                pix = (n * ho + y) * wo + xo
                sign_words(of, pix * ch, ch, shift, has_shift, bf, pix * cw)


@jit()
def _add_sign_kernel(a, b, shift, has_shift, out, bits):
    # the ``add`` op (one float32 add per value) into ``out`` (rows, C) and the ``sign``
    # op of each row while it is in L1, as _sign_kernel
    rows, ch = out.shape
    cw = bits.shape[1]
    of = out.reshape(-1)
    bf = bits.reshape(-1)
    for r in range(rows):
        for c in range(ch):
            out[r, c] = a[r, c] + b[r, c]
        sign_words(of, r * ch, ch, shift, has_shift, bf, r * cw)


@jit()
def _gap_real_kernel(x, out):
    nb, h, w, ch = x.shape
    inv = np.float32(h * w)
    for b in range(nb):
        for c in range(ch):
            out[b, c] = 0
        for i in range(h):
            for j in range(w):
                for c in range(ch):
                    out[b, c] += x[b, i, j, c]
        for c in range(ch):
            out[b, c] = out[b, c] / inv


@jit()
def _gap_bits_kernel(x, channels, out):
    nb, h, w, cw = x.shape
    hw = h * w
    cnt = np.zeros(cw * 64, dtype=np.int64)
    for b in range(nb):
        cnt[:] = 0
        for i in range(h):
            for j in range(w):
                for k in range(cw):
                    word = x[b, i, j, k]
                    for bit in range(64):
                        cnt[k * 64 + bit] += np.int64((word >> np.uint64(bit)) & np.uint64(1))
        for c in range(channels):
            out[b, c] = np.float32(hw - 2 * cnt[c]) / np.float32(hw)


def _pool_args(x, kernel, stride, name):
    kernel = tuple(int(k) for k in kernel)
    stride = kernel if stride is None else tuple(int(s) for s in stride)
    if len(kernel) != 2 or len(stride) != 2 or min(kernel) < 1 or min(stride) < 1:
        raise ParameterError(f"{name}: kernel and stride must be two positive integers, got {kernel}, {stride}")
    if x.ndim != 4:
        raise ParameterError(f"{name}: input must be 4-d NHWC, got shape {x.shape}")
    try:
        ho, wo = pool_geometry(x.shape[1], x.shape[2], kernel, stride)
    except ValueError as e:
        raise ParameterError(f"{name}: {e}") from None
    return kernel, stride, ho, wo


def maxpool_bits(x, kernel, stride=None, out=None):
    """Max-pool packed bits ``(N, H, W, Cw)`` uint64 (AND over each window)."""
    x = np.asarray(x)
    if x.dtype != np.uint64:
        raise ParameterError(f"maxpool_bits: input must be uint64, got {x.dtype}")
    (kh, kw), (sh, sw), ho, wo = _pool_args(x, kernel, stride, "maxpool_bits")
    if out is None:
        out = np.empty((x.shape[0], ho, wo, x.shape[3]), np.uint64)
    _maxpool_bits_kernel(np.ascontiguousarray(x), kh, kw, sh, sw, out)
    return out


def _pool_real(x, kernel, stride, is_max, name, out=None):
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise ParameterError(f"{name}: input must be float32, got {x.dtype}")
    (kh, kw), (sh, sw), ho, wo = _pool_args(x, kernel, stride, name)
    if out is None:
        out = np.empty((x.shape[0], ho, wo, x.shape[3]), np.float32)
    _pool_real_kernel(np.ascontiguousarray(x), kh, kw, sh, sw, is_max, out)
    return out


def maxpool_real(x, kernel, stride=None, out=None):
    """Max-pool float32 ``(N, H, W, C)`` (``valid``)."""
    return _pool_real(x, kernel, stride, True, "maxpool", out)


def avgpool(x, kernel, stride=None, out=None):
    """Average-pool float32 ``(N, H, W, C)`` (``valid``)."""
    return _pool_real(x, kernel, stride, False, "avgpool", out)


def global_avgpool(x, out=None):
    """Mean over H, W of float32 ``(N, H, W, C)`` → ``(N, C)``."""
    x = np.asarray(x)
    if x.dtype != np.float32 or x.ndim != 4:
        raise ParameterError(f"global_avgpool: input must be float32 (N, H, W, C), got {x.dtype} {x.shape}")
    if out is None:
        out = np.empty((x.shape[0], x.shape[3]), np.float32)
    _gap_real_kernel(np.ascontiguousarray(x), out)
    return out


def global_avgpool_bits(x, channels, out=None):
    """Mean of the ±1 values over H, W of packed bits ``(N, H, W, Cw)`` → float32 ``(N, C)``."""
    x = np.asarray(x)
    if x.dtype != np.uint64 or x.ndim != 4 or x.shape[3] * 64 < channels:
        raise ParameterError(f"global_avgpool: input must be uint64 (N, H, W, Cw) holding {channels} channels, got {x.dtype} {x.shape}")
    if out is None:
        out = np.empty((x.shape[0], channels), np.float32)
    _gap_bits_kernel(np.ascontiguousarray(x), channels, out)
    return out


def add_maxpool_real(a, b, kernel, stride=None, out=None):
    """Max-pool of ``a + b`` (float32 NHWC, same shapes) in one pass: the ``add`` op
    followed by ``maxpool``, bit for bit, without storing the sum."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.dtype != np.float32 or b.dtype != np.float32 or a.shape != b.shape:
        raise ParameterError(f"add_maxpool_real: inputs must be float32 of one shape, got {a.dtype} {a.shape}, "
                             f"{b.dtype} {b.shape}")
    (kh, kw), (sh, sw), ho, wo = _pool_args(a, kernel, stride, "add_maxpool_real")
    if out is None:
        out = np.empty((a.shape[0], ho, wo, a.shape[3]), np.float32)
    _add_maxpool_real_kernel(np.ascontiguousarray(a), np.ascontiguousarray(b), kh, kw, sh, sw, out)
    return out


def pool_sign(a, kernel, stride=None, shift=None, b=None):
    """Max-pool of ``a`` (or of ``a + b``) and the ``sign`` of the result in one pass:
    ``(pooled float32, packed bits)``, bit for bit those of the separate ops."""
    from ..packing import n_words

    a = np.ascontiguousarray(a)
    if a.dtype != np.float32:
        raise ParameterError(f"pool_sign: input must be float32, got {a.dtype}")
    has_b = b is not None
    b = np.ascontiguousarray(b) if has_b else a
    if b.dtype != np.float32 or b.shape != a.shape:
        raise ParameterError("pool_sign: b must be float32 of the shape of a")
    (kh, kw), (sh, sw), ho, wo = _pool_args(a, kernel, stride, "pool_sign")
    ch = a.shape[3]
    has_shift = shift is not None
    shift = np.zeros(1, np.float32) if not has_shift else np.asarray(shift)
    if shift.dtype != np.float32 or (has_shift and shift.shape != (ch,)):
        raise ParameterError(f"pool_sign: shift must be float32 of shape ({ch},)")
    out = np.empty((a.shape[0], ho, wo, ch), np.float32)
    bits = np.empty((a.shape[0], ho, wo, n_words(ch)), np.uint64)
    _pool_sign_kernel(a, b, has_b, kh, kw, sh, sw, shift, has_shift, out, bits)
    return out, bits


def add_sign(a, b, shift=None):
    """``a + b`` (float32, same shapes, channels last) and its ``sign`` in one pass:
    ``(sum, packed bits)``, bit for bit those of the separate ops."""
    from ..packing import n_words

    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b)
    if a.dtype != np.float32 or b.dtype != np.float32 or a.shape != b.shape or a.ndim < 1:
        raise ParameterError("add_sign: inputs must be float32 of one shape")
    ch = a.shape[-1]
    has_shift = shift is not None
    shift = np.zeros(1, np.float32) if not has_shift else np.asarray(shift)
    if shift.dtype != np.float32 or (has_shift and shift.shape != (ch,)):
        raise ParameterError(f"add_sign: shift must be float32 of shape ({ch},)")
    out = np.empty(a.shape, np.float32)
    bits = np.empty(a.shape[:-1] + (n_words(ch),), np.uint64)
    _add_sign_kernel(a.reshape(-1, ch), b.reshape(-1, ch), shift, has_shift, out.reshape(-1, ch),
                     bits.reshape(-1, bits.shape[-1]))
    return out, bits
