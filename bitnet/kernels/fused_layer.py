"""Parameters of the fused kernels (:mod:`bitnet.kernels.fused`), in pure Python: the
graph executor prepares fused chains without importing numba."""

from __future__ import annotations

import numpy as np

# layout of the int64 pool parameter vector ``pp`` (_PSEG: 1 for the row-segment
# layout of small inputs, see :func:`segment_weights`)
_PKH, _PKW, _PSH, _PSW, _PHO, _PWO, _PFLAT, _PSEG = range(8)
POOL_PARAMS = 8

_NO_SHIFT = np.zeros(1, np.float32)


def pool_params(kernel, stride, ho, wo, flatten, segments=False):
    """The int64 pool parameter vector ``pp`` of the fused kernel (``segments``: the
    weights are :func:`segment_weights`)."""
    pp = np.zeros(POOL_PARAMS, np.int64)
    pp[_PKH], pp[_PKW] = kernel
    pp[_PSH], pp[_PSW] = stride
    pp[_PHO], pp[_PWO] = ho, wo
    pp[_PFLAT] = int(bool(flatten))
    pp[_PSEG] = int(bool(segments))
    return pp


def segment_weights(conv, weight):
    """Weights of a small-input conv in the row-segment layout of
    :func:`bitnet.kernels.fused._segments`, or None where that layout does not apply.

    Applies when a window row fits one word (``kw·C_in <= 64``) and the window's ``kh``
    words are exactly one group of the block intrinsics (``kh`` = 3 or 9: no group
    reads a word past the window). Word ``ky`` of output channel ``c`` holds the
    weights of window row ``ky``, tap ``kx`` at bit ``kx·C_in``; returned as
    ``(nblk, kh, L)`` uint64 blocks like :class:`.bconv_layer.BConv`'s ``wt``. The dot
    is unchanged: the same bits meet the same bits, zeros elsewhere on both sides.
    """
    from ..packing import pack_signs, unpack_signs

    kh, kw = conv.kernel
    c_in = conv.in_channels
    if kw * c_in > 64 or kh not in (3, 9):
        return None
    nblk, L = conv.wt.shape[0], conv.lanes
    c_out = conv.out_channels
    wv = unpack_signs(np.asarray(weight), c_in).reshape(c_out, kh, kw * c_in)
    words = pack_signs(wv)[..., 0]                      # (C_out, kh)
    wt = np.zeros((kh, nblk * L), np.uint64)
    wt[:, :c_out] = words.T
    return conv.kernel_weights(wt.reshape(kh, nblk, L).transpose(1, 0, 2))


def quantize_qconv_applies(conv):
    """Whether the fused ``quantize → qconv`` kernel can run this
    :class:`.qconv_layer.QConv` (3×3, stride 1, one input channel, threshold)."""
    return (conv.kernel == (3, 3) and conv.stride == (1, 1) and conv.in_channels == 1
            and conv.output == "threshold")
