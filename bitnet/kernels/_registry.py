"""Every compiled kernel of the executor, by name: ahead-of-time code when available,
else numba's JIT.

:data:`KERNELS` is the one list both sides read: the ahead-of-time builder
(:mod:`bitnet._aot`) exports each entry's serial function under its name with its
signature, and :func:`get` returns the exported function, or the numba dispatcher
when there is no ahead-of-time module (``BITNET_AOT=0``, a failed build, an
unsupported platform). More than one thread runs the same serial kernels on parts of
the output rows from Python threads (:mod:`bitnet._threads`), so the ahead-of-time
module serves every thread count.

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

#: name -> (kernel module, function, AOT signature)
KERNELS = {
    # the instruction-set path the kernels were compiled for (bitnet.kernels.isa)
    "isa_code": ("bitnet.kernels.probe", "_isa_code_kernel", "i8(i8)"),
    # waiting and signalling of the thread pool (bitnet._threads)
    "spin_until": ("bitnet.kernels.sync", "_spin_until", "i8(i8[::1], i8, i8, i8)"),
    "publish": ("bitnet.kernels.sync", "_publish", "void(i8[::1], i8, i8)"),
    "pool_worker": ("bitnet.kernels.worker", "_pool_worker", "i8(i8[::1], i8[:, ::1], i8, i8)"),
    "bconv": ("bitnet.kernels.bconv", "_bconv_kernel", f"void({_B4}, u8[:, :, ::1], i8[::1], f4[::1], {_B4}, {_I4}, {_F4})"),
    "qconv": ("bitnet.kernels.qconv", "_qconv_kernel", f"void(u1[:, :, :, ::1], f4[:, :, ::1], i8[::1], f4[::1], {_B4}, {_I4}, {_F4})"),
    "quantize": ("bitnet.kernels.sign", "_quantize_kernel", "void(f4[::1], f4, f4, f4, u1[::1])"),
    "sign": ("bitnet.kernels.sign", "_sign_kernel", "void(f4[:, ::1], f4[::1], b1, u8[:, ::1])"),
    "maxpool_bits": ("bitnet.kernels.pool", "_maxpool_bits_kernel", f"void({_B4}, i8, i8, i8, i8, {_B4})"),
    "pool_real": ("bitnet.kernels.pool", "_pool_real_kernel", f"void({_F4}, i8, i8, i8, i8, b1, {_F4})"),
    "gap_real": ("bitnet.kernels.pool", "_gap_real_kernel", f"void({_F4}, f4[:, ::1])"),
    "gap_bits": ("bitnet.kernels.pool", "_gap_bits_kernel", f"void({_B4}, i8, f4[:, ::1])"),
    # fused chains (bitnet.kernels.fused): the flattened variant has a 2-D output
    "bconv_pool_sign": ("bitnet.kernels.fused", "_bconv_pool_sign_kernel", f"void({_B4}, u8[:, :, ::1], i8[::1], f4[::1], i8[::1], f4[::1], b1, {_B4})"),
    "bconv_pool_sign_flat": ("bitnet.kernels.fused", "_bconv_pool_sign_kernel", f"void({_B4}, u8[:, :, ::1], i8[::1], f4[::1], i8[::1], f4[::1], b1, u8[:, ::1])"),
    "quantize_qconv": ("bitnet.kernels.fused", "_quantize_qconv_kernel", f"void({_F4}, f4, f4, f4, f4[:, :, ::1], i8[::1], f4[::1], {_B4})"),
    "dense_bits": ("bitnet.kernels.head", "_dense_bits_kernel", "void(u8[:, ::1], i8, f4[:, ::1], f4[::1], f4[:, ::1])"),
    # fused real-valued chains of residual networks (bitnet.kernels.pool)
    "add_maxpool_real": ("bitnet.kernels.pool", "_add_maxpool_real_kernel", f"void({_F4}, {_F4}, i8, i8, i8, i8, {_F4})"),
    "pool_sign": ("bitnet.kernels.pool", "_pool_sign_kernel", f"void({_F4}, {_F4}, b1, i8, i8, i8, i8, f4[::1], b1, {_F4}, {_B4})"),
    "add_sign": ("bitnet.kernels.pool", "_add_sign_kernel", "void(f4[:, ::1], f4[:, ::1], f4[::1], b1, f4[:, ::1], u8[:, ::1])"),
}

_lock = threading.Lock()
_cache: dict = {}


def aot_enabled() -> bool:
    """False when ``BITNET_AOT=0`` (pure JIT, numba's on-disk cache)."""
    return os.environ.get("BITNET_AOT", "1").strip().lower() not in ("0", "false", "no", "off")


def jit_kernel(name: str):
    """The numba dispatcher of kernel ``name`` (imports numba and the kernel module)."""
    mod, fn, _ = KERNELS[name]
    return getattr(importlib.import_module(mod), fn)


def get(name: str):
    """The kernel ``name``: the ahead-of-time function when the AOT module is
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


def _reset() -> None:
    """Forget resolved kernels (tests switch ``BITNET_AOT`` or the cache directory)."""
    with _lock:
        _cache.clear()
