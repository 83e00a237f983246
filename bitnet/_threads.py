"""Row-parallel convolutions on a pool of threads: the parallel path without numba.

With :func:`bitnet.set_num_threads` ``n > 1``, a large convolution is cut into ``n``
parts of consecutive output rows (the kernels take a part index in their parameter
vector, see :meth:`bitnet.kernels.bconv_layer._PreparedConv.params`); the calling
thread runs part 0 and ``n − 1`` pool threads the others, all with the same compiled
kernel (the ahead-of-time one when it is there). Every output element is computed by
one part in a fixed order: results are bit-identical for any thread count.

The pool threads never take the GIL while work keeps coming: each sits in a native
loop (:mod:`bitnet.kernels.worker`) that spins on a generation counter (an acquire
load and a ``pause`` per try), reads its job row (the arrays as addresses and shapes),
runs its part and publishes it (a release store), then spins for the next job. So a
whole graph run is one parallel region for them, and handing a layer over costs the
caller about the time to write a job row. A thread that has spun :data:`SPINS` times
without news goes back to Python and blocks on a condition variable, so an idle pool
costs nothing. Plain Python calls can be run on the pool too (:meth:`Pool.run`).
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np

#: spin tries before blocking (a ``pause`` is ~10–140 cycles: tens to a few hundred µs,
#: longer than the gap between two layers of one graph run, shorter than a human notices)
SPINS = 20000

_yield = getattr(os, "sched_yield", lambda: time.sleep(0))

_pools: dict = {}
_pools_lock = threading.Lock()


class Pool:
    """``n − 1`` threads that run parts of kernel calls beside the calling thread."""

    def __init__(self, n: int):
        from .compile import registry as _registry
        from .kernels.layout import JOB_WORDS, aligned

        self.n = n
        self._spin = _registry.get("spin_until")
        self._publish = _registry.get("publish")
        self._native = _registry.get("pool_worker")
        # flags[0]: generation of the posted job; flags[k]: last one thread k finished
        self._flags = aligned(np.zeros(max(n, 1), np.int64))
        self._jobs = aligned(np.zeros((max(n, 1), JOB_WORDS), np.int64))
        self._gen = 0
        self._calls = [None] * n
        self._errors = [None] * n
        self._cond = threading.Condition()
        self._sleepers = 0                          # pool threads blocked on _cond
        self._lock = threading.Lock()               # one job at a time
        self.jobs = 0                               # jobs run (tests check the path ran)
        for k in range(1, n):
            threading.Thread(target=self._worker, args=(k,), daemon=True, name=f"bitnet-pool-{k}").start()

    # ------------------------------------------------------------------ posting

    def _post(self) -> int:
        self._gen += 1
        g = self._gen
        self._publish(self._flags, 0, g)
        if self._sleepers:
            with self._cond:
                self._cond.notify_all()
        return g

    def _wait(self, g: int) -> None:
        # the other parts take about as long as this thread's: spin (no GIL) while they
        # run, giving the core away between rounds, for a busy machine, where the pool
        # thread may be waiting for a core this thread is spinning on
        for k in range(1, self.n):
            while not self._spin(self._flags, k, g, SPINS // 10):
                _yield()

    def run(self, calls) -> None:
        """Run ``calls`` (``n`` pairs ``(fn, args)`` of Python callables) at once, part 0
        in this thread; returns when all are done and re-raises the first error."""
        from .kernels.layout import JOB_PY

        with self._lock:
            self._calls = calls
            self._errors = [None] * self.n
            self._jobs[:, 0] = JOB_PY
            g = self._post()
            fn, args = calls[0]
            try:
                fn(*args)
            finally:
                self._wait(g)
            self.jobs += 1
            for e in self._errors:
                if e is not None:
                    raise e

    def run_conv(self, kern, args, rows, out) -> None:
        """A prepared convolution in parts: ``kern(*args)`` (input first, part 0's
        parameter vector) in this thread, parts ``1 .. n−1`` as the job rows ``rows`` (from
        :meth:`bitnet.kernels.bconv_layer._PreparedConv.job_rows`, the input and output
        filled in here) for the pool threads' native loops."""
        jobs = self._jobs
        x = args[0]
        xa = x.__array_interface__["data"][0]
        oa = out.__array_interface__["data"][0]
        nb = x.shape[0]
        with self._lock:
            jobs[1:] = rows
            jobs[1:, 1] = xa
            jobs[1:, 2] = nb
            jobs[1:, 14] = oa
            jobs[1:, 15] = nb
            g = self._post()
            try:
                kern(*args)
            finally:
                self._wait(g)
            self.jobs += 1

    # ------------------------------------------------------------------ threads

    def _worker(self, k: int) -> None:
        while True:
            r = self._native(self._flags, self._jobs, k, SPINS)
            if r < 0:                       # a Python call of generation g
                g = -r - 1
                fn, args = self._calls[k]
                try:
                    fn(*args)
                except BaseException as e:  # handed to the caller, which re-raises it
                    self._errors[k] = e
                self._publish(self._flags, k, g)
                continue
            with self._cond:                # idle after generation r: block
                self._sleepers += 1
                while self._flags[0] <= r:
                    self._cond.wait(0.01)
                self._sleepers -= 1


def _forget_pools() -> None:
    # a child made by fork() has the pool objects but none of their threads: it must
    # make its own pools, or its first parallel call would wait for ever
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


def pool(n: int) -> Pool:
    """The process's pool of ``n`` threads (created on first use)."""
    p = _pools.get(n)
    if p is None:
        with _pools_lock:
            p = _pools.get(n)
            if p is None:
                p = _pools[n] = Pool(n)
    return p
