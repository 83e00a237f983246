"""Every compiled kernel by name, with the exact ahead-of-time signature.

The table is what both sides read: the ahead-of-time builder (:mod:`.aot`) exports
each entry under its name with its signature, and :func:`bitnet.compile.registry.get`
returns the exported function or, without the module, numba's dispatcher. The ops'
kernels come from the op definitions (:attr:`bitnet.ops.Op.kernels`); the kernels of
the thread pool and the instruction-set probe, which belong to no op, are listed here.

Signatures use C-contiguous layouts (``[:, ::1]``); Python ints are ``i8``. The
exported functions check nothing: an argument of another dtype, rank or layout than
the signature is undefined behaviour (a wrong result or a crash), so only prepared
call sites (the ops' :meth:`~bitnet.ops.Op.bind`, the layer classes of
:mod:`bitnet.kernels`) call them.
"""

from __future__ import annotations

__all__ = ["BASE", "kernels", "spec"]

#: name -> (kernel module, function, AOT signature) of the kernels that belong to no op
BASE = {
    # the instruction-set path the kernels were compiled for (bitnet.kernels.isa)
    "isa_code": ("bitnet.kernels.probe", "_isa_code_kernel", "i8(i8)"),
    # waiting and signalling of the thread pool (bitnet._threads)
    "spin_until": ("bitnet.kernels.sync", "_spin_until", "i8(i8[::1], i8, i8, i8)"),
    "publish": ("bitnet.kernels.sync", "_publish", "void(i8[::1], i8, i8)"),
    # the pool threads' native loop: convolution parts as job rows (bitnet.kernels.worker)
    "pool_worker": ("bitnet.kernels.worker", "_pool_worker", "i8(i8[::1], i8[:, ::1], i8, i8)"),
}

_table = None


def kernels() -> dict:
    """name -> (module, function, signature) of every kernel (built once)."""
    global _table
    if _table is None:
        from .. import ops

        t = dict(BASE)
        for op in ops.all_ops():
            for name, entry in op.kernels.items():
                if t.setdefault(name, entry) != entry:
                    raise RuntimeError(f"kernel {name!r}: op {op.name!r} declares it differently")
        _table = t
    return _table


def spec(name: str):
    """``(module, function, signature)`` of kernel ``name`` (KeyError if unknown)."""
    return kernels()[name]
