"""Slow, obviously-correct NumPy references of every kernel: they are the specification.

Each function here unpacks bits to ±1 integers and does the arithmetic of
docs/graph.md literally; the Numba kernels beside this module must agree with them
exactly (integers, bits) or bit-for-bit where the float operations are the same
(affine outputs, pooling, sign). :class:`bitnet.graph.Graph.run_reference` runs a whole
model with these functions only, so a user can debug a model without Numba.

Output modes of the binary layers (``bconv``, ``bdense``, ``qconv``), from the exact
integer ``dot`` of each output element:

* ``"int"``: ``int32(dot)``.
* ``"threshold"``: packed bits; the output is +1 (bit clear) iff
  ``thresh_sign[c] * dot >= thresh[c]`` (integer comparison, no floats).
* ``"affine"``: ``float32(dot) * scale[c] + bias[c]`` in float32.
"""

from __future__ import annotations

import numpy as np

from ..packing import n_words, pack_bitplanes, pack_signs, unpack_signs
from .geometry import conv_geometry, pool_geometry

__all__ = [
    "popcount",
    "apply_output",
    "bconv_reference",
    "bdense_reference",
    "qconv_reference",
    "sign_reference",
    "quantize_reference",
    "maxpool_bits_reference",
    "maxpool_real_reference",
    "avgpool_reference",
    "global_avgpool_reference",
    "global_avgpool_bits_reference",
    "dense_reference",
    "add_reference",
    "concat_reference",
    "flatten_reference",
]


def popcount(words):
    """Number of set bits of each uint64 (int64 result)."""
    words = np.asarray(words, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words).astype(np.int64)
    by = np.ascontiguousarray(words).view(np.uint8).reshape(words.shape + (8,))
    return _BYTE_POPCOUNT[by].sum(axis=-1, dtype=np.int64)


_BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def apply_output(dot, output, thresh=None, thresh_sign=None, scale=None, bias=None):
    """Turn integer dots ``(..., C_out)`` into the layer's output (see module docstring)."""
    dot = np.asarray(dot, dtype=np.int64)
    if output == "int":
        return dot.astype(np.int32)
    if output == "threshold":
        s = np.asarray(thresh_sign, dtype=np.int64)
        t = np.asarray(thresh, dtype=np.int64)
        plus = s * dot >= t
        return pack_signs(np.where(plus, 1, -1).astype(np.int8), axis=-1)
    if output == "affine":
        return dot.astype(np.float32) * np.asarray(scale, np.float32) + np.asarray(bias, np.float32)
    raise ValueError(f"unknown output mode {output!r}")


def _pad(x, kernel, padding, h_out, w_out, stride, pt, pl, value):
    """Pad NHWC ``x`` so that every window of the output lies inside."""
    kh, kw = kernel
    sh, sw = stride
    n, h, w, c = x.shape
    hp = max((h_out - 1) * sh + kh, h + pt)
    wp = max((w_out - 1) * sw + kw, w + pl)
    out = np.full((n, hp, wp, c), value, dtype=x.dtype)
    out[:, pt:pt + h, pl:pl + w, :] = x
    return out


def _correlate(xv, wv, kernel, stride, h_out, w_out):
    """Integer cross-correlation of NHWC ``xv`` (already padded) with ``wv (C_out, kh, kw, C)``."""
    kh, kw = kernel
    sh, sw = stride
    n = xv.shape[0]
    dot = np.zeros((n, h_out, w_out, wv.shape[0]), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            win = xv[:, ky:ky + (h_out - 1) * sh + 1:sh, kx:kx + (w_out - 1) * sw + 1:sw, :]
            dot += np.einsum("nhwc,oc->nhwo", win.astype(np.int64), wv[:, ky, kx, :].astype(np.int64))
    return dot


def bconv_dot_reference(x, weight, in_channels, kernel=(3, 3), stride=(1, 1), padding="same"):
    """Integer dots of a binary convolution: ±1 inputs, ±1 weights, +1 padding.

    Parameters
    ----------
    x : uint64 ``(N, H, W, ceil(C_in/64))``
    weight : uint64 ``(C_out, kh, kw, ceil(C_in/64))``

    Returns
    -------
    int64 ``(N, H_out, W_out, C_out)``
    """
    kernel = tuple(int(k) for k in kernel)
    stride = tuple(int(s) for s in stride)
    _, h, w, _ = x.shape
    h_out, w_out, pt, pl = conv_geometry(h, w, kernel, stride, padding)
    xv = unpack_signs(x, in_channels)
    wv = unpack_signs(weight, in_channels)
    xv = _pad(xv, kernel, padding, h_out, w_out, stride, pt, pl, 1)
    return _correlate(xv, wv, kernel, stride, h_out, w_out)


def bconv_reference(x, weight, in_channels, kernel=(3, 3), stride=(1, 1), padding="same",
                    output="int", thresh=None, thresh_sign=None, scale=None, bias=None):
    """Binary convolution per docs/graph.md (``bconv``); see :func:`apply_output`."""
    dot = bconv_dot_reference(x, weight, in_channels, kernel, stride, padding)
    return apply_output(dot, output, thresh, thresh_sign, scale, bias)


def bdense_reference(x, weight, in_features, output="int", thresh=None, thresh_sign=None,
                     scale=None, bias=None):
    """Binary dense: ``x`` uint64 ``(N, ceil(C_in/64))``, ``weight`` uint64 ``(C_out, ceil(C_in/64))``."""
    xv = unpack_signs(x, in_features).astype(np.int64)
    wv = unpack_signs(weight, in_features).astype(np.int64)
    return apply_output(xv @ wv.T, output, thresh, thresh_sign, scale, bias)


def qconv_dot_reference(levels, weight, in_channels, bits, kernel=(3, 3), stride=(1, 1),
                        padding="same"):
    """Integer dots of the first layer, literally by bitplanes (docs/design.md §2).

    ``dot = Σ_b 2^b · (popcount(x_b) − 2·popcount(x_b AND w_neg))`` summed over each
    window, where ``x_b`` is bitplane ``b`` of the levels (padded with level 0) and
    ``w_neg`` the set (−1) bits of the weights.
    """
    kernel = tuple(int(k) for k in kernel)
    stride = tuple(int(s) for s in stride)
    kh, kw = kernel
    sh, sw = stride
    n, h, w, c = levels.shape
    h_out, w_out, pt, pl = conv_geometry(h, w, kernel, stride, padding)
    lv = _pad(np.asarray(levels), kernel, padding, h_out, w_out, stride, pt, pl, 0)
    planes = pack_bitplanes(lv, bits)                      # (N, Hp, Wp, bits, Cw)
    c_out = weight.shape[0]
    dot = np.zeros((n, h_out, w_out, c_out), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            win = planes[:, ky:ky + (h_out - 1) * sh + 1:sh, kx:kx + (w_out - 1) * sw + 1:sw]
            wneg = weight[:, ky, kx, :]                                 # (C_out, Cw)
            for b in range(bits):
                xb = win[:, :, :, b, :]                                 # (N, Ho, Wo, Cw)
                ones = popcount(xb).sum(axis=-1)[..., None]             # popcount(x_b)
                both = popcount(xb[..., None, :] & wneg).sum(axis=-1)   # popcount(x_b AND w_neg)
                dot += (1 << b) * (ones - 2 * both)
    return dot


def qconv_reference(levels, weight, in_channels, bits, kernel=(3, 3), stride=(1, 1),
                    padding="same", output="int", thresh=None, thresh_sign=None, scale=None,
                    bias=None):
    """First layer per docs/graph.md (``qconv``); see :func:`apply_output`."""
    dot = qconv_dot_reference(levels, weight, in_channels, bits, kernel, stride, padding)
    return apply_output(dot, output, thresh, thresh_sign, scale, bias)


def quantize_reference(x, bits, offset, scale):
    """The input quantizer (same as :func:`bitnet.packing.quantize`)."""
    from ..packing import quantize

    return quantize(x, bits, offset, scale)


def sign_reference(x, shift=None):
    """``sign`` op: bit set iff ``x + shift < 0`` (float32), packed along the last axis."""
    x = np.asarray(x, dtype=np.float32)
    if shift is not None:
        x = x + np.asarray(shift, dtype=np.float32)
    return pack_signs(x, axis=-1)


def _windows(x, kernel, stride):
    kh, kw = (int(k) for k in kernel)
    sh, sw = (int(s) for s in stride)
    h_out, w_out = pool_geometry(x.shape[1], x.shape[2], (kh, kw), (sh, sw))
    for ky in range(kh):
        for kx in range(kw):
            yield x[:, ky:ky + (h_out - 1) * sh + 1:sh, kx:kx + (w_out - 1) * sw + 1:sw, :]


def maxpool_bits_reference(x, channels, kernel, stride=None):
    """Max-pool of ±1 values: −1 only where every input is −1, via the unpacked values."""
    stride = kernel if stride is None else stride
    xv = unpack_signs(x, channels)
    out = None
    for win in _windows(xv, kernel, stride):
        out = win.copy() if out is None else np.maximum(out, win)
    return pack_signs(out, axis=-1)


def maxpool_real_reference(x, kernel, stride=None):
    """Max-pool of float32 NHWC values (``valid``)."""
    stride = kernel if stride is None else stride
    out = None
    for win in _windows(np.asarray(x, np.float32), kernel, stride):
        out = win.copy() if out is None else np.maximum(out, win)
    return out


def avgpool_reference(x, kernel, stride=None):
    """Average pool of float32 NHWC values: float32 sum over the window, row by row
    (ky outer, kx inner), then divided by ``float32(kh*kw)``."""
    stride = kernel if stride is None else stride
    acc = None
    for win in _windows(np.asarray(x, np.float32), kernel, stride):
        acc = win.copy() if acc is None else acc + win
    return acc / np.float32(int(kernel[0]) * int(kernel[1]))


def global_avgpool_reference(x):
    """Mean over H and W of float32 ``(N, H, W, C)``: float32 sum in row-major order, / (H·W)."""
    x = np.asarray(x, np.float32)
    acc = np.zeros((x.shape[0], x.shape[3]), np.float32)
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            acc = acc + x[:, i, j, :]
    return acc / np.float32(x.shape[1] * x.shape[2])


def global_avgpool_bits_reference(x, channels):
    """Mean of the ±1 values over H and W of bits ``(N, H, W, Cw)`` → float32 ``(N, C)``.

    Computed as ``float32(H·W − 2·count) / float32(H·W)`` where ``count`` is the number
    of −1 values (exact integer count, one rounding).
    """
    v = unpack_signs(x, channels).astype(np.int64)
    hw = x.shape[1] * x.shape[2]
    s = v.sum(axis=(1, 2))
    return s.astype(np.float32) / np.float32(hw)


def dense_reference(x, weight, bias, channels=None):
    """Float32 dense ``x @ weight.T + bias``; bits ``(N, Cw)`` are read as ±1 (pass ``channels``)."""
    x = np.asarray(x)
    if x.dtype == np.uint64:
        x = unpack_signs(x, channels).astype(np.float32)
    return np.asarray(x, np.float32) @ np.asarray(weight, np.float32).T + np.asarray(bias, np.float32)


def add_reference(a, b):
    return np.asarray(a, np.float32) + np.asarray(b, np.float32)


def add_maxpool_real_reference(a, b, kernel, stride=None):
    """``add`` then ``maxpool`` (real): the composition of the two references."""
    return maxpool_real_reference(add_reference(a, b), kernel, stride)


def concat_reference(a, b):
    return np.concatenate([a, b], axis=-1)


def flatten_reference(x):
    return np.ascontiguousarray(x).reshape(x.shape[0], -1)


_ = n_words  # re-exported for users of the references


def bconv_pool_sign_reference(x, weight, in_channels, kernel, stride, padding, scale, bias,
                              pool_kernel, pool_stride=None, flatten=False, shift=None):
    """The fused chain ``bconv`` (affine) → ``avgpool`` → [``flatten``] → ``sign``, as the
    unfused references composed (the spec of :mod:`bitnet.kernels.fused`)."""
    y = bconv_reference(x, weight, in_channels, kernel, stride, padding, "affine",
                        scale=scale, bias=bias)
    y = avgpool_reference(y, pool_kernel, pool_stride)
    if flatten:
        y = flatten_reference(y)
    return sign_reference(y, shift)


def quantize_qconv_reference(x, bits, offset, scale, weight, in_channels, kernel=(3, 3),
                             stride=(1, 1), padding="same", output="threshold", **out_tensors):
    """The fused chain ``quantize`` → ``qconv``, as the unfused references composed."""
    lv = quantize_reference(x, bits, offset, scale)
    return qconv_reference(lv, weight, in_channels, bits, kernel, stride, padding, output,
                           **out_tensors)
