"""The ops of the graph, one definition each: the registry every tool reads.

Each module of this package defines one op (or a small family sharing code, such
as the pools) as a subclass of :class:`~bitnet.ops._base.Op` decorated with
:func:`register`. The graph executor (:mod:`bitnet.graph`), ``bitnet summary``
(:mod:`bitnet.summary`), the exporter's checks and table (``trainer/export.py``) and
the ahead-of-time build (:mod:`bitnet.compile.table`) all look ops up here; none of
them knows an op by name. Modules are found by listing the package, so adding an op
means adding a module (docs/architecture.md, "Adding an op").

Importing this package imports neither numba nor any kernel module.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading

from ._base import Bound, Check, Counts, Op

__all__ = ["Op", "Check", "Counts", "Bound", "register", "get", "names", "all_ops"]

_REGISTRY: dict = {}
_lock = threading.Lock()
_loaded = False


def register(cls):
    """Class decorator: make ``cls`` (an :class:`Op` subclass) the op ``cls.name``."""
    if not cls.name or cls.name in _REGISTRY:
        raise RuntimeError(f"op {cls.name!r}: empty or registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    with _lock:
        if not _loaded:
            for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
                if not m.name.startswith("_"):
                    importlib.import_module(f"{__name__}.{m.name}")
            _loaded = True


def get(name):
    """The :class:`Op` called ``name``, or None."""
    _load()
    return _REGISTRY.get(name) if isinstance(name, str) else None


def names() -> tuple:
    """Every op name, in registration order."""
    _load()
    return tuple(_REGISTRY)


def all_ops() -> tuple:
    """Every :class:`Op`, in registration order."""
    _load()
    return tuple(_REGISTRY.values())
