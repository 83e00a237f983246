"""Numba settings in one place, and the thread-count control.

Every kernel in bitnet is compiled with :func:`jit` (or ``jit(parallel=True)``), so the
options below are the only place where ``cache``, ``nogil``, ``fastmath`` and
``parallel`` are decided (the ahead-of-time build, :mod:`bitnet._aot`, uses the same
``error_model`` and releases the GIL too). Nothing here imports numba until a kernel is
defined or more than one thread is asked for: with the ahead-of-time kernels and one
thread, a process never imports numba.

Compiled kernels are cached on disk (``cache=True``). When the package directory is not
writable (a system-wide or read-only install) numba falls back to a per-user cache
directory by itself; ``NUMBA_CACHE_DIR`` overrides both.
"""

from __future__ import annotations

import os

#: Options shared by every kernel (``njit`` is nopython already; passing
#: ``nopython=True`` to it only makes numba warn). ``fastmath`` stays off: the float paths must match
#: the PyTorch model within float32 rounding, and the integer paths gain nothing from it.
JIT_OPTIONS = dict(nogil=True, cache=True, fastmath=False, error_model="numpy")


def jit(parallel: bool = False, **overrides):
    """Return numba's ``njit`` decorator with the project's options.

    Parameters
    ----------
    parallel : bool
        Compile with ``parallel=True`` so that ``numba.prange`` loops use numba's
        threads (only the roofline benchmark does; the kernels use :mod:`bitnet._threads`).
    **overrides
        Per-kernel exceptions to :data:`JIT_OPTIONS` (should be rare; say why at the
        call site).
    """
    import numba

    opts = dict(JIT_OPTIONS)
    opts.update(overrides)
    if parallel:
        opts["parallel"] = True
    return numba.njit(**opts)


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
