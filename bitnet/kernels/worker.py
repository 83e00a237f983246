"""The pool threads' native loop: convolution parts run without ever taking the GIL.

A pool thread of :mod:`bitnet._threads` sits in :func:`_pool_worker` (GIL released)
for as long as work keeps coming: it spins on the pool's generation counter, reads its
job row, runs its part of the convolution with the same compiled kernel the calling
thread runs, and publishes that it is done, then spins for the next one. A graph run
is thus one parallel region for the pool threads however many layers it has: no
Python, no GIL hand-over between layers (each cost microseconds). It returns to Python
only when idle (no new job within ``spins`` tries) or for a job that is a Python call.

Job row (int64, :data:`JOB_WORDS`): kind, then the arrays as address and shape, with
the input and output dtypes given by the kind and output mode::

    0 kind  1 x addr  2-5 x shape  6 w addr  7-9 w shape  10 ip addr  11 ip len
    12 fp addr  13 fp len  14 out addr  15-18 out shape  19 output mode (0 int, 1
    threshold, 2 affine)

The caller keeps every array alive until the part is done (it waits for it).
"""

from __future__ import annotations

import numpy as np
from numba import carray

from ..compile.options import jit
from ._common import load_acquire, store_release, voidptr_at
from .bconv import _bconv_kernel
from .qconv import _qconv_kernel
from .sync import _spin_until

from .layout import JOB_BCONV as BCONV, JOB_PY as PY, JOB_WORDS  # noqa: F401


@jit()
def _run_conv(job, kind):
    mode = job[19]
    x_u64 = carray(voidptr_at(job[1]), (job[2], job[3], job[4], job[5]), np.uint64)
    x_u8 = carray(voidptr_at(job[1]), (job[2], job[3], job[4], job[5]), np.uint8)
    w_u64 = carray(voidptr_at(job[6]), (job[7], job[8], job[9]), np.uint64)
    w_f32 = carray(voidptr_at(job[6]), (job[7], job[8], job[9]), np.float32)
    ip = carray(voidptr_at(job[10]), (job[11],), np.int64)
    fp = carray(voidptr_at(job[12]), (job[13],), np.float32)
    none = (0, 0, 0, 0)
    oshape = (job[15], job[16], job[17], job[18])
    ob = carray(voidptr_at(job[14]), oshape if mode == 1 else none, np.uint64)
    oi = carray(voidptr_at(job[14]), oshape if mode == 0 else none, np.int32)
    orr = carray(voidptr_at(job[14]), oshape if mode == 2 else none, np.float32)
    if kind == BCONV:
        _bconv_kernel(x_u64, w_u64, ip, fp, ob, oi, orr)
    else:
        _qconv_kernel(x_u8, w_f32, ip, fp, ob, oi, orr)


@jit()
def _pool_worker(flags, jobs, k, spins):
    """Run pool thread ``k``'s jobs until idle. ``flags[0]``: the posted generation;
    ``flags[k]``: the last generation thread ``k`` finished. Returns that generation
    when idle (nothing new within ``spins`` tries), or ``−g − 1`` for a job of
    generation ``g`` that is a Python call (the caller runs it and publishes it)."""
    g = load_acquire(flags, k)
    while True:
        if _spin_until(flags, 0, g + 1, spins) == 0:
            return g
        g += 1
        kind = jobs[k, 0]
        if kind == PY:
            return -g - 1
        _run_conv(jobs[k], kind)
        store_release(flags, k, g)
