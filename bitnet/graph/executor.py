"""The graph executor: validates a layer list once, prepares every kernel, runs it.

A graph is the ordered list of layers of docs/graph.md plus a dict of named arrays.
:class:`Graph` checks the whole graph at construction (op names, the number and kinds
of inputs, inputs produced before use, output names) and asks each layer's op
(:mod:`bitnet.ops`, one definition per op) to check its attributes and tensors, infer
its output value and count its work; then it binds every op to its compiled kernels
(re-tiling the weights, precomputing every per-layer constant) and plans the fused
chains (:mod:`.fusion`), so that :meth:`Graph.run` does nothing per layer but
allocate the output and call one compiled kernel. :meth:`Graph.run_reference` runs
the same graph with the ops' NumPy references only (slow; for debugging a model).
``Graph(..., bind=False)`` stops after the checks (no kernel is touched): what
``bitnet summary`` and the exporter's table read.

Thread safety: a prepared graph holds no mutable state; every call allocates its own
values, so one :class:`Graph` may run in several Python threads at once (the kernels
release the GIL). With one thread (the default, :func:`bitnet.set_num_threads`) each
kernel runs once in the calling thread; with more, the large convolutions run in
parts of their output rows on a pool of Python threads (:mod:`bitnet._threads`),
with results identical for any thread count.

Example
-------
>>> from bitnet.testing.workloads import kws_bnn_m
>>> g = Graph(*kws_bnn_m())                                 # doctest: +SKIP
>>> g.run(np.zeros((1, 40, 101), np.float32)).shape         # doctest: +SKIP
(1, 10)
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from ..packing import n_words
from .values import LayerInfo, ValueInfo

__all__ = ["Graph"]

_LAYER_KEYS = {"name", "op", "inputs", "output", "attrs", "tensors"}


class _Layer:
    """A checked layer: its info, op, and (when bound) fast and reference steps."""

    __slots__ = ("info", "op", "step", "step_par", "ref", "fuse")

    def __init__(self, info, op):
        self.info = info
        self.op = op
        self.step = self.step_par = self.ref = self.fuse = None


class Graph:
    """A validated, prepared graph of bitnet layers.

    Parameters
    ----------
    layers : list of dict
        Layers of docs/graph.md (``name``, ``op``, ``inputs``, ``output``, ``attrs``,
        ``tensors``), in execution order.
    tensors : dict of str -> numpy.ndarray
        The arrays the layers name (canonical layouts of docs/design.md §2).
    input_shape : tuple
        Per-example input shape ``(n_mels, frames, 1)`` (``(H, W, C)``).
    output : str, optional
        Name of the value :meth:`run` returns (default: the last layer's output).
    input_kind : ``"real"`` (default) or ``"bits"``
        ``"bits"`` makes the input packed uint64 ``(N, H, W, ceil(C/64))`` (used to
        benchmark single binary layers, packed bits in → packed bits out).
    fuse : bool
        Replace chains of layers by fused kernels in :meth:`run` (default; identical
        results, :mod:`bitnet.graph.fusion`); ``False`` runs one kernel per layer.
    bind : bool
        Prepare the kernels and references (default). ``False`` only checks the graph
        and fills :attr:`value_info` and :attr:`layer_info` (no kernel is loaded or
        compiled); such a graph cannot run.

    Attributes
    ----------
    value_info : dict of str -> ValueInfo
        Kind and shape of every value, ``"input"`` included.
    layer_info : list of LayerInfo
        Per layer: input/output kinds and shapes, parameters, MACs, binary MACs,
        weight bytes (the op's own counts).
    fused : list of tuple of str
        The chains of layers :meth:`run` runs as one fused kernel (layer names).

    Raises
    ------
    bitnet.ParameterError
        For anything malformed, naming the layer (index, name, op).
    """

    def __init__(self, layers, tensors, input_shape=(40, 101, 1), output=None, input_kind="real",
                 fuse=True, bind=True):
        if not isinstance(layers, (list, tuple)) or not layers:
            raise ParameterError("graph: layers must be a non-empty list of layer dicts")
        if not isinstance(tensors, dict):
            raise ParameterError("graph: tensors must be a dict of name -> array")
        shape = tuple(int(s) for s in input_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ParameterError(f"graph: input_shape must be (H, W, C) positive, got {input_shape!r}")
        if input_kind == "real":
            vin = ValueInfo("real", shape, shape[2])
        elif input_kind == "bits":
            vin = ValueInfo("bits", shape[:2] + (n_words(shape[2]),), shape[2])
        else:
            raise ParameterError(f"graph: input_kind must be 'real' or 'bits', got {input_kind!r}")
        self.input_shape = shape
        self.input_kind = input_kind
        self.value_info = {"input": vin}
        self.layer_info = []
        self.bound = bool(bind)
        self._tensors = tensors
        slots = {"input": 0}
        steps = []
        prepared_layers = []
        for i, layer in enumerate(layers):
            prepared = self._prepare(i, layer, bind)
            prepared_layers.append(prepared)
            info = prepared.info
            if info.output in slots:
                raise ParameterError(f"layer {i} {info.name!r} ({info.op}): output name {info.output!r} is already used by another value")
            slots[info.output] = len(slots)
            self.value_info[info.output] = info.out_info
            self.layer_info.append(info)
            steps.append((prepared.step, prepared.step_par or prepared.step, prepared.ref,
                          tuple(slots[n] for n in info.inputs), slots[info.output]))
        out = self.layer_info[-1].output if output is None else output
        if out not in slots:
            raise ParameterError(f"graph: output value {out!r} is not produced by any layer")
        self.output = out
        self._out_slot = slots[out]
        self._n_slots = len(slots)
        self._slot_names = {v: k for k, v in slots.items()}
        self.fused = []
        if not bind:
            return
        self._unfused = tuple((s[0], s[3], s[4]) for s in steps)
        self._unfused_par = tuple((s[1], s[3], s[4]) for s in steps)
        self._ref = tuple((s[2], s[3], s[4]) for s in steps)
        if fuse:
            from .fusion import plan

            self._fast, self._fast_par, self.fused = plan(prepared_layers, steps, slots, out)
        else:
            self._fast, self._fast_par = self._unfused, self._unfused_par

    # ------------------------------------------------------------------ running

    def _check_input(self, x):
        if not self.bound:
            raise ParameterError("graph: built with bind=False (checks only); it cannot run")
        vin = self.value_info["input"]
        x = np.asarray(x)
        if vin.kind == "real":
            h, w, c = self.input_shape
            if x.ndim == 3 and c == 1:
                x = x[..., None]
            if x.ndim != 4 or x.shape[1:] != (h, w, c):
                raise ParameterError(f"graph input must have shape (N, {h}, {w}) or (N, {h}, {w}, {c}), got {x.shape}")
            if x.dtype != np.float32:
                if x.dtype.kind not in "fiu":
                    raise ParameterError(f"graph input must be float32, got {x.dtype}")
                x = x.astype(np.float32)
        else:
            if x.dtype != np.uint64 or x.ndim != 4 or x.shape[1:] != vin.shape:
                raise ParameterError(f"graph input must be uint64 (N, {', '.join(map(str, vin.shape))}), got {x.dtype} {x.shape}")
        if x.shape[0] < 1:
            raise ParameterError("graph input has an empty batch")
        return np.ascontiguousarray(x)

    def _execute(self, plan, x, return_values):
        vals = [None] * self._n_slots
        vals[0] = x
        for fn, ins, o in plan:
            if len(ins) == 1:
                vals[o] = fn(vals[ins[0]])
            elif o.__class__ is tuple:      # a fused step with two outputs
                vals[o[0]], vals[o[1]] = fn(*[vals[i] for i in ins])
            else:
                vals[o] = fn(*[vals[i] for i in ins])
        if return_values:
            return vals[self._out_slot], {self._slot_names[k]: v for k, v in enumerate(vals)}
        return vals[self._out_slot]

    def run(self, x, return_values=False):
        """Run the graph with the compiled kernels.

        Parameters
        ----------
        x : float32 ``(N, n_mels, frames)`` or ``(N, n_mels, frames, 1)``
            (uint64 packed bits for a graph built with ``input_kind="bits"``).
        return_values : bool
            Also return a dict of every value by name (for tests and debugging).

        Returns
        -------
        numpy.ndarray
            The output value (float32 logits ``(N, n_classes)`` for a model);
            ``(output, values)`` with ``return_values=True``.
        """
        from ..parallel import ensure_threads

        x = self._check_input(x)
        par = ensure_threads() > 1
        if return_values:       # every value by name: the unfused plan
            plan = self._unfused_par if par else self._unfused
        else:
            plan = self._fast_par if par else self._fast
        return self._execute(plan, x, return_values)

    __call__ = run

    def run_reference(self, x, return_values=False):
        """Run the graph with the NumPy references only (slow; same arguments as :meth:`run`)."""
        x = self._check_input(x)
        return self._execute(self._ref, x, return_values)

    # ------------------------------------------------------------------ info

    @property
    def macs(self):
        """Total MACs per example (all kinds; :class:`~bitnet.graph.values.LayerInfo`)."""
        return sum(li.macs for li in self.layer_info)

    @property
    def binary_macs(self):
        """Total binary MACs per example (bit-level xor+popcount work)."""
        return sum(li.binary_macs for li in self.layer_info)

    @property
    def params(self):
        """Total parameters."""
        return sum(li.params for li in self.layer_info)

    def summary(self):
        """A plain-text table of the layers (name, op, in → out shapes, params, MACs,
        binary MACs, bytes)."""
        rows = [("layer", "op", "in", "out", "params", "MACs", "binary MACs", "bytes")]
        for li in self.layer_info:
            ins = ", ".join(f"{v.kind}{v.logical_shape}" for v in li.in_info)
            o = li.out_info
            rows.append((li.name, li.op, ins, f"{o.kind}{o.logical_shape}", str(li.params),
                         str(li.macs), str(li.binary_macs), str(li.weight_bytes)))
        widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)

    # ------------------------------------------------------------------ preparation

    def _prepare(self, i, layer, bind):
        from .. import ops
        from ..ops import Check

        if not isinstance(layer, dict):
            raise ParameterError(f"layer {i}: must be a dict, got {type(layer).__name__}")
        name = layer.get("name", f"#{i}")
        op_name = layer.get("op")
        where = f"layer {i} {name!r} ({op_name})"
        if not isinstance(name, str) or not name:
            raise ParameterError(f"layer {i}: name must be a non-empty string, got {name!r}")
        op = ops.get(op_name)
        if op is None:
            raise ParameterError(f"layer {i} {name!r}: unknown op {op_name!r}; known ops: {', '.join(ops.names())}")
        unknown = set(layer) - _LAYER_KEYS
        if unknown:
            raise ParameterError(f"{where}: unknown keys {sorted(unknown)}")
        inputs = layer.get("inputs")
        if isinstance(inputs, str):
            inputs = [inputs]
        n_in = op.n_inputs
        if not isinstance(inputs, (list, tuple)) or len(inputs) != n_in or not all(isinstance(s, str) for s in inputs):
            raise ParameterError(f"{where}: needs {n_in} input name(s), got {inputs!r}")
        for s in inputs:
            if s not in self.value_info:
                raise ParameterError(f"{where}: input {s!r} is not produced by an earlier layer (nor is it 'input')")
        out_name = layer.get("output", name)
        if not isinstance(out_name, str) or not out_name:
            raise ParameterError(f"{where}: output must be a non-empty string, got {out_name!r}")
        attrs = layer.get("attrs", {}) or {}
        troles = layer.get("tensors", {}) or {}
        if not isinstance(attrs, dict) or not isinstance(troles, dict):
            raise ParameterError(f"{where}: attrs and tensors must be dicts")
        in_info = [self.value_info[s] for s in inputs]
        c = Check(where, attrs, troles, self._tensors, in_info)
        out_info, counts, p = op.check(c)
        info = LayerInfo(i, name, op_name, list(inputs), out_name, in_info, out_info,
                         params=int(counts.params), macs=int(counts.macs), binary_macs=int(counts.binary_macs),
                         weight_bytes=int(counts.weight_bytes), kind=op.kind(layer), attrs=dict(attrs))
        lay = _Layer(info, op)
        if bind:
            lay.ref = op.reference(c, p)
            b = op.bind(c, p, info)
            lay.step, lay.step_par, lay.fuse = b.step, b.step_par, b.fuse
        return lay
