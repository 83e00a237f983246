"""Binary convolution / dense layers: weight re-tiling and parameters, in pure Python.

The kernels and the layout they use are described in :mod:`bitnet.kernels.bconv`;
this module prepares a layer for them (re-tiled weight blocks, the int64 parameter
vector, threshold bounds) and calls the compiled kernel through
:mod:`bitnet.compile.registry`, so it does not import numba itself (with the
ahead-of-time kernels of :mod:`bitnet.compile.aot`, a model runs without numba).
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from ..packing import n_words, pack_signs, unpack_signs
from ..compile import registry as _registry
from .geometry import conv_geometry
from . import isa
from .layout import JOB_BCONV, JOB_QCONV, aligned, block_width, group_words, nibble_planes, threshold_bounds

__all__ = ["BConv", "BDense", "bconv", "bdense", "MODES"]

#: output mode codes passed to the kernels
MODES = {"int": 0, "threshold": 1, "affine": 2}

# layout of the int64 parameter vector ``ip`` of the kernel
_KH, _KW, _SH, _SW, _PT, _PL, _HO, _WO, _MODE, _N, _CO, _GW, _DENSE, _NCH, _T0, _T1 = range(16)
_NHDR = 16

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


class _PreparedConv:
    """What :class:`BConv` and :class:`QConv` share once their weights are re-tiled:
    output geometry, the kernel's cached int64 parameter vector, output allocation and
    the unchecked run. A subclass sets ``_KERNEL`` (its registry name), ``_SLOTS`` (the
    header indices of pad-top, pad-left, out-height, out-width and chunk count), and in
    ``__init__`` ``self._w`` (the re-tiled weights), ``self._hdr``, ``self._tail``,
    ``self.fp`` and ``self._ip_cache = {}``.
    """

    _KERNEL = ""
    _JOB = 0            # job kind of the pool threads' native loop (layout.JOB_*)
    _SLOTS = ()

    def _check_and_set(self, weight, in_channels, stride, padding, output, thresh, thresh_sign,
                       scale, bias, name):
        """Validate what every packed convolution takes (canonical packed weights,
        stride, padding, output tensors), set the common attributes, return the weights
        as an array."""
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
        return weight

    def out_hw(self, h, w):
        """Output height and width for an ``h × w`` input (ParameterError if empty)."""
        try:
            ho, wo, _, _ = conv_geometry(h, w, self.kernel, self.stride, self.padding)
        except ValueError as e:
            raise ParameterError(f"{self.name}: {e}") from None
        return ho, wo

    def params(self, h, w, part=(0, 1)):
        """The kernel's int64 parameter vector for ``h × w`` inputs (cached).

        ``part = (i, n)``: the call computes part ``i`` of ``n`` of the output rows of
        the batch (consecutive rows ``i·R//n ..``, R = batch × output height), for
        :mod:`bitnet._threads`; ``(0, 1)``, all rows, is the one-thread call. A row is
        computed the same way in any part, so the parts together equal one call.
        """
        key = (h, w, part)
        ip = self._ip_cache.get(key)
        if ip is None:
            ho, wo, pt, pl = conv_geometry(h, w, self.kernel, self.stride, self.padding)
            hdr = self._hdr.copy()
            i_pt, i_pl, i_ho, i_wo, i_nch, i_t0, i_t1 = self._SLOTS
            hdr[i_pt], hdr[i_pl], hdr[i_ho], hdr[i_wo] = pt, pl, ho, wo
            hdr[i_nch], hdr[i_t0], hdr[i_t1] = part[1], part[0], part[0] + 1
            ip = aligned(np.concatenate([hdr, self._tail]))
            self._ip_cache[key] = ip
        return ip

    def parts(self, h, w, n):
        """The ``n`` parameter vectors of an ``n``-thread call (see :meth:`params`)."""
        key = (h, w, n)
        ips = self._ip_cache.get(key)
        if ips is None:
            ips = self._ip_cache[key] = [self.params(h, w, (i, n)) for i in range(n)]
        return ips

    def new_output(self, nb, ho, wo):
        """A fresh output array of the right kind for ``nb × ho × wo`` pixels."""
        if self.output == "threshold":
            return np.empty((nb, ho, wo, n_words(self.out_channels)), np.uint64)
        if self.output == "int":
            return np.empty((nb, ho, wo, self.out_channels), np.int32)
        return np.empty((nb, ho, wo, self.out_channels), np.float32)

    def run(self, x, ips, out):
        """Run the kernel with no checks (C-contiguous input) for the parameter vectors
        ``ips`` of :meth:`parts` (one per thread; one vector: this thread only)."""
        m = self.output
        kern = _registry.get(self._KERNEL)
        outs = (out if m == "threshold" else _EMPTY_U64, out if m == "int" else _EMPTY_I32,
                out if m == "affine" else _EMPTY_F32)
        if len(ips) == 1:
            kern(x, self._w, ips[0], self.fp, *outs)
        else:
            from .._threads import pool

            h, w = x.shape[1:3]
            pool(len(ips)).run_conv(kern, (x, self._w, ips[0], self.fp, *outs),
                                    self.job_rows(h, w, len(ips), out.shape[1:]), out)
        return out

    def job_rows(self, h, w, n, oshape):
        """Job rows of parts ``1 .. n−1`` for the pool threads (:mod:`.worker`): every
        word but the input's and output's address and batch size (cached)."""
        key = ("rows", h, w, n)
        rows = self._ip_cache.get(key)
        if rows is None:
            from .layout import JOB_WORDS

            def addr(a):
                return a.__array_interface__["data"][0]

            ips = self.parts(h, w, n)
            cin = self.in_channels if self._JOB == JOB_QCONV else n_words(self.in_channels)
            rows = np.zeros((n - 1, JOB_WORDS), np.int64)
            for k in range(1, n):
                ip = ips[k]
                rows[k - 1] = (self._JOB, 0, 0, h, w, cin, addr(self._w), *self._w.shape, addr(ip), ip.shape[0],
                               addr(self.fp), self.fp.shape[0], 0, 0, *oshape, MODES[self.output])
            self._ip_cache[key] = rows
        return rows

    def _call(self, x, h, w, nb):
        from ..parallel import ensure_threads

        ho, wo = self.out_hw(h, w)
        n = ensure_threads()
        if n > 1 and nb * ho < 2:
            n = 1
        return self.run(x, self.parts(h, w, n), self.new_output(nb, ho, wo))


class BConv(_PreparedConv):
    """A prepared binary convolution (weights re-tiled once); call it on packed inputs.

    Parameters
    ----------
    weight : uint64 ``(C_out, kh, kw, ceil(C_in/64))``
        Packed weights (set bit = −1), canonical layout of docs/design.md §2.
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

    _KERNEL = "bconv"
    _JOB = JOB_BCONV
    _SLOTS = (_PT, _PL, _HO, _WO, _NCH, _T0, _T1)

    def __init__(self, weight, in_channels, stride=(1, 1), padding="same", output="int",
                 thresh=None, thresh_sign=None, scale=None, bias=None, name="bconv"):
        weight = self._check_and_set(weight, in_channels, stride, padding, output, thresh,
                                     thresh_sign, scale, bias, name)
        c_out, kh, kw, cw = weight.shape
        self.n = kh * kw * self.in_channels
        if self.n >= 1 << 31:       # the kernels convert dots to float through int32
            raise ParameterError(f"{name}: window of {kh}x{kw}x{in_channels} is too large (2**31 or more bits)")
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
        L = block_width(c_out, isa.lanes())
        nblk = -(-c_out // L)
        cp = nblk * L
        wt = np.zeros((kp, cp), np.uint64)          # zero rows past k pair with zero words
        wt[:k, :c_out] = wwin.T
        self.lanes = L
        self.wt = self.kernel_weights(wt.reshape(kp, nblk, L).transpose(1, 0, 2))
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
        fp = np.zeros(2 * cp, np.float32)
        if output == "affine":
            fp[:c_out] = scale
            fp[cp:cp + c_out] = bias
        self.fp = aligned(fp)
        self._w = self.wt
        self._ip_cache = {}

    @staticmethod
    def kernel_weights(blocks):
        """Weight blocks ``(nblk, Kp, L)`` in the layout of the kernels' path
        (:mod:`.isa`): as they are, or as nibble planes ``(nblk, Kp, 2L)`` (AVX2)."""
        if isa.PATHS[isa.active()]["nibbles"]:
            return aligned(nibble_planes(blocks))
        return aligned(blocks)

    def __call__(self, x):
        """Apply to packed input ``x`` uint64 ``(N, H, W, ceil(C_in/64))``."""
        x = np.asarray(x)
        cw = n_words(self.in_channels)
        if x.dtype != np.uint64 or x.ndim != 4 or x.shape[3] != cw:
            raise ParameterError(f"{self.name}: input must be uint64 (N, H, W, {cw}), got {x.dtype} {x.shape}")
        x = np.ascontiguousarray(x)
        nb, h, w, _ = x.shape
        return self._call(x, h, w, nb)


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

