"""Bit-packing: the one place where the bit convention of bitnet is written down.

Convention (docs/design.md §2, docs/graph.md)
-------------------------------------
* ``sign(x) = +1 if x >= 0 else -1``; so ``sign(0) = +1`` (and ``sign(-0.0) = +1``,
  because ``-0.0 < 0`` is false).
* A **set bit means -1**, a clear bit +1 (the IEEE sign bit). Packing a value ``x``
  therefore sets its bit iff ``x < 0``.
* Channel ``c`` lives in word ``c // 64``, bit ``c % 64``; the least significant bit is
  the lowest channel. Words are ``uint64``; a packed tensor of ``C`` channels has
  ``ceil(C / 64)`` words along its last axis.
* Bits past the last channel (``c >= C`` in the last word) are **always 0**, in every
  operand and every output. They then cancel in ``a XOR b`` and never count.
* For two ±1 vectors ``a, b`` of true length ``n`` packed this way,
  ``dot(a, b) = (#equal) - (#different) = n - 2 * popcount(a XOR b)``.
* Clear bits are +1, so an all-zero word is 64 channels of +1: a ``same``-padded pixel
  of a binary convolution (pad value +1) is a word of zeros.

Input quantizer (docs/graph.md "Quantizer"): ``q = clip(floor((x - offset) * scale + 0.5),
0, 2**bits - 1)`` in float32; its bitplane ``b`` holds bit ``b`` of ``q``.
"""

from __future__ import annotations

import numpy as np

from .errors import ParameterError

__all__ = [
    "n_words",
    "pack_signs",
    "unpack_signs",
    "pack_bitplanes",
    "quantize",
    "sign_bits",
]


def n_words(channels: int) -> int:
    """Number of uint64 words that hold ``channels`` packed channels (``ceil(C/64)``)."""
    return (int(channels) + 63) // 64


def _pack_bool_last(neg: np.ndarray) -> np.ndarray:
    """Pack a boolean array along its last axis into little-endian uint64 words."""
    c = neg.shape[-1]
    cw = n_words(c)
    if c != cw * 64:
        pad = np.zeros(neg.shape[:-1] + (cw * 64 - c,), dtype=bool)
        neg = np.concatenate([neg, pad], axis=-1)
    # packbits(bitorder="little") puts channel 8*i+j in bit j of byte i; eight
    # consecutive bytes read as a little-endian uint64 give channel 64*w+j at bit j.
    by = np.packbits(neg, axis=-1, bitorder="little")
    return np.ascontiguousarray(by).view("<u8").astype(np.uint64, copy=False)


def pack_signs(x, axis: int = -1) -> np.ndarray:
    """Pack the signs of ``x`` into uint64 words along ``axis``.

    Parameters
    ----------
    x : array_like, real or integer, any shape
        Values to binarize; the bit of an element is set iff it is ``< 0``
        (so ``sign(0) = +1``).
    axis : int
        The channel axis to pack (default: the last one, NHWC).

    Returns
    -------
    numpy.ndarray, uint64
        Same shape as ``x`` with ``axis`` moved last and replaced by ``ceil(C/64)``
        words; bits past channel ``C - 1`` are zero.

    Examples
    --------
    >>> pack_signs([1.0, -2.0, 0.0, -0.5])
    array([10], dtype=uint64)
    """
    x = np.asarray(x)
    if x.ndim == 0:
        raise ParameterError("pack_signs needs at least one axis to pack, got a scalar")
    if x.dtype.kind not in "biuf":
        raise ParameterError(f"pack_signs expects a real or integer array, got dtype {x.dtype}")
    if x.shape[axis] == 0:
        raise ParameterError("pack_signs: the channel axis is empty")
    x = np.moveaxis(x, axis, -1)
    if x.dtype.kind == "f" and np.isnan(x).any():
        raise ParameterError("pack_signs: input holds NaN, whose sign is undefined")
    return _pack_bool_last(x < 0)


def unpack_signs(words, n: int) -> np.ndarray:
    """Unpack ``n`` channels of packed signs into ±1 values.

    Parameters
    ----------
    words : array_like of uint64, shape ``(..., ceil(n/64))``
    n : int
        True channel count.

    Returns
    -------
    numpy.ndarray, int8, shape ``(..., n)``
        ``-1`` where the bit is set, ``+1`` where it is clear.

    Examples
    --------
    >>> unpack_signs(np.array([10], dtype=np.uint64), 4)
    array([ 1, -1,  1, -1], dtype=int8)
    """
    words = np.asarray(words)
    if words.dtype != np.uint64:
        raise ParameterError(f"unpack_signs expects uint64 words, got dtype {words.dtype}")
    n = int(n)
    if n < 1 or words.ndim == 0 or words.shape[-1] != n_words(n):
        raise ParameterError(
            f"unpack_signs: {n} channels need {n_words(max(n, 1))} words, got shape {words.shape}")
    by = np.ascontiguousarray(words).astype("<u8", copy=False).view(np.uint8)
    bits = np.unpackbits(by, axis=-1, bitorder="little")[..., :n]
    return (1 - 2 * bits.astype(np.int8)).astype(np.int8)


def pack_bitplanes(levels, bits: int) -> np.ndarray:
    """Split k-bit unsigned levels into ``bits`` packed bitplanes along the channel axis.

    Parameters
    ----------
    levels : array_like of unsigned integers, shape ``(..., C)``
        Values in ``[0, 2**bits - 1]``.
    bits : int
        ``k``, 1..8.

    Returns
    -------
    numpy.ndarray, uint64, shape ``(..., bits, ceil(C/64))``
        Plane ``b`` has the bit of channel ``c`` set iff bit ``b`` of ``levels[..., c]``
        is 1 (here a set bit is a 1 of the integer, not a -1).
    """
    levels = np.asarray(levels)
    bits = _check_bits(bits)
    if levels.dtype.kind not in "ui":
        raise ParameterError(f"pack_bitplanes expects unsigned integer levels, got {levels.dtype}")
    if levels.size and (levels.min() < 0 or levels.max() > (1 << bits) - 1):
        raise ParameterError(f"pack_bitplanes: levels outside [0, {(1 << bits) - 1}] for bits={bits}")
    lv = levels.astype(np.uint16)
    planes = [((lv >> b) & 1).astype(bool) for b in range(bits)]
    return np.stack([_pack_bool_last(p) for p in planes], axis=-2)


def _check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 8:
        raise ParameterError(f"bits must be an integer in 1..8, got {bits!r}")
    return int(bits)


def quantize(x, bits: int, offset: float, scale: float) -> np.ndarray:
    """The input quantizer: ``clip(floor((x - offset) * scale + 0.5), 0, 2**bits - 1)``.

    Computed in float32 exactly as the trainer does (docs/graph.md "Quantizer").

    Parameters
    ----------
    x : array_like, float
    bits : int
        1..8.
    offset, scale : float
        Stored in the model; applied as float32.

    Returns
    -------
    numpy.ndarray, uint8, same shape as ``x``

    Examples
    --------
    >>> quantize(np.array([-1.0, 0.0, 0.49, 10.0], dtype=np.float32), 2, 0.0, 1.0)
    array([0, 0, 0, 3], dtype=uint8)
    """
    bits = _check_bits(bits)
    x = np.asarray(x, dtype=np.float32)
    y = (x - np.float32(offset)) * np.float32(scale) + np.float32(0.5)
    y = np.floor(y)
    # NaN maps to 0 (np.clip keeps NaN; nan_to_num makes it explicit)
    y = np.nan_to_num(y, nan=0.0, posinf=float((1 << bits) - 1), neginf=0.0)
    return np.clip(y, 0, (1 << bits) - 1).astype(np.uint8)


def sign_bits(x, shift=None) -> np.ndarray:
    """The ``sign`` op: pack ``x + shift`` (float32) along the last axis.

    Parameters
    ----------
    x : float32 array ``(..., C)``
    shift : float32 array ``(C,)`` or None

    Returns
    -------
    uint64 array ``(..., ceil(C/64))``: bit set iff ``x + shift < 0``.
    """
    x = np.asarray(x, dtype=np.float32)
    if shift is not None:
        x = x + np.asarray(shift, dtype=np.float32)
    return pack_signs(x, axis=-1)
