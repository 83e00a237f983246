"""What the convolution ops (``qconv``, ``bconv``, ``bdense``) share: the common
attributes, the counts, and the closures that call a prepared conv kernel."""

from __future__ import annotations

import numpy as np

from ..kernels.geometry import conv_geometry
from ..packing import n_words
from ._base import Counts

#: With more than one thread, a convolution runs on parts of its rows only from this
#: much work per example (binary MACs): waking the other threads costs several µs,
#: more than a small layer gains (LC-BNN's layers all stay serial; KWS-BNN-M's all go
#: parallel).
PARALLEL_MIN_WORK = 10_000_000

_B4 = "u8[:, :, :, ::1]"     # packed bits (N, H, W, Cw)
_I4 = "i4[:, :, :, ::1]"
_F4 = "f4[:, :, :, ::1]"


def conv_common(c, in_c):
    """kernel, stride, padding, in and out channels of a ``qconv``/``bconv``."""
    kernel = c.int_pair(c.attrs.get("kernel"), "kernel")
    stride = c.int_pair(c.attrs.get("stride", [1, 1]), "stride")
    padding = c.attrs.get("padding", "same")
    if padding not in ("same", "valid"):
        c.fail(f"padding must be 'same' or 'valid', got {padding!r}")
    c_in = c.pos_int("in_channels")
    c_out = c.pos_int("out_channels")
    if c_in != in_c:
        c.fail(f"in_channels={c_in} but the input has {in_c} channels")
    return kernel, stride, padding, c_in, c_out


def conv_out_hw(c, hw, kernel, stride, padding):
    try:
        ho, wo, _, _ = conv_geometry(hw[0], hw[1], kernel, stride, padding)
    except ValueError as e:
        c.fail(str(e))
    return ho, wo


def weight(c, shape_but_words, c_in):
    return c.tensor("weight", np.uint64, tuple(shape_but_words) + (n_words(c_in),))


def conv_counts(macs, bits_per_mac, c_out, n_out_tensors, wt, nbytes, weights):
    """Counts of a binary layer: ``weights`` logical binary weights, ``macs`` MACs
    each worth ``bits_per_mac`` binary MACs, ``n_out_tensors`` per-channel tensors."""
    return Counts(params=weights + n_out_tensors * c_out, macs=macs,
                  binary_macs=macs * bits_per_mac, weight_bytes=wt.nbytes + nbytes)


def conv_step_parts(conv, hw, out_info):
    """A closure that runs a prepared conv on parts of its rows, one per thread
    (:mod:`bitnet._threads`; the thread count is read at each call)."""
    from ..parallel import ensure_threads

    oshape = out_info.shape
    dtype = {"threshold": np.uint64, "int": np.int32, "affine": np.float32}[conv.output]
    h, w = hw

    def step(x):
        out = np.empty((x.shape[0],) + oshape, dtype)
        return conv.run(x, conv.parts(h, w, ensure_threads()), out)
    return step


def conv_step(kern, wt, ip, fp, output, out_info):
    """A closure that allocates the output and calls one conv kernel (no checks)."""
    from ..kernels.bconv_layer import _EMPTY_F32, _EMPTY_I32, _EMPTY_U64

    oshape = out_info.shape
    if output == "threshold":
        def step(x):
            out = np.empty((x.shape[0],) + oshape, np.uint64)
            kern(x, wt, ip, fp, out, _EMPTY_I32, _EMPTY_F32)
            return out
    elif output == "int":
        def step(x):
            out = np.empty((x.shape[0],) + oshape, np.int32)
            kern(x, wt, ip, fp, _EMPTY_U64, out, _EMPTY_F32)
            return out
    else:
        def step(x):
            out = np.empty((x.shape[0],) + oshape, np.float32)
            kern(x, wt, ip, fp, _EMPTY_U64, _EMPTY_I32, out)
            return out
    return step
