"""How many threads a call may use: :func:`set_num_threads`, ``BITNET_NUM_THREADS``.

With one thread (the default) every kernel runs once in the calling thread; with more,
the large convolutions run on parts of their output rows on a pool of Python threads
(:mod:`bitnet._threads`), the same compiled kernels, results identical for any count.
Nothing here imports numba.
"""

from __future__ import annotations

import os

__all__ = ["set_num_threads", "get_num_threads", "ensure_threads"]


def _max_threads() -> int:
    """The CPUs this process may run on (the pool never uses more threads)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _default_threads() -> int:
    env = os.environ.get("BITNET_NUM_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    return 1  # one thread is the sane default on a busy machine


_threads = None


def set_num_threads(n: int) -> None:
    """Set the number of threads the parallel kernels may use (1 by default).

    Results are bit-identical for any thread count. The environment variable
    ``BITNET_NUM_THREADS`` sets the default for new processes.
    """
    from .errors import ParameterError

    global _threads
    if not isinstance(n, (int,)) or isinstance(n, bool) or n < 1:
        raise ParameterError(f"thread count must be a positive integer, got {n!r}")
    # the pool threads (bitnet._threads) start when a call first uses them
    _threads = 1 if n == 1 else min(n, _max_threads())


def get_num_threads() -> int:
    """Return the thread count the parallel kernels use."""
    global _threads
    if _threads is None:
        set_num_threads(_default_threads())
    return _threads


def ensure_threads() -> int:
    """The thread count a call made now should use (:func:`set_num_threads`).

    With one thread the callers run each kernel once, in the calling thread; with more
    they cut large convolutions into parts run by :mod:`bitnet._threads` (Python
    threads, the same compiled kernels: no numba threading layer, no numba import).
    """
    return _threads if _threads is not None else get_num_threads()
