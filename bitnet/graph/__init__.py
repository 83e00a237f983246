"""The graph: values (:mod:`.values`), the executor (:mod:`.executor`) and fusion
planning (:mod:`.fusion`); the ops themselves are defined in :mod:`bitnet.ops`.

``from bitnet.graph import Graph`` is the entry point.
"""

from __future__ import annotations

from .values import LayerInfo, ValueInfo  # noqa: I001  (first: the ops import it)
from .executor import Graph

__all__ = ["Graph", "ValueInfo", "LayerInfo", "OPS", "PARALLEL_MIN_WORK"]


def __getattr__(name):
    # OPS and PARALLEL_MIN_WORK come from the op registry, which imports this package
    if name == "OPS":
        from .. import ops

        return ops.names()
    if name == "PARALLEL_MIN_WORK":
        from ..ops._conv import PARALLEL_MIN_WORK

        return PARALLEL_MIN_WORK
    raise AttributeError(f"module 'bitnet.graph' has no attribute {name!r}")
