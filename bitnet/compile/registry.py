"""A compiled kernel by name: ahead-of-time code when available, else numba's JIT.

:func:`get` returns the function exported by the ahead-of-time module (built on first
use, :mod:`.aot`), or the numba dispatcher when there is no such module
(``BITNET_AOT=0``, a failed build, an unsupported platform). More than one thread runs
the same serial kernels on parts of the output rows from Python threads
(:mod:`bitnet._threads`), so the ahead-of-time module serves every thread count.
The names and signatures are those of :mod:`.table`.

This module imports neither numba nor a kernel module until a JIT kernel is asked for.
"""

from __future__ import annotations

import importlib
import threading

from .options import aot_enabled

__all__ = ["get", "jit_kernel", "aot_enabled", "aot_active", "is_aot", "KERNELS"]

_lock = threading.Lock()
_cache: dict = {}


def __getattr__(name):
    if name == "KERNELS":       # the table, read on demand (it imports the op registry)
        from .table import kernels

        return kernels()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def jit_kernel(name: str):
    """The numba dispatcher of kernel ``name`` (imports numba and the kernel module)."""
    from .table import spec

    mod, fn, _ = spec(name)
    return getattr(importlib.import_module(mod), fn)


def get(name: str):
    """The kernel ``name``: the ahead-of-time function when the AOT module is
    available (built on first use, see :mod:`.aot`), else the JIT dispatcher."""
    key = (name, aot_enabled())
    fn = _cache.get(key)
    if fn is not None:
        return fn
    with _lock:
        fn = _cache.get(key)
        if fn is None:
            if key[1]:
                from . import aot

                mod = aot.load()
                fn = getattr(mod, name, None) if mod is not None else None
            if fn is None:
                fn = jit_kernel(name)
            _cache[key] = fn
    return fn


def aot_active() -> bool:
    """True if the serial kernels come from the ahead-of-time module (already loaded or
    loadable now; never builds it)."""
    if not aot_enabled():
        return False
    from . import aot

    return aot.load(build=False) is not None


def is_aot(fn) -> bool:
    """True if ``fn`` (from :func:`get`) is ahead-of-time code, not a numba dispatcher."""
    return type(fn).__name__ == "builtin_function_or_method"


def _reset() -> None:
    """Forget resolved kernels (tests switch ``BITNET_AOT`` or the cache directory)."""
    with _lock:
        _cache.clear()
