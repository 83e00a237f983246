"""The values flowing through a graph and what each layer does to them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ValueInfo", "LayerInfo"]


@dataclass(frozen=True)
class ValueInfo:
    """Kind and per-example shape of a value flowing through the graph.

    ``kind`` is ``"real"`` (float32), ``"levels"`` (uint8), ``"bits"`` (uint64, packed
    along the last axis) or ``"int"`` (int32). ``shape`` excludes the batch axis and is
    the array's shape (for bits: words on the last axis); ``channels`` is the true
    channel count (for bits: before packing). ``bits`` is k for levels.
    """

    kind: str
    shape: tuple
    channels: int
    bits: int = 0

    @property
    def dtype(self):
        return {"real": np.float32, "levels": np.uint8, "bits": np.uint64, "int": np.int32}[self.kind]

    @property
    def logical_shape(self):
        """Shape with the true channel count on the last axis (what a float model sees)."""
        return self.shape[:-1] + (self.channels,)

    @property
    def nbytes(self):
        """Bytes of one example of this value."""
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


@dataclass
class LayerInfo:
    """What one layer does: shapes in and out, and its counts per example
    (:class:`bitnet.ops.Counts`, defined once per op).

    ``macs`` counts multiply-accumulates of any kind (binary weight × bit, k-bit level
    × ±1 weight, float × float, one pool window element); ``binary_macs`` the
    bit-level xor+popcount work (a ``qconv`` MAC on k-bit levels is k of them, one per
    bitplane); ``weight_bytes`` the bytes of the layer's tensors as stored in the
    model; ``kind`` is ``binary``, ``float`` (has float tensors) or ``-``.
    """

    index: int
    name: str
    op: str
    inputs: list
    output: str
    in_info: list
    out_info: ValueInfo
    params: int = 0
    macs: int = 0
    binary_macs: int = 0
    weight_bytes: int = 0
    kind: str = "-"
    attrs: dict = field(default_factory=dict)
