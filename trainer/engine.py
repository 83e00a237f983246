"""What a trainer module needs to emit its engine ops: the graph being built and the
packing helpers. Every module that exports carries ``to_engine(em, v)``: it appends its
op(s) to ``em`` (an :class:`Emitter`) reading the value named ``v`` and returns the
name of the value it makes. ``trainer.export.to_graph`` only walks the model's layers
and calls it (no table of types); the ops themselves are defined, checked and counted
by the engine (:mod:`bitnet.ops`).

No torch import at module level is needed here; the modules hand in NumPy arrays.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ExportError", "Emitter", "pack", "binary_weight", "pool_attrs", "to_numpy"]


class ExportError(RuntimeError):
    """The model cannot be exported, or the engine disagrees with PyTorch."""


def pack(w_signs_last: np.ndarray) -> np.ndarray:
    """Pack +-1 values along the last axis (bit set iff value < 0)."""
    from bitnet.packing import pack_signs

    return pack_signs(np.ascontiguousarray(w_signs_last, dtype=np.float32), axis=-1)


def to_numpy(t) -> np.ndarray:
    """A parameter as a float32 NumPy array."""
    return t.detach().cpu().numpy().astype(np.float32)


def binary_weight(conv) -> np.ndarray:
    """``sign(W_latent)`` of a binary layer as float32 +-1 (sign(0) = +1)."""
    w = to_numpy(conv.weight)
    return np.where(w >= 0, np.float32(1), np.float32(-1))


def pool_attrs(m) -> dict:
    """``kernel``/``stride`` of a torch pool; pools must be valid (no padding, no ceil)."""
    k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size, m.kernel_size)
    s = m.stride if isinstance(m.stride, tuple) else (m.stride, m.stride)
    pad = m.padding if isinstance(m.padding, tuple) else (m.padding, m.padding)
    if any(pad) or getattr(m, "ceil_mode", False):
        raise ExportError("pools must be 'valid' (no padding, no ceil mode)")
    return {"kernel": list(k), "stride": list(s)}


class Emitter:
    """The graph being emitted: layers, tensors, and the kind and channel count of
    every value so far (for the modules' own input checks)."""

    def __init__(self):
        self.layers, self.tensors = [], {}
        self.kind = {"input": "real"}
        self.channels = {"input": 1}
        self.names = set()

    def name(self, base):
        i = 0
        while f"{base}{i}" in self.names:
            i += 1
        n = f"{base}{i}"
        self.names.add(n)
        return n

    def need(self, v, kind, what, hint=""):
        """Raise :class:`ExportError` ``"<what>, got <kind of v><hint>"`` unless value
        ``v`` is of ``kind``."""
        if self.kind[v] != kind:
            raise ExportError(f"{what}, got {self.kind[v]}{hint}")

    def add(self, op, inputs, attrs=None, tensors=None, kind="real", channels=None, base=None):
        """Append one layer; return the name of its output value."""
        name = self.name(base or op)
        refs = {}
        for role, arr in (tensors or {}).items():
            tname = f"{name}.{role}"
            self.tensors[tname] = arr
            refs[role] = tname
        layer = {"name": name, "op": op, "inputs": list(inputs), "output": name,
                 "attrs": dict(attrs or {})}
        if refs:
            layer["tensors"] = refs
        self.layers.append(layer)
        self.kind[name] = kind
        self.channels[name] = channels if channels is not None else self.channels[inputs[0]]
        return name
