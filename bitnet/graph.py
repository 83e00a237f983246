"""The graph executor: validates a layer list once, prepares every kernel, runs it.

A graph is the ordered list of layers of docs/graph.md plus a dict of named arrays.
:class:`Graph` checks the whole graph at construction (op names, attributes, tensor
presence, dtype and shape, the kind and shape of every value flowing between layers,
inputs produced before use), infers the kind and shape of every value, re-tiles the
weights for the kernels, and precomputes every per-layer constant, so that
:meth:`Graph.run` does nothing per layer but allocate the output and call one compiled
kernel. :meth:`Graph.run_reference` runs the same graph with the NumPy references of
:mod:`bitnet.kernels.reference` only (slow; for debugging a model).

Thread safety: a prepared graph holds no mutable state; every call allocates its own
values, so one :class:`Graph` may run in several Python threads at once (the kernels
release the GIL). With one thread (the default, :func:`bitnet.set_num_threads`) the
serial twins of the kernels run and no threading layer is involved; with more, the
convolutions run their ``prange`` twins (numba's threading layer), split over output
rows, with results identical for any thread count.

Example
-------
>>> from bitnet.workloads import kws_bnn_m
>>> g = Graph(*kws_bnn_m())                                 # doctest: +SKIP
>>> g.run(np.zeros((1, 40, 101), np.float32)).shape         # doctest: +SKIP
(1, 10)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import ParameterError
from .kernels import _registry
from .kernels.geometry import conv_geometry, pool_geometry
from .packing import n_words

__all__ = ["Graph", "ValueInfo", "LayerInfo", "OPS"]

#: ops understood by the executor (docs/graph.md "Layers")
OPS = ("quantize", "qconv", "bconv", "bdense", "sign", "maxpool", "avgpool", "global_avgpool",
       "flatten", "dense", "add", "concat")

#: With more than one thread, a convolution runs its parallel twin only from this much
#: work per example (binary MACs): waking the other threads costs several µs, more than
#: a small layer gains (LC-BNN's layers all stay serial; KWS-BNN-M's all go parallel).
PARALLEL_MIN_WORK = 10_000_000

_NO_SHIFT = np.zeros(1, np.float32)

_OUTPUT_TENSORS = {"int": {}, "threshold": {"thresh": np.int32, "thresh_sign": np.int32},
                   "affine": {"scale": np.float32, "bias": np.float32}}


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
    """What one layer does: shapes in and out, parameter count, MACs and weight bytes.

    ``macs`` counts multiply-accumulates per example (binary MACs for ``bconv``/
    ``bdense``, integer level × ±1 MACs for ``qconv``, float MACs for ``dense``);
    ``weight_bytes`` the bytes of the layer's tensors as stored in the model.
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
    weight_bytes: int = 0
    attrs: dict = field(default_factory=dict)


def _int_pair(v, what, where):
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = [v, v]
    if (not isinstance(v, (list, tuple)) or len(v) != 2
            or not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) and i >= 1 for i in v)):
        raise ParameterError(f"{where}: {what} must be two positive integers, got {v!r}")
    return int(v[0]), int(v[1])


def _pos_int(attrs, key, where):
    v = attrs.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ParameterError(f"{where}: attribute {key!r} must be a positive integer, got {v!r}")
    return int(v)


class _Layer:
    """Validated layer: prepared fast step and reference step (both take arrays)."""

    __slots__ = ("info", "step", "step_par", "ref", "fuse")

    def __init__(self):
        self.step_par = None
        self.fuse = None        # what a fused chain needs to know of this layer (see _fuse)


class Graph:
    """A validated, prepared graph of bitnet layers.

    Parameters
    ----------
    layers : list of dict
        Layers of docs/graph.md (``name``, ``op``, ``inputs``, ``output``, ``attrs``,
        ``tensors``), in execution order.
    tensors : dict of str -> numpy.ndarray
        The arrays the layers name (canonical layouts of DESIGN §2).
    input_shape : tuple
        Per-example input shape ``(n_mels, frames, 1)`` (``(H, W, C)``).
    output : str, optional
        Name of the value :meth:`run` returns (default: the last layer's output).
    input_kind : ``"real"`` (default) or ``"bits"``
        ``"bits"`` makes the input packed uint64 ``(N, H, W, ceil(C/64))`` (used to
        benchmark single binary layers, packed bits in → packed bits out).
    fuse : bool
        Replace chains of layers by fused kernels in :meth:`run` (default; identical
        results, see :meth:`_fuse`); ``False`` runs one kernel per layer.

    Attributes
    ----------
    value_info : dict of str -> ValueInfo
        Kind and shape of every value, ``"input"`` included.
    layer_info : list of LayerInfo
        Per layer: input/output kinds and shapes, parameters, MACs, weight bytes.
    fused : list of tuple of str
        The chains of layers :meth:`run` runs as one fused kernel (layer names).

    Raises
    ------
    bitnet.ParameterError
        For anything malformed, naming the layer (index, name, op).
    """

    def __init__(self, layers, tensors, input_shape=(40, 101, 1), output=None, input_kind="real",
                 fuse=True):
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
        self._tensors = tensors
        slots = {"input": 0}
        steps = []
        prepared_layers = []
        for i, layer in enumerate(layers):
            prepared = self._prepare(i, layer)
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
        self._unfused = tuple((s[0], s[3], s[4]) for s in steps)
        self._unfused_par = tuple((s[1], s[3], s[4]) for s in steps)
        self._ref = tuple((s[2], s[3], s[4]) for s in steps)
        self.fused = []
        if fuse:
            self._fast, self._fast_par = self._fuse(prepared_layers, steps, slots, out)
        else:
            self._fast, self._fast_par = self._unfused, self._unfused_par

    # ------------------------------------------------------------------ fusion

    def _fuse(self, prepared, steps, slots, out):
        """The run plans with chains of layers replaced by fused kernels.

        A chain is fused only where nothing but the next layer of the chain reads each
        intermediate value and none of them is the graph output; the fused kernels do
        the same operations in the same order as the unfused ones (bit-identical
        results, :mod:`bitnet.kernels.fused`). Fused kernels are serial, so a chain is
        fused only where its convolution would stay serial with any thread count.
        ``self.fused`` lists the fused chains (layer names).
        """
        readers = {}
        for p in prepared:
            for name in p.info.inputs:
                readers[name] = readers.get(name, 0) + 1

        def private(p, nxt):
            # the output of p is read by nxt only, and is not the graph output
            o = p.info.output
            return o != out and readers.get(o, 0) == 1 and nxt.info.inputs == [o]

        fast, fast_par = [], []
        i = 0
        while i < len(prepared):
            chain = (self._match_conv_pool_sign(prepared, i, private)
                     or self._match_quantize_qconv(prepared, i, private)
                     or self._match_pool_sign(prepared, i, private)
                     or self._match_add_sign(prepared, i, private)
                     or self._match_add_maxpool(prepared, i, private))
            if chain is not None:
                step, n = chain
                first, last = prepared[i], prepared[i + n - 1]
                ins, o = tuple(slots[v] for v in first.info.inputs), slots[last.info.output]
                if n >= 2 and last.info.op == "sign" and prepared[i + n - 2].info.op in ("maxpool", "add"):
                    # [add →] maxpool → sign, add → sign: the real values are kept too
                    o = (slots[prepared[i + n - 2].info.output], o)
                    ins = ins if len(ins) > 1 else ins * 2     # two inputs: the tuple branch
                fast.append((step, ins, o))
                fast_par.append((step, ins, o))
                self.fused.append(tuple(p.info.name for p in prepared[i:i + n]))
                i += n
                continue
            s = steps[i]
            fast.append((s[0], s[3], s[4]))
            fast_par.append((s[1], s[3], s[4]))
            i += 1
        return tuple(fast), tuple(fast_par)

    @staticmethod
    def _match_quantize_qconv(prepared, i, private):
        """quantize → qconv (3×3, stride 1, one channel, threshold): ``(step, 2)`` or None."""
        quant = prepared[i]
        if quant.info.op != "quantize" or i + 1 >= len(prepared):
            return None
        qc = prepared[i + 1]
        if qc.info.op != "qconv" or qc.fuse is None or qc.step_par is not None or not private(quant, qc):
            return None
        from .kernels import fused_layer as kf

        conv, (h, w) = qc.fuse
        if not kf.quantize_qconv_applies(conv):
            return None
        off, sc, top = quant.fuse
        kern = _registry.get("quantize_qconv")
        wf, ip, fp = conv.wf, conv.params(h, w), conv.fp
        oshape = qc.info.out_info.shape

        def step(x):
            out = np.empty((x.shape[0],) + oshape, np.uint64)
            kern(x, off, sc, top, wf, ip, fp, out)
            return out

        return step, 2

    @staticmethod
    def _match_pool_sign(prepared, i, private):
        """[add →] maxpool (real) → sign, the pooled values also kept (the residual
        reads them): ``(step, n_layers)`` returning ``(pooled, bits)``, or None. The
        sum of an add is never stored, so the add must be private to the pool."""
        j = i
        has_b = prepared[i].info.op == "add"
        if has_b:
            if i + 1 >= len(prepared) or not private(prepared[i], prepared[i + 1]):
                return None
            j = i + 1
        pool = prepared[j]
        if pool.info.op != "maxpool" or pool.fuse is None or j + 1 >= len(prepared):
            return None
        sign = prepared[j + 1]
        if sign.info.op != "sign" or sign.info.inputs != [pool.info.output]:
            return None
        (kh, kw), (sh, sw) = pool.fuse
        shift = sign.fuse
        has = shift is not None
        sh_ = shift if has else _NO_SHIFT
        kern = _registry.get("pool_sign")
        oshape = pool.info.out_info.shape
        bshape = sign.info.out_info.shape

        def step(a, b):
            out = np.empty((a.shape[0],) + oshape, np.float32)
            bits = np.empty((a.shape[0],) + bshape, np.uint64)
            kern(a, b, has_b, kh, kw, sh, sw, sh_, has, out, bits)
            return out, bits

        return step, j + 2 - i

    @staticmethod
    def _match_add_sign(prepared, i, private):
        """add → sign, the sum also kept (the next residual reads it): ``(step, 2)``
        returning ``(sum, bits)``, or None."""
        add = prepared[i]
        if add.info.op != "add" or i + 1 >= len(prepared):
            return None
        sign = prepared[i + 1]
        if sign.info.op != "sign" or sign.info.inputs != [add.info.output]:
            return None
        shift = sign.fuse
        has = shift is not None
        sh_ = shift if has else _NO_SHIFT
        kern = _registry.get("add_sign")
        oshape = add.info.out_info.shape
        bshape = sign.info.out_info.shape
        c = oshape[-1]
        cw = bshape[-1]

        def step(a, b):
            out = np.empty((a.shape[0],) + oshape, np.float32)
            bits = np.empty((a.shape[0],) + bshape, np.uint64)
            kern(a.reshape(-1, c), b.reshape(-1, c), sh_, has, out.reshape(-1, c), bits.reshape(-1, cw))
            return out, bits

        return step, 2

    @staticmethod
    def _match_add_maxpool(prepared, i, private):
        """add → maxpool (real): ``(step, 2)`` or None (the sum is never stored)."""
        add = prepared[i]
        if add.info.op != "add" or i + 1 >= len(prepared):
            return None
        pool = prepared[i + 1]
        if pool.info.op != "maxpool" or pool.fuse is None or not private(add, pool):
            return None
        (kh, kw), (sh, sw) = pool.fuse
        kern = _registry.get("add_maxpool_real")
        oshape = pool.info.out_info.shape

        def step(a, b):
            out = np.empty((a.shape[0],) + oshape, np.float32)
            kern(a, b, kh, kw, sh, sw, out)
            return out

        return step, 2

    @staticmethod
    def _match_conv_pool_sign(prepared, i, private):
        """bconv (affine, serial) → avgpool → [flatten] → sign: ``(step, n_layers)`` or None."""
        conv = prepared[i]
        if conv.info.op != "bconv" or conv.fuse is None or conv.step_par is not None:
            return None
        if i + 2 >= len(prepared):
            return None
        pool = prepared[i + 1]
        if pool.info.op != "avgpool" or not private(conv, pool):
            return None
        j = i + 2
        flat = prepared[j].info.op == "flatten"
        if flat:
            if j + 1 >= len(prepared) or not private(pool, prepared[j]):
                return None
            j += 1
        sign = prepared[j]
        if sign.info.op != "sign" or not private(prepared[j - 1], sign):
            return None
        from .kernels import fused_layer as kf

        bc, (h, w), weight = conv.fuse
        (pkh, pkw), (psh, psw) = pool.fuse
        pho, pwo = pool.info.out_info.shape[:2]
        wseg = kf.segment_weights(bc, weight)
        pp = kf.pool_params((pkh, pkw), (psh, psw), pho, pwo, flat, wseg is not None)
        shift = sign.fuse
        has = shift is not None
        sh = shift if has else kf._NO_SHIFT
        kern = _registry.get("bconv_pool_sign_flat" if flat else "bconv_pool_sign")
        wt, ip, fp = (bc.wt if wseg is None else wseg), bc.params(h, w), bc.fp
        oshape = sign.info.out_info.shape

        def step(x):
            out = np.empty((x.shape[0],) + oshape, np.uint64)
            kern(x, wt, ip, fp, pp, sh, has, out)
            return out

        return step, j - i + 1

    # ------------------------------------------------------------------ running

    def _check_input(self, x):
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
        from ._jit import ensure_threads

        par = ensure_threads() > 1
        if return_values:       # every value by name: the unfused plan
            plan = self._unfused_par if par else self._unfused
        else:
            plan = self._fast_par if par else self._fast
        return self._execute(plan, self._check_input(x), return_values)

    __call__ = run

    def run_reference(self, x, return_values=False):
        """Run the graph with the NumPy references only (slow; same arguments as :meth:`run`)."""
        return self._execute(self._ref, self._check_input(x), return_values)

    # ------------------------------------------------------------------ info

    @property
    def macs(self):
        """Total MACs per example (all kinds)."""
        return sum(li.macs for li in self.layer_info)

    @property
    def params(self):
        """Total parameters."""
        return sum(li.params for li in self.layer_info)

    def summary(self):
        """A plain-text table of the layers (name, op, in → out shapes, params, MACs, bytes)."""
        rows = [("layer", "op", "in", "out", "params", "MACs", "bytes")]
        for li in self.layer_info:
            ins = ", ".join(f"{v.kind}{v.logical_shape}" for v in li.in_info)
            o = li.out_info
            rows.append((li.name, li.op, ins, f"{o.kind}{o.logical_shape}", str(li.params),
                         str(li.macs), str(li.weight_bytes)))
        widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)

    # ------------------------------------------------------------------ preparation

    def _prepare(self, i, layer):
        if not isinstance(layer, dict):
            raise ParameterError(f"layer {i}: must be a dict, got {type(layer).__name__}")
        name = layer.get("name", f"#{i}")
        op = layer.get("op")
        where = f"layer {i} {name!r} ({op})"
        if not isinstance(name, str) or not name:
            raise ParameterError(f"layer {i}: name must be a non-empty string, got {name!r}")
        if op not in OPS:
            raise ParameterError(f"layer {i} {name!r}: unknown op {op!r}; known ops: {', '.join(OPS)}")
        unknown = set(layer) - {"name", "op", "inputs", "output", "attrs", "tensors"}
        if unknown:
            raise ParameterError(f"{where}: unknown keys {sorted(unknown)}")
        inputs = layer.get("inputs")
        if isinstance(inputs, str):
            inputs = [inputs]
        n_in = 2 if op in ("add", "concat") else 1
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
        info = LayerInfo(i, name, op, list(inputs), out_name, in_info, None, attrs=dict(attrs))
        lay = _Layer()
        lay.info = info
        getattr(self, f"_prep_{op}")(lay, where, attrs, troles, in_info)
        return lay

    def _allowed(self, where, attrs, required, optional=()):
        missing = [k for k in required if k not in attrs]
        if missing:
            raise ParameterError(f"{where}: missing attribute(s) {missing}")
        extra = set(attrs) - set(required) - set(optional)
        if extra:
            raise ParameterError(f"{where}: unknown attribute(s) {sorted(extra)}; allowed: {sorted(set(required) | set(optional))}")

    def _tensor(self, where, troles, role, dtype, shape, required=True):
        tname = troles.get(role)
        if tname is None:
            if required:
                raise ParameterError(f"{where}: tensors has no {role!r} entry")
            return None
        if tname not in self._tensors:
            raise ParameterError(f"{where}: tensor {tname!r} ({role}) is missing")
        t = self._tensors[tname]
        if not isinstance(t, np.ndarray):
            raise ParameterError(f"{where}: tensor {tname!r} ({role}) is not a numpy array")
        if t.dtype != np.dtype(dtype) or t.shape != tuple(shape):
            raise ParameterError(f"{where}: tensor {tname!r} ({role}) must be {np.dtype(dtype).name} {tuple(shape)}, got {t.dtype} {t.shape}")
        return np.ascontiguousarray(t)

    def _roles(self, where, troles, allowed):
        extra = set(troles) - set(allowed)
        if extra:
            raise ParameterError(f"{where}: unknown tensor role(s) {sorted(extra)}; allowed: {sorted(allowed)}")

    def _kind(self, where, v, kinds, ndim=None):
        if v.kind not in kinds:
            raise ParameterError(f"{where}: input is {v.kind} but this op takes {' or '.join(kinds)}")
        if ndim is not None and len(v.shape) + 1 != ndim:
            raise ParameterError(f"{where}: input must be {ndim}-d (with batch), got shape (N, {', '.join(map(str, v.shape))})")

    def _out_tensors(self, where, attrs, troles, c_out, extra_roles=("weight",)):
        output = attrs.get("output")
        if output not in _OUTPUT_TENSORS:
            raise ParameterError(f"{where}: attribute 'output' must be one of {sorted(_OUTPUT_TENSORS)}, got {output!r}")
        self._roles(where, troles, set(extra_roles) | set(_OUTPUT_TENSORS[output]))
        got = {r: self._tensor(where, troles, r, dt, (c_out,)) for r, dt in _OUTPUT_TENSORS[output].items()}
        if output == "threshold" and not np.isin(got["thresh_sign"], (-1, 1)).all():
            raise ParameterError(f"{where}: thresh_sign must hold only +1 and -1")
        nbytes = sum(t.nbytes for t in got.values())
        return output, got, nbytes

    @staticmethod
    def _out_value(output, shape_hw, c_out):
        if output == "threshold":
            return ValueInfo("bits", shape_hw + (n_words(c_out),), c_out)
        if output == "int":
            return ValueInfo("int", shape_hw + (c_out,), c_out)
        return ValueInfo("real", shape_hw + (c_out,), c_out)

    # ---- ops

    def _prep_quantize(self, lay, where, attrs, troles, in_info):
        from .kernels.reference import quantize_reference

        self._allowed(where, attrs, ("bits", "offset", "scale"))
        self._roles(where, troles, ())
        v = in_info[0]
        self._kind(where, v, ("real",))
        bits = attrs["bits"]
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 8:
            raise ParameterError(f"{where}: bits must be an integer in 1..8, got {bits!r}")
        try:
            offset, scale = float(attrs["offset"]), float(attrs["scale"])
        except (TypeError, ValueError):
            raise ParameterError(f"{where}: offset and scale must be numbers") from None
        f32max = float(np.finfo(np.float32).max)
        if not (abs(offset) <= f32max and 0 < scale <= f32max):
            raise ParameterError(f"{where}: offset must be a finite float32 and scale a positive "
                                 f"finite float32, got offset={offset!r}, scale={scale!r}")
        bits = int(bits)
        lay.info.out_info = ValueInfo("levels", v.shape, v.channels, bits)
        kern = _registry.get("quantize")
        off, sc, top = np.float32(offset), np.float32(scale), np.float32((1 << bits) - 1)

        def step(x):
            out = np.empty(x.shape, np.uint8)
            kern(x.reshape(-1), off, sc, top, out.reshape(-1))
            return out

        lay.step = step
        lay.ref = lambda x: quantize_reference(x, bits, offset, scale)
        lay.fuse = (off, sc, top)

    def _conv_common(self, where, attrs, in_c):
        kernel = _int_pair(attrs.get("kernel"), "kernel", where)
        stride = _int_pair(attrs.get("stride", [1, 1]), "stride", where)
        padding = attrs.get("padding", "same")
        if padding not in ("same", "valid"):
            raise ParameterError(f"{where}: padding must be 'same' or 'valid', got {padding!r}")
        c_in = _pos_int(attrs, "in_channels", where)
        c_out = _pos_int(attrs, "out_channels", where)
        if c_in != in_c:
            raise ParameterError(f"{where}: in_channels={c_in} but the input has {in_c} channels")
        return kernel, stride, padding, c_in, c_out

    def _prep_bconv(self, lay, where, attrs, troles, in_info):
        from .kernels import bconv_layer as kb
        from .kernels.reference import bconv_reference

        self._allowed(where, attrs, ("in_channels", "out_channels", "kernel", "output"), ("stride", "padding"))
        v = in_info[0]
        self._kind(where, v, ("bits",), ndim=4)
        kernel, stride, padding, c_in, c_out = self._conv_common(where, attrs, v.channels)
        wt = self._tensor(where, troles, "weight", np.uint64, (c_out,) + kernel + (n_words(c_in),))
        output, ot, nbytes = self._out_tensors(where, attrs, troles, c_out)
        h, w = v.shape[:2]
        try:
            ho, wo, _, _ = conv_geometry(h, w, kernel, stride, padding)
        except ValueError as e:
            raise ParameterError(f"{where}: {e}") from None
        conv = kb.BConv(wt, c_in, stride, padding, output, name=where, **ot)
        lay.info.out_info = out_info = self._out_value(output, (ho, wo), c_out)
        lay.info.params = c_out * kernel[0] * kernel[1] * c_in + len(ot) * c_out
        lay.info.macs = ho * wo * c_out * kernel[0] * kernel[1] * c_in
        lay.info.weight_bytes = wt.nbytes + nbytes
        lay.step = _conv_step(_registry.get("bconv"), conv.wt, conv.params(h, w), conv.fp, output, out_info)
        if lay.info.macs >= PARALLEL_MIN_WORK:
            lay.step_par = _conv_step(_registry.get_parallel("bconv"), conv.wt, conv.params(h, w, 1, True),
                                      conv.fp, output, out_info)
        lay.ref = lambda x: bconv_reference(x, wt, c_in, kernel, stride, padding, output, **ot)
        if output == "affine":
            lay.fuse = (conv, (h, w), wt)

    def _prep_qconv(self, lay, where, attrs, troles, in_info):
        from .kernels import qconv_layer as kq
        from .kernels.reference import qconv_reference

        self._allowed(where, attrs, ("in_channels", "out_channels", "kernel", "bits", "output"), ("stride", "padding"))
        v = in_info[0]
        self._kind(where, v, ("levels",), ndim=4)
        kernel, stride, padding, c_in, c_out = self._conv_common(where, attrs, v.channels)
        bits = attrs["bits"]
        if bits != v.bits:
            raise ParameterError(f"{where}: bits={bits!r} but the input levels have {v.bits} bits")
        wt = self._tensor(where, troles, "weight", np.uint64, (c_out,) + kernel + (n_words(c_in),))
        output, ot, nbytes = self._out_tensors(where, attrs, troles, c_out)
        h, w = v.shape[:2]
        try:
            ho, wo, _, _ = conv_geometry(h, w, kernel, stride, padding)
        except ValueError as e:
            raise ParameterError(f"{where}: {e}") from None
        conv = kq.QConv(wt, c_in, bits, stride, padding, output, name=where, **ot)
        lay.info.out_info = out_info = self._out_value(output, (ho, wo), c_out)
        lay.info.params = c_out * kernel[0] * kernel[1] * c_in + len(ot) * c_out
        lay.info.macs = ho * wo * c_out * kernel[0] * kernel[1] * c_in
        lay.info.weight_bytes = wt.nbytes + nbytes
        lay.step = _conv_step(_registry.get("qconv"), conv.wf, conv.params(h, w), conv.fp, output, out_info)
        if 32 * lay.info.macs >= PARALLEL_MIN_WORK:      # a level MAC costs ~32 binary MACs
            lay.step_par = _conv_step(_registry.get_parallel("qconv"), conv.wf, conv.params(h, w, 1, True),
                                      conv.fp, output, out_info)
        lay.ref = lambda x: qconv_reference(x, wt, c_in, bits, kernel, stride, padding, output, **ot)
        lay.fuse = (conv, (h, w))

    def _prep_bdense(self, lay, where, attrs, troles, in_info):
        from .kernels import bconv_layer as kb
        from .kernels.reference import bdense_reference

        self._allowed(where, attrs, ("in_features", "out_features", "output"))
        v = in_info[0]
        self._kind(where, v, ("bits",), ndim=2)
        c_in = _pos_int(attrs, "in_features", where)
        c_out = _pos_int(attrs, "out_features", where)
        if c_in != v.channels:
            raise ParameterError(f"{where}: in_features={c_in} but the input has {v.channels} features")
        wt = self._tensor(where, troles, "weight", np.uint64, (c_out, n_words(c_in)))
        output, ot, nbytes = self._out_tensors(where, attrs, troles, c_out)
        conv = kb.BDense(wt, c_in, output, name=where, **ot)
        out4 = self._out_value(output, (1, 1), c_out)
        lay.info.out_info = ValueInfo(out4.kind, out4.shape[2:], c_out)
        lay.info.params = c_out * c_in + len(ot) * c_out
        lay.info.macs = c_out * c_in
        lay.info.weight_bytes = wt.nbytes + nbytes
        step4 = _conv_step(_registry.get("bconv"), conv.wt, conv.params(1, 1), conv.fp, output, out4)

        def step(x):
            return step4(x.reshape(x.shape[0], 1, 1, x.shape[1])).reshape(x.shape[0], -1)

        lay.step = step
        lay.ref = lambda x: bdense_reference(x, wt, c_in, output, **ot)

    def _prep_sign(self, lay, where, attrs, troles, in_info):
        from .kernels.reference import sign_reference

        self._allowed(where, attrs, ("channels",))
        self._roles(where, troles, ("shift",))
        v = in_info[0]
        self._kind(where, v, ("real",))
        c = _pos_int(attrs, "channels", where)
        if c != v.channels:
            raise ParameterError(f"{where}: channels={c} but the input has {v.channels} channels")
        shift = self._tensor(where, troles, "shift", np.float32, (c,), required=False)
        lay.info.out_info = ValueInfo("bits", v.shape[:-1] + (n_words(c),), c)
        lay.info.params = 0 if shift is None else c
        lay.info.weight_bytes = 0 if shift is None else shift.nbytes
        kern = _registry.get("sign")
        has = shift is not None
        sh = shift if has else _NO_SHIFT
        cw = n_words(c)
        oshape = lay.info.out_info.shape

        def step(x):
            out = np.empty((x.shape[0],) + oshape, np.uint64)
            kern(x.reshape(-1, c), sh, has, out.reshape(-1, cw))
            return out

        lay.step = step
        lay.ref = lambda x: sign_reference(x, shift)
        lay.fuse = shift

    def _pool_common(self, lay, where, attrs, troles, v):
        self._allowed(where, attrs, ("kernel",), ("stride", "padding"))
        self._roles(where, troles, ())
        if attrs.get("padding", "valid") != "valid":
            raise ParameterError(f"{where}: pools support only padding 'valid', got {attrs['padding']!r}")
        kernel = _int_pair(attrs.get("kernel"), "kernel", where)
        stride = _int_pair(attrs.get("stride", list(kernel)), "stride", where)
        try:
            ho, wo = pool_geometry(v.shape[0], v.shape[1], kernel, stride)
        except ValueError as e:
            raise ParameterError(f"{where}: {e}") from None
        lay.info.out_info = ValueInfo(v.kind, (ho, wo, v.shape[2]), v.channels)
        return kernel, stride

    def _prep_maxpool(self, lay, where, attrs, troles, in_info):
        from .kernels import reference as kr

        v = in_info[0]
        self._kind(where, v, ("bits", "real"), ndim=4)
        (kh, kw), (sh, sw) = kernel, stride = self._pool_common(lay, where, attrs, troles, v)
        oshape = lay.info.out_info.shape
        lay.info.macs = int(np.prod(oshape)) * kh * kw
        if v.kind == "bits":
            kern = _registry.get("maxpool_bits")

            def step(x):
                out = np.empty((x.shape[0],) + oshape, np.uint64)
                kern(x, kh, kw, sh, sw, out)
                return out

            c = v.channels
            lay.ref = lambda x: kr.maxpool_bits_reference(x, c, kernel, stride)
        else:
            kern = _registry.get("pool_real")

            def step(x):
                out = np.empty((x.shape[0],) + oshape, np.float32)
                kern(x, kh, kw, sh, sw, True, out)
                return out

            lay.ref = lambda x: kr.maxpool_real_reference(x, kernel, stride)
            lay.fuse = (kernel, stride)
        lay.step = step

    def _prep_avgpool(self, lay, where, attrs, troles, in_info):
        from .kernels import reference as kr

        v = in_info[0]
        self._kind(where, v, ("real",), ndim=4)
        (kh, kw), (sh, sw) = kernel, stride = self._pool_common(lay, where, attrs, troles, v)
        oshape = lay.info.out_info.shape
        lay.info.macs = int(np.prod(oshape)) * kh * kw
        kern = _registry.get("pool_real")

        def step(x):
            out = np.empty((x.shape[0],) + oshape, np.float32)
            kern(x, kh, kw, sh, sw, False, out)
            return out

        lay.step = step
        lay.ref = lambda x: kr.avgpool_reference(x, kernel, stride)
        lay.fuse = (kernel, stride)

    def _prep_global_avgpool(self, lay, where, attrs, troles, in_info):
        from .kernels import reference as kr

        self._allowed(where, attrs, ("channels",))
        self._roles(where, troles, ())
        v = in_info[0]
        self._kind(where, v, ("bits", "real"), ndim=4)
        c = _pos_int(attrs, "channels", where)
        if c != v.channels:
            raise ParameterError(f"{where}: channels={c} but the input has {v.channels} channels")
        lay.info.out_info = ValueInfo("real", (c,), c)
        lay.info.macs = v.shape[0] * v.shape[1] * c
        if v.kind == "bits":
            kern = _registry.get("gap_bits")

            def step(x):
                out = np.empty((x.shape[0], c), np.float32)
                kern(x, c, out)
                return out

            lay.ref = lambda x: kr.global_avgpool_bits_reference(x, c)
        else:
            kern = _registry.get("gap_real")

            def step(x):
                out = np.empty((x.shape[0], c), np.float32)
                kern(x, out)
                return out

            lay.ref = kr.global_avgpool_reference
        lay.step = step

    def _prep_flatten(self, lay, where, attrs, troles, in_info):
        from .kernels.reference import flatten_reference

        self._allowed(where, attrs, ())
        self._roles(where, troles, ())
        v = in_info[0]
        self._kind(where, v, ("real",), ndim=4)
        n = int(np.prod(v.shape))
        lay.info.out_info = ValueInfo("real", (n,), n)
        lay.step = lambda x: x.reshape(x.shape[0], n)
        lay.ref = flatten_reference

    def _prep_dense(self, lay, where, attrs, troles, in_info):
        from .kernels.reference import dense_reference

        self._allowed(where, attrs, ("in_features", "out_features"))
        self._roles(where, troles, ("weight", "bias"))
        v = in_info[0]
        self._kind(where, v, ("real", "bits"), ndim=2)
        c_in = _pos_int(attrs, "in_features", where)
        c_out = _pos_int(attrs, "out_features", where)
        if c_in != v.channels:
            raise ParameterError(f"{where}: in_features={c_in} but the input has {v.channels} features")
        wt = self._tensor(where, troles, "weight", np.float32, (c_out, c_in))
        bias = self._tensor(where, troles, "bias", np.float32, (c_out,))
        lay.info.out_info = ValueInfo("real", (c_out,), c_out)
        lay.info.params = wt.size + bias.size
        lay.info.macs = c_in * c_out
        lay.info.weight_bytes = wt.nbytes + bias.nbytes
        if v.kind == "bits":
            kern = _registry.get("dense_bits")

            def step(x):
                out = np.empty((x.shape[0], c_out), np.float32)
                kern(x, c_in, wt, bias, out)
                return out

            lay.ref = lambda x: dense_reference(x, wt, bias, c_in)
        else:
            def step(x):
                return _dense_rows(x, wt, bias)

            lay.ref = lambda x: dense_reference(x, wt, bias)
        lay.step = step

    def _prep_add(self, lay, where, attrs, troles, in_info):
        from .kernels.reference import add_reference

        self._allowed(where, attrs, ())
        self._roles(where, troles, ())
        a, b = in_info
        self._kind(where, a, ("real",))
        self._kind(where, b, ("real",))
        if a.shape != b.shape:
            raise ParameterError(f"{where}: inputs have different shapes {a.shape} and {b.shape}")
        lay.info.out_info = a
        lay.step = np.add
        lay.ref = add_reference

    def _prep_concat(self, lay, where, attrs, troles, in_info):
        from .kernels.reference import concat_reference

        self._allowed(where, attrs, ())
        self._roles(where, troles, ())
        a, b = in_info
        self._kind(where, a, ("real",))
        self._kind(where, b, ("real",))
        if a.shape[:-1] != b.shape[:-1]:
            raise ParameterError(f"{where}: inputs differ in more than channels: {a.shape} and {b.shape}")
        c = a.shape[-1] + b.shape[-1]
        lay.info.out_info = ValueInfo("real", a.shape[:-1] + (c,), c)
        lay.step = concat_reference
        lay.ref = concat_reference


#: products per temporary block in :func:`_dense_rows` (4 MiB of float32)
_DENSE_BLOCK = 1 << 20


def _dense_rows(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Float32 ``x @ weight.T + bias`` whose every row is computed alone, in one fixed
    order: ``x (N, C_in)``, ``weight (C_out, C_in)``, ``bias (C_out,)``.

    A BLAS product is not batch-independent: OpenBLAS picks another kernel (gemv for one
    row, gemm for more) and, per CPU core type, another summation order, so a window's
    logits changed in the last bit with the number of windows it was classified with
    (stream vs whole file; seen with OpenBLAS's Haswell/Zen, Sandybridge, Nehalem and
    Katmai kernels). ``np.einsum`` avoids BLAS but sums in another order on ARM64 (NEON)
    than on x86. Here each output is the exactly rounded products followed by NumPy's
    pairwise sum over the contiguous ``C_in`` axis: plain C with eight accumulators in a
    fixed order, the same for any batch, SIMD width or CPU (bit-identical logits on x86
    and emulated ARM64: scripts/arm64_emulated.sh). The head is tiny: ~2 us more than
    BLAS for the bundled model's 128 -> 10 head.
    """
    n, (c_out, c_in) = x.shape[0], weight.shape
    out = np.empty((n, c_out), np.result_type(x, weight))
    rows = max(1, _DENSE_BLOCK // (c_out * c_in))     # bounds the temporary (N may be large)
    for i in range(0, n, rows):
        prod = np.multiply(x[i : i + rows, None, :], weight[None, :, :])   # (rows, C_out, C_in)
        np.add.reduce(prod, axis=2, out=out[i : i + rows])
    out += bias
    return out


def _conv_step(kern, wt, ip, fp, output, out_info):
    """A closure that allocates the output and calls one conv kernel (no checks)."""
    from .kernels.bconv_layer import _EMPTY_F32, _EMPTY_I32, _EMPTY_U64

    oshape = out_info.shape
    if output == "threshold":
        def step(x):
            out = np.empty((x.shape[0],) + oshape, np.uint64)
            kern(x, wt, ip, fp, out, _EMPTY_I32, _EMPTY_F32)
            return out
    elif output == "int":
        def step(x):
            out = np.empty((x.shape[0],) + oshape, np.int32)
            kern(x, wt, ip, fp, _EMPTY_U64, out, _EMPTY_F32)
            return out
    else:
        def step(x):
            out = np.empty((x.shape[0],) + oshape, np.float32)
            kern(x, wt, ip, fp, _EMPTY_U64, _EMPTY_I32, out)
            return out
    return step
