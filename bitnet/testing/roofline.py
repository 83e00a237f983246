"""The binary roofline: how many xor+popcount+add a core does per second, measured.

docs/design.md §5 quotes 1.19 T binary MACs/s for one core of the project's reference machine
(1 binary MAC = one bit of xor+popcount). This microbenchmark measures the same thing on
the machine at hand, so a kernel's speed can be given as a fraction of it in the same
run: a loop of ``s += popcount(a[i] XOR key)`` over an L1-resident array, which LLVM
vectorises to ``vpxorq`` + ``vpopcntq`` + ``vpaddq`` on zmm registers with several
accumulators. Only one operand streams from memory, as in the convolution kernels (the
input word is broadcast from a register); a two-array variant (both operands loaded) is
kept for comparison.
"""

from __future__ import annotations

import time

import numpy as np
from numba import prange

from ..compile.options import jit
from ..kernels._common import popcount

__all__ = ["roofline_kernel", "roofline_kernel_2", "roofline_parallel", "measure_roofline"]

#: words per array: 16 KiB, L1-resident
WORDS = 2048


@jit()
def roofline_kernel(a, keys, reps):
    """``Σ_r Σ_i popcount(a[i] XOR keys[r % len(keys)])``; ``a.size·64·reps`` binary MACs."""
    s = 0
    nk = keys.shape[0]
    for r in range(reps):
        key = keys[r % nk]
        for i in range(a.shape[0]):
            s += popcount(a[i] ^ key)
    return s


@jit()
def roofline_kernel_2(a, b, reps):
    """Two-operand variant: ``Σ popcount(a[i] XOR b[i])`` (two loads per word)."""
    s = 0
    for r in range(reps):
        for i in range(a.shape[0]):
            s += popcount(a[i] ^ b[i])
    return s


@jit(parallel=True)
def roofline_parallel(a2, keys, reps):
    """One row of ``a2`` per thread (``prange``); same work per row as :func:`roofline_kernel`."""
    tot = np.zeros(a2.shape[0], np.int64)
    nk = keys.shape[0]
    for t in prange(a2.shape[0]):
        s = 0
        for r in range(reps):
            key = keys[r % nk]
            for i in range(a2.shape[1]):
                s += popcount(a2[t, i] ^ key)
        tot[t] = s
    return tot.sum()


def make_operands(threads=1, seed=0):
    """Random operands: ``(a, keys)`` for 1 thread, ``(a2, keys)`` with one row per thread."""
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 2**63, 64, dtype=np.uint64)
    if threads == 1:
        return rng.integers(0, 2**63, WORDS, dtype=np.uint64), keys
    return rng.integers(0, 2**63, (threads, WORDS), dtype=np.uint64), keys


def measure_roofline(threads=1, reps=256, repeat=50):
    """Binary MACs/s of the roofline loop (best of ``repeat`` timings)."""
    import numba

    a, keys = make_operands(threads)
    if threads == 1:
        fn = roofline_kernel
    else:
        numba.set_num_threads(threads)      # numba's own threads: prange in roofline_parallel
        fn = roofline_parallel
    fn(a, keys, 1)
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn(a, keys, reps)
        best = min(best, time.perf_counter() - t)
    return a.size * 64 * reps / best
