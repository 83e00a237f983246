"""Every compiled kernel of the executor, by name: ahead-of-time code when available,
else numba's JIT.

:data:`KERNELS` is the one list both sides read: the ahead-of-time builder
(:mod:`bitnet._aot`) exports each entry's serial function under its name with its
signature, and :func:`get` returns the exported function, or the numba dispatcher
when there is no ahead-of-time module (``BITNET_AOT=0``, a failed build, an
unsupported platform). The parallel twins (``prange``, ``parallel=True``) are JIT only
(:func:`get_parallel`): pycc has no threading layer.

To add a kernel: define it (``@jit()``) in a kernel module, add a line here with the
exact types its callers pass (C-contiguous arrays: ``[:, ::1]`` layouts; Python ints
are ``i8``), and call it through :func:`get`. The exported functions check nothing:
an argument of another dtype, rank or layout than the signature is undefined
behaviour (a wrong result or a crash), so only prepared call sites (the graph
executor, :class:`~bitnet.kernels.bconv_layer.BConv`,
:class:`~bitnet.kernels.qconv_layer.QConv`) use the registry.

This module imports neither numba nor a kernel module until a JIT kernel is asked for.
"""

from __future__ import annotations

import importlib
import os
import threading

_B4 = "u8[:, :, :, ::1]"     # packed bits (N, H, W, Cw)
_I4 = "i4[:, :, :, ::1]"
_F4 = "f4[:, :, :, ::1]"

#: name -> (kernel module, serial function, parallel twin or None, AOT signature)
KERNELS = {
    "bconv": ("bitnet.kernels.bconv", "_bconv_kernel", "_bconv_kernel_parallel",
              f"void({_B4}, u8[:, :, ::1], i8[::1], f4[::1], {_B4}, {_I4}, {_F4})"),
    "qconv": ("bitnet.kernels.qconv", "_qconv_kernel", "_qconv_kernel_parallel",
              f"void(u1[:, :, :, ::1], f4[:, :, ::1], i8[::1], f4[::1], {_B4}, {_I4}, {_F4})"),
    "quantize": ("bitnet.kernels.sign", "_quantize_kernel", None, "void(f4[::1], f4, f4, f4, u1[::1])"),
    "sign": ("bitnet.kernels.sign", "_sign_kernel", None, "void(f4[:, ::1], f4[::1], b1, u8[:, ::1])"),
    "maxpool_bits": ("bitnet.kernels.pool", "_maxpool_bits_kernel", None,
                     f"void({_B4}, i8, i8, i8, i8, {_B4})"),
    "pool_real": ("bitnet.kernels.pool", "_pool_real_kernel", None, f"void({_F4}, i8, i8, i8, i8, b1, {_F4})"),
    "gap_real": ("bitnet.kernels.pool", "_gap_real_kernel", None, f"void({_F4}, f4[:, ::1])"),
    "gap_bits": ("bitnet.kernels.pool", "_gap_bits_kernel", None, f"void({_B4}, i8, f4[:, ::1])"),
    # fused chains (bitnet.kernels.fused): the flattened variant has a 2-D output
    "bconv_pool_sign": ("bitnet.kernels.fused", "_bconv_pool_sign_kernel", None,
                        f"void({_B4}, u8[:, :, ::1], i8[::1], f4[::1], i8[::1], f4[::1], b1, {_B4})"),
    "bconv_pool_sign_flat": ("bitnet.kernels.fused", "_bconv_pool_sign_kernel", None,
                             f"void({_B4}, u8[:, :, ::1], i8[::1], f4[::1], i8[::1], f4[::1], b1, u8[:, ::1])"),
    "quantize_qconv": ("bitnet.kernels.fused", "_quantize_qconv_kernel", None,
                       f"void({_F4}, f4, f4, f4, f4[:, :, ::1], i8[::1], f4[::1], {_B4})"),
    "dense_bits": ("bitnet.kernels.head", "_dense_bits_kernel", None,
                   "void(u8[:, ::1], i8, f4[:, ::1], f4[::1], f4[:, ::1])"),
    # fused real-valued chains of residual networks (bitnet.kernels.pool)
    "add_maxpool_real": ("bitnet.kernels.pool", "_add_maxpool_real_kernel", None,
                         f"void({_F4}, {_F4}, i8, i8, i8, i8, {_F4})"),
    "pool_sign": ("bitnet.kernels.pool", "_pool_sign_kernel", None,
                  f"void({_F4}, {_F4}, b1, i8, i8, i8, i8, f4[::1], b1, {_F4}, {_B4})"),
    "add_sign": ("bitnet.kernels.pool", "_add_sign_kernel", None,
                 "void(f4[:, ::1], f4[:, ::1], f4[::1], b1, f4[:, ::1], u8[:, ::1])"),
}

_lock = threading.Lock()
_cache: dict = {}


def aot_enabled() -> bool:
    """False when ``BITNET_AOT=0`` (pure JIT, numba's on-disk cache)."""
    return os.environ.get("BITNET_AOT", "1").strip().lower() not in ("0", "false", "no", "off")


def jit_kernel(name: str, parallel: bool = False):
    """The numba dispatcher of kernel ``name`` (imports numba and the kernel module)."""
    mod, serial, par, _ = KERNELS[name]
    if parallel and par is None:
        raise KeyError(f"kernel {name!r} has no parallel twin")
    return getattr(importlib.import_module(mod), par if parallel else serial)


def get(name: str):
    """The serial kernel ``name``: the ahead-of-time function when the AOT module is
    available (built on first use, see :mod:`bitnet._aot`), else the JIT dispatcher."""
    key = (name, aot_enabled())
    fn = _cache.get(key)
    if fn is not None:
        return fn
    with _lock:
        fn = _cache.get(key)
        if fn is None:
            if key[1]:
                from .. import _aot

                mod = _aot.load()
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
    from .. import _aot

    return _aot.load(build=False) is not None


def is_aot(fn) -> bool:
    """True if ``fn`` (from :func:`get`) is ahead-of-time code, not a numba dispatcher."""
    return type(fn).__name__ == "builtin_function_or_method"


class _LazyParallel:
    """The parallel twin of a kernel, imported (with numba) on its first call only, so
    that preparing a graph never imports numba."""

    __slots__ = ("name", "fn")

    def __init__(self, name):
        self.name = name
        self.fn = None

    def __call__(self, *args):
        fn = self.fn
        if fn is None:
            fn = self.fn = jit_kernel(self.name, parallel=True)
        return fn(*args)


def get_parallel(name: str):
    """The parallel (``prange``) twin of kernel ``name``: JIT only, resolved lazily."""
    if KERNELS[name][2] is None:
        raise KeyError(f"kernel {name!r} has no parallel twin")
    return _LazyParallel(name)


def _reset() -> None:
    """Forget resolved kernels (tests switch ``BITNET_AOT`` or the cache directory)."""
    with _lock:
        _cache.clear()
