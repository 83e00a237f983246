"""Fused layer chains: kernels that run several graph layers in one pass.

The executor (:mod:`bitnet.graph`) replaces a chain of layers by one of these kernels
when nothing else reads the intermediate values; the results are identical to the
unfused chain because every fused kernel performs the same operations, in the same
order, on the same types (DESIGN §2; bit-for-bit, floats included).

* :func:`bconv_pool_sign` — ``bconv`` (affine output) → ``avgpool`` → [``flatten``] →
  ``sign``: packed bits in, packed bits out, without materialising the convolution's
  float map. Per conv output row: the affine values of the row
  (``float32(dot)·scale + bias``, float32 multiply then add, the block intrinsics of
  :mod:`.bconv`), then added into the pool accumulators of every window that holds
  the row, in the reference's order (window row ``ky`` outer — conv rows arrive in
  order — then ``kx``; the first term is assigned, not added to 0), then divided by
  ``float32(kh·kw)`` and signed (``x + shift < 0``) like :func:`.sign._sign_kernel`.
  Conv rows and columns that no pool window reads are never computed. Reference:
  :func:`bitnet.kernels.reference.bconv_pool_sign_reference` (the unfused references,
  composed).
"""

from __future__ import annotations

import numpy as np

from .._jit import jit
from .bconv import _CO, _GW, _DENSE, _KH, _KW, _N, _NHDR, _PL, _PT, _SH, _SW, _HO
from .bconv import _gather_row, _row_affine, _row_dot, _tap_ranges
from .sign import _sign_kernel

__all__ = ["bconv_pool_sign", "POOL_PARAMS"]

# layout of the int64 pool parameter vector ``pp``
_PKH, _PKW, _PSH, _PSW, _PHO, _PWO, _PFLAT = range(7)
POOL_PARAMS = 7


@jit()
def _bconv_pool_sign_kernel(x, wt, ip, fp, pp, shift, has_shift, out):
    """x (N,H,W,Cw) u64; wt, ip, fp of an affine :class:`.bconv.BConv`; pp pool
    parameters (kh, kw, sh, sw, ho, wo, flat); shift float32 (sign channels) or a
    dummy; out u64 ``(N, ho, wo, ceil(C/64))`` (flat = 0) or ``(N, ceil(ho·wo·C/64))``
    (flat = 1), C-contiguous."""
    nb = x.shape[0]
    h = x.shape[1]
    w = x.shape[2]
    nblk, kp, L = wt.shape
    c_out = ip[_CO]
    kh = ip[_KH]
    kw = ip[_KW]
    sh = ip[_SH]
    sw = ip[_SW]
    pt = ip[_PT]
    pl = ip[_PL]
    h_out = ip[_HO]
    n = ip[_N]
    gw = ip[_GW]
    dense_c = ip[_DENSE]
    cp = nblk * L
    scale = fp[:cp]
    bias = fp[cp:]
    pkh = pp[_PKH]
    pkw = pp[_PKW]
    psh = pp[_PSH]
    psw = pp[_PSW]
    pho = pp[_PHO]
    pwo = pp[_PWO]
    flat = pp[_PFLAT]
    # conv rows / columns read by some pool window
    hcov = min(h_out, (pho - 1) * psh + pkh)
    wcov = (pwo - 1) * psw + pkw
    xlo, xhi = _tap_ranges(kw, sw, pl, w, wcov)
    xr = np.zeros((kp, wcov), dtype=np.uint64)
    seg = np.zeros(wcov, dtype=np.uint64)
    acc = np.zeros(64, dtype=np.int64)
    row = np.empty((1, 1, wcov, c_out), dtype=np.float32)
    row2 = row.reshape(wcov, c_out)
    no_int = np.empty((0, 0, 0, 0), dtype=np.int32)
    pacc = np.empty((pho, pwo, c_out), dtype=np.float32)
    inv = np.float32(pkh * pkw)
    if flat:
        prow = pacc.reshape(1, pho * pwo * c_out)
    else:
        prow = pacc.reshape(pho * pwo, c_out)
    per = prow.shape[0]
    out2 = out.reshape(nb * per, out.shape[out.ndim - 1])
    for b in range(nb):
        for y in range(hcov):
            # pool rows whose window holds conv row y: py·psh <= y < py·psh + pkh
            py_hi = min(pho, y // psh + 1)
            py_lo = max(0, -((pkh - 1 - y) // psh))
            if py_lo >= py_hi:
                continue
            _gather_row(x, b, y, xr, seg, kh, kw, sh, pt, pl, sw, xlo, xhi, dense_c)
            for ob in range(nblk):
                if (ob + 1) * L <= c_out:
                    _row_affine(xr, wt, ob, gw, acc, n, scale, bias, row, 0, c_out)
                else:
                    _row_dot(xr, wt, ob, gw, acc, 2, n, scale, bias, no_int, row, 0, 0, c_out)
            for py in range(py_lo, py_hi):
                ky = y - py * psh
                for px in range(pwo):
                    for kx in range(pkw):
                        xc = px * psw + kx
                        if ky == 0 and kx == 0:
                            for c in range(c_out):
                                pacc[py, px, c] = row2[xc, c]
                        else:
                            for c in range(c_out):
                                pacc[py, px, c] += row2[xc, c]
        for py in range(pho):
            for px in range(pwo):
                for c in range(c_out):
                    pacc[py, px, c] = pacc[py, px, c] / inv
        _sign_kernel(prow, shift, has_shift, out2[b * per:(b + 1) * per])


_NO_SHIFT = np.zeros(1, np.float32)


def bconv_pool_sign(x, conv, pool_kernel, pool_stride=None, flatten=False, shift=None):
    """``sign(avgpool(conv(x)))`` (with ``flatten`` between pool and sign if asked) in one
    pass; ``conv`` an affine :class:`.bconv.BConv`. Returns packed bits
    ``(N, ho, wo, ceil(C/64))`` or, flattened, ``(N, ceil(ho·wo·C/64))``."""
    from ..errors import ParameterError
    from ..packing import n_words
    from .geometry import pool_geometry

    if conv.output != "affine":
        raise ParameterError(f"bconv_pool_sign: the conv must have affine output, got {conv.output!r}")
    x = np.ascontiguousarray(x)
    nb, h, w, _ = x.shape
    ho, wo = conv.out_hw(h, w)
    pk = tuple(int(k) for k in pool_kernel)
    ps = pk if pool_stride is None else tuple(int(s) for s in pool_stride)
    try:
        pho, pwo = pool_geometry(ho, wo, pk, ps)
    except ValueError as e:
        raise ParameterError(f"bconv_pool_sign: {e}") from None
    pp = pool_params(pk, ps, pho, pwo, flatten)
    c = conv.out_channels
    ch = pho * pwo * c if flatten else c
    if shift is not None:
        shift = np.ascontiguousarray(shift, np.float32)
        if shift.shape != (ch,):
            raise ParameterError(f"bconv_pool_sign: shift must have shape ({ch},), got {shift.shape}")
    oshape = (nb, n_words(ch)) if flatten else (nb, pho, pwo, n_words(ch))
    out = np.empty(oshape, np.uint64)
    _bconv_pool_sign_kernel(x, conv.wt, conv.params(h, w), conv.fp, pp,
                            _NO_SHIFT if shift is None else shift, shift is not None, out)
    return out


def pool_params(kernel, stride, ho, wo, flatten):
    """The int64 pool parameter vector ``pp`` of the fused kernel."""
    pp = np.zeros(POOL_PARAMS, np.int64)
    pp[_PKH], pp[_PKW] = kernel
    pp[_PSH], pp[_PSW] = stride
    pp[_PHO], pp[_PWO] = ho, wo
    pp[_PFLAT] = int(bool(flatten))
    return pp
