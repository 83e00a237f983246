"""What an op is: the :class:`Op` base class and the checks every op shares.

An op definition (one module per op in this package) says, once, everything the
engine, ``bitnet summary``, the exporter and the ahead-of-time build need to know:

* :attr:`Op.name`, :attr:`Op.n_inputs`, the attributes it takes and their validation,
  the tensors it reads (dtype, shape, finite values) and the kind and shape of its
  output: :meth:`Op.check`, which also counts its parameters, MACs, binary MACs and
  bytes (:class:`Counts`);
* its NumPy reference: :meth:`Op.reference` (the specification);
* its fast step on the compiled kernels: :meth:`Op.bind`, and :attr:`Op.kernels`, the
  compiled kernels it calls with their exact ahead-of-time signatures (read by
  :mod:`bitnet.compile.table`);
* the fused chains that start at it: :attr:`Op.fusions` (:mod:`bitnet.graph.fusion`).

:meth:`Op.check` never touches a kernel, so ``bitnet summary`` and the exporter's
table run without compiling anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError
from ..graph.values import ValueInfo
from ..packing import n_words

__all__ = ["Op", "Counts", "Check", "Bound", "OUTPUT_TENSORS", "out_value"]

#: the per-channel tensors of each binary-layer output mode (docs/graph.md)
OUTPUT_TENSORS = {"int": {}, "threshold": {"thresh": np.int32, "thresh_sign": np.int32},
                  "affine": {"scale": np.float32, "bias": np.float32}}


@dataclass
class Counts:
    """What a layer costs, per example.

    ``params``: logical parameters (one per binary weight, not per word, plus every
    per-channel value); ``macs``: multiply-accumulates of any kind (a binary weight ×
    a ±1 bit, a k-bit level × a ±1 weight, a float × a float, one window element of a
    pool); ``binary_macs``: the bit-level work of xor+popcount, one per bit of an
    operand pair (a ``bconv``/``bdense`` MAC is one, a ``qconv`` MAC on k-bit levels is
    k: one per bitplane, docs/design.md §2); ``weight_bytes``: the bytes of the layer's
    tensors as stored in the model file.
    """

    params: int = 0
    macs: int = 0
    binary_macs: int = 0
    weight_bytes: int = 0


@dataclass
class Bound:
    """The compiled side of a layer: its fast step, the step that splits the work
    across threads (None: the serial step serves every thread count), and what a
    fused chain needs to know of it (None: it joins no chain)."""

    step: object
    step_par: object = None
    fuse: object = None


def out_value(output, shape_hw, c_out):
    """The value a binary layer with output mode ``output`` makes."""
    if output == "threshold":
        return ValueInfo("bits", shape_hw + (n_words(c_out),), c_out)
    if output == "int":
        return ValueInfo("int", shape_hw + (c_out,), c_out)
    return ValueInfo("real", shape_hw + (c_out,), c_out)


class Check:
    """One layer being checked: its where-string, attributes, tensor roles, the
    model's tensors and its input values, with the checks every op shares. Each raises
    :class:`bitnet.ParameterError` naming the layer (the loader turns it into a
    :class:`bitnet.ModelFileError` naming the file)."""

    def __init__(self, where, attrs, troles, tensors, inputs):
        self.where = where
        self.attrs = attrs
        self.troles = troles
        self.tensors = tensors
        self.inputs = inputs

    def fail(self, msg):
        raise ParameterError(f"{self.where}: {msg}")

    def allowed(self, required, optional=()):
        missing = [k for k in required if k not in self.attrs]
        if missing:
            self.fail(f"missing attribute(s) {missing}")
        extra = set(self.attrs) - set(required) - set(optional)
        if extra:
            self.fail(f"unknown attribute(s) {sorted(extra)}; allowed: {sorted(set(required) | set(optional))}")

    def roles(self, allowed):
        extra = set(self.troles) - set(allowed)
        if extra:
            self.fail(f"unknown tensor role(s) {sorted(extra)}; allowed: {sorted(allowed)}")

    def kind(self, v, kinds, ndim=None):
        if v.kind not in kinds:
            self.fail(f"input is {v.kind} but this op takes {' or '.join(kinds)}")
        if ndim is not None and len(v.shape) + 1 != ndim:
            self.fail(f"input must be {ndim}-d (with batch), got shape (N, {', '.join(map(str, v.shape))})")

    def tensor(self, role, dtype, shape, required=True):
        """The tensor of ``role``: present, a NumPy array of ``dtype`` and ``shape``,
        and, for floats, finite (a NaN or infinite scale or bias would make every
        answer NaN)."""
        tname = self.troles.get(role)
        if tname is None:
            if required:
                self.fail(f"tensors has no {role!r} entry")
            return None
        if tname not in self.tensors:
            self.fail(f"tensor {tname!r} ({role}) is missing")
        t = self.tensors[tname]
        if not isinstance(t, np.ndarray):
            self.fail(f"tensor {tname!r} ({role}) is not a numpy array")
        if t.dtype != np.dtype(dtype) or t.shape != tuple(shape):
            self.fail(f"tensor {tname!r} ({role}) must be {np.dtype(dtype).name} {tuple(shape)}, got {t.dtype} {t.shape}")
        if t.dtype.kind == "f" and not np.isfinite(t).all():
            bad = int(np.size(t) - np.count_nonzero(np.isfinite(t)))
            self.fail(f"tensor {tname!r} ({role}) holds {bad} NaN or infinite value(s)")
        return np.ascontiguousarray(t)

    def pos_int(self, key):
        v = self.attrs.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            self.fail(f"attribute {key!r} must be a positive integer, got {v!r}")
        return int(v)

    def int_pair(self, v, what):
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            v = [v, v]
        if (not isinstance(v, (list, tuple)) or len(v) != 2
                or not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) and i >= 1 for i in v)):
            self.fail(f"{what} must be two positive integers, got {v!r}")
        return int(v[0]), int(v[1])

    def channels_match(self, key, v, noun="channels"):
        c = self.pos_int(key)
        if c != v.channels:
            self.fail(f"{key}={c} but the input has {v.channels} {noun}")
        return c

    def out_tensors(self, c_out, extra_roles=("weight",)):
        """The per-channel tensors of the ``output`` attribute's mode: ``(output,
        {role: array}, bytes)``."""
        output = self.attrs.get("output")
        if output not in OUTPUT_TENSORS:
            self.fail(f"attribute 'output' must be one of {sorted(OUTPUT_TENSORS)}, got {output!r}")
        self.roles(set(extra_roles) | set(OUTPUT_TENSORS[output]))
        got = {r: self.tensor(r, dt, (c_out,)) for r, dt in OUTPUT_TENSORS[output].items()}
        if output == "threshold" and not np.isin(got["thresh_sign"], (-1, 1)).all():
            self.fail("thresh_sign must hold only +1 and -1")
        return output, got, sum(t.nbytes for t in got.values())


class Op:
    """One op of the graph (docs/graph.md "Layers"). Subclass it in a module of
    :mod:`bitnet.ops` and decorate the class with :func:`bitnet.ops.register`.

    Attributes
    ----------
    name : str
        The op name in model files.
    n_inputs : int
        How many values it reads.
    binary : bool
        A binary layer (``bitnet summary``'s kind column).
    kernels : dict of str -> (module, function, signature)
        The compiled kernels :meth:`bind` asks :func:`bitnet.compile.registry.get` for,
        with the exact ahead-of-time signature of each (C-contiguous ``[:, ::1]``
        layouts; Python ints are ``i8``).
    fusions : tuple of callables
        Chains that start at this op, tried in order by :mod:`bitnet.graph.fusion`:
        ``match(prepared, i, private) -> (step, n_layers) or None``.
    """

    name = ""
    n_inputs = 1
    binary = False
    kernels: dict = {}
    fusions: tuple = ()

    def check(self, c: Check):
        """Validate the layer; return ``(out, counts, p)``: the output
        :class:`~bitnet.graph.values.ValueInfo`, its :class:`Counts` and whatever
        :meth:`reference` and :meth:`bind` need (``p``, any object)."""
        raise NotImplementedError

    def reference(self, c: Check, p):
        """The NumPy reference step (arrays in, array out)."""
        raise NotImplementedError

    def bind(self, c: Check, p, info) -> Bound:
        """The fast step on the compiled kernels (no checks at run time); ``info`` is
        the layer's :class:`~bitnet.graph.values.LayerInfo` (output value, counts)."""
        raise NotImplementedError

    def kind(self, layer) -> str:
        """``bitnet summary``'s kind column: binary, float (has float tensors) or -."""
        if self.binary:
            return "binary"
        return "float" if layer.get("tensors") else "-"
