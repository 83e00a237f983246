"""Row-parallel kernel calls on Python threads: the parallel path without numba.

With :func:`bitnet.set_num_threads` ``n > 1``, a large convolution is cut into ``n``
parts of consecutive output rows (the kernels take a part index, see
:meth:`bitnet.kernels.bconv_layer._PreparedConv.params`); the calling thread runs part 0
and ``n − 1`` pool threads the others, all calling the same serial kernel, the
ahead-of-time one when it is there. Kernels release the GIL, so the parts run at once.
Every output element is computed by one part in a fixed order: results are
bit-identical for any thread count.

Hand-over is cheap because nobody sleeps while a graph runs: a pool thread waits for
the next part by spinning on a generation counter in native code (``spin_until``: an
acquire load and a ``pause`` per try, GIL released), and the caller waits for the
parts the same way. A thread that has spun :data:`SPINS` times without news blocks on
a condition variable instead, so an idle pool costs nothing. A layer's hand-over thus
costs a few microseconds, where waking a sleeping thread costs tens.
"""

from __future__ import annotations

import threading

import numpy as np

#: spin tries before blocking (a ``pause`` is ~10–140 cycles: tens to a few hundred µs,
#: longer than the gap between two layers of one graph run, shorter than a human notices)
SPINS = 20000

_pools: dict = {}
_pools_lock = threading.Lock()


class Pool:
    """``n − 1`` threads that run parts of kernel calls beside the calling thread."""

    def __init__(self, n: int):
        from .compile import registry as _registry

        self.n = n
        self._spin = _registry.get("spin_until")
        self._publish = _registry.get("publish")
        self._go = np.zeros(1, np.int64)            # generation of the posted job
        self._done = np.zeros(max(n, 1), np.int64)  # generation each thread finished
        self._gen = 0
        self._calls = [None] * n
        self._errors = [None] * n
        self._cond = threading.Condition()
        self._sleepers = 0                          # pool threads blocked on _cond
        self._waiting = False                       # the caller blocked on _cond
        self._lock = threading.Lock()               # one job at a time
        self.jobs = 0                               # jobs run (tests check the path ran)
        for k in range(1, n):
            threading.Thread(target=self._worker, args=(k,), daemon=True, name=f"bitnet-pool-{k}").start()

    def run(self, calls) -> None:
        """Run ``calls`` (``n`` pairs ``(fn, args)``) at once; part 0 in this thread.
        Returns when all are done; re-raises the first error of a part."""
        with self._lock:
            self._calls = calls
            self._errors = [None] * self.n
            self._gen += 1
            g = self._gen
            self._publish(self._go, 0, g)
            if self._sleepers:
                with self._cond:
                    self._cond.notify_all()
            fn, args = calls[0]
            try:
                fn(*args)
            finally:
                for k in range(1, self.n):
                    if not self._spin(self._done, k, g, SPINS):
                        with self._cond:
                            self._waiting = True
                            while self._done[k] < g:
                                self._cond.wait()
                            self._waiting = False
            self.jobs += 1
            for e in self._errors:
                if e is not None:
                    raise e

    def _worker(self, k: int) -> None:
        g = 0
        while True:
            g += 1
            if not self._spin(self._go, 0, g, SPINS):
                with self._cond:
                    self._sleepers += 1
                    while self._go[0] < g:
                        self._cond.wait()
                    self._sleepers -= 1
            fn, args = self._calls[k]
            try:
                fn(*args)
            except BaseException as e:     # handed to the caller, which re-raises it
                self._errors[k] = e
            self._publish(self._done, k, g)
            if self._waiting:
                with self._cond:
                    self._cond.notify_all()


def pool(n: int) -> Pool:
    """The process's pool of ``n`` threads (created on first use)."""
    p = _pools.get(n)
    if p is None:
        with _pools_lock:
            p = _pools.get(n)
            if p is None:
                p = _pools[n] = Pool(n)
    return p
