"""The block roofline: each instruction-set path's own popcount method, minimal loop.

:mod:`bitnet.testing.roofline` times LLVM's default popcount (``ctpop`` of 64-bit words,
however the target lowers it: ``vpopcntq`` on AVX-512, a table lookup reduced to 64
bits per word on AVX2). This one times the kernels' block step itself (the
:func:`~bitnet.kernels._common.block_sum` intrinsic of the path the kernels were
compiled for: nibble tables into byte counters on AVX2, ``cnt`` on NEON) with nothing
around it: L1-resident weight blocks of the path's widest block, groups of 9 words,
input words broadcast from a small row, no gather, no output transform. A layer's
"% of roofline" against it says how much the rest of the kernel costs.
"""

from __future__ import annotations

import numpy as np

from bitnet.compile.options import jit
from bitnet.kernels import isa
from bitnet.kernels._common import block_sum, weight_planes

#: words per group and pixels per row of the microbenchmark
G = 9
PIXELS = 64


@jit()
def block_roofline(wt, xs, acc, reps):
    """``reps`` passes of every pixel of ``xs`` over every block of ``wt``; returns a
    checksum (so nothing is optimised away). Binary MACs: see :func:`macs`."""
    nblk, g, r_ = wt.shape
    L = r_ // weight_planes(r_)
    s = 0
    for _ in range(reps):
        for p in range(xs.shape[1]):
            for b in range(nblk):
                block_sum(wt, b * g * r_, acc, False, L, g, xs, p)
                s += acc[0]
    return s


def make_operands(seed=0, blocks=4):
    """Weight blocks ``(blocks, G, R)`` in the kernels' layout, input ``(G, PIXELS)``."""
    from bitnet.kernels.bconv_layer import BConv
    from bitnet.kernels.layout import aligned

    rng = np.random.default_rng(seed)
    L = isa.lanes()[-1]
    w = rng.integers(0, 2**63, size=(blocks, G, L), dtype=np.uint64)
    wt = BConv.kernel_weights(w)
    xs = aligned(rng.integers(0, 2**63, size=(G, PIXELS), dtype=np.uint64))
    return wt, xs, np.zeros(64, np.int64), L


def macs(wt, xs, L, reps):
    return reps * xs.shape[1] * wt.shape[0] * L * G * 64
