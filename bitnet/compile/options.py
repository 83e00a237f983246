"""Numba settings in one place, and the ``BITNET_AOT`` switch.

Every kernel in bitnet is compiled with :func:`jit`, so the options below are the only
place where ``cache``, ``nogil``, ``fastmath`` and ``parallel`` are decided (the
ahead-of-time build, :mod:`.aot`, uses the same ``error_model`` and releases the GIL
too). Nothing here imports numba until a kernel is defined: with the ahead-of-time
kernels a process never imports numba.

Compiled JIT kernels are cached on disk (``cache=True``). When the package directory
is not writable (a system-wide or read-only install) numba falls back to a per-user
cache directory by itself; ``NUMBA_CACHE_DIR`` overrides both.
"""

from __future__ import annotations

import os

__all__ = ["JIT_OPTIONS", "jit", "aot_enabled"]

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


def aot_enabled() -> bool:
    """False when ``BITNET_AOT=0`` (pure JIT, numba's on-disk cache)."""
    return os.environ.get("BITNET_AOT", "1").strip().lower() not in ("0", "false", "no", "off")
