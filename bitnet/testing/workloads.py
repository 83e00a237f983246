"""The reference workloads of docs/design.md §4 as graphs with random parameters.

Each builder returns ``(layers, tensors, input_shape)``, ready for
``bitnet.graph.Graph(layers, tensors, input_shape)``; the layer lists follow
docs/graph.md "Reference workloads as graphs" exactly. Parameters are random but
plausible: binary weights are signs of Gaussians, thresholds are drawn around the
spread of a random dot (``±√n``) with random ``thresh_sign``, so about half of the
output bits are set; affine scales are ``1/√n``. Seeded: the same seed gives the same
model.

>>> from bitnet.graph import Graph
>>> g = Graph(*kws_bnn_m(seed=0))                                   # doctest: +SKIP
>>> g.run(np.zeros((1, 40, 101), np.float32)).shape                 # doctest: +SKIP
(1, 10)
"""

from __future__ import annotations

import numpy as np

from ..packing import pack_signs

__all__ = ["lc_bnn", "kws_bnn_m", "single_layer", "l64", "l128", "l256", "ast", "LAYER_SHAPES",
           "WORKLOADS"]

#: (H, W, C) of the single-layer workloads L64 / L128 / L256
LAYER_SHAPES = {"L64": (40, 101, 64), "L128": (20, 50, 128), "L256": (10, 25, 256)}

#: default quantizer for log-mel dB features (about −80..0 dB → 0..255)
QUANT = {"bits": 8, "offset": -80.0, "scale": 255.0 / 80.0}


class _Builder:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.layers = []
        self.tensors = {}
        self.prev = "input"

    def _add(self, name, op, attrs=None, tensors=None, inputs=None):
        layer = {"name": name, "op": op, "inputs": inputs or [self.prev], "output": name,
                 "attrs": attrs or {}, "tensors": {}}
        for role, arr in (tensors or {}).items():
            layer["tensors"][role] = f"{name}.{role}"
            self.tensors[f"{name}.{role}"] = arr
        self.layers.append(layer)
        self.prev = name
        return layer

    def _out(self, output, c_out, n):
        rng = self.rng
        if output == "threshold":
            sd = np.sqrt(n)
            return {"thresh": np.round(rng.normal(0, 0.5 * sd, c_out)).astype(np.int32),
                    "thresh_sign": rng.choice(np.array([-1, 1], np.int32), c_out)}
        if output == "affine":
            return {"scale": (rng.uniform(0.5, 1.5, c_out) / np.sqrt(n)).astype(np.float32),
                    "bias": rng.normal(0, 0.1, c_out).astype(np.float32)}
        return {}

    def quantize(self, name="quant", **q):
        self._add(name, "quantize", dict(QUANT, **q))

    def conv(self, name, op, c_in, c_out, output, kernel=(3, 3), stride=(1, 1), padding="same", bits=8):
        rng = self.rng
        w = pack_signs(rng.standard_normal((c_out,) + tuple(kernel) + (c_in,)))
        n = kernel[0] * kernel[1] * c_in * (128 if op == "qconv" else 1)
        attrs = {"in_channels": c_in, "out_channels": c_out, "kernel": list(kernel),
                 "stride": list(stride), "padding": padding, "output": output}
        if op == "qconv":
            attrs["bits"] = bits
        self._add(name, op, attrs, dict({"weight": w}, **self._out(output, c_out, n)))

    def bdense(self, name, c_in, c_out, output):
        w = pack_signs(self.rng.standard_normal((c_out, c_in)))
        attrs = {"in_features": c_in, "out_features": c_out, "output": output}
        self._add(name, "bdense", attrs, dict({"weight": w}, **self._out(output, c_out, c_in)))

    def dense(self, name, c_in, c_out):
        w = (self.rng.standard_normal((c_out, c_in)) / np.sqrt(c_in)).astype(np.float32)
        b = self.rng.normal(0, 0.1, c_out).astype(np.float32)
        self._add(name, "dense", {"in_features": c_in, "out_features": c_out}, {"weight": w, "bias": b})


def lc_bnn(seed: int = 0):
    """LC-BNN (input 40×51): quantize → qconv 16 (threshold) → bconv 16 (affine) →
    avgpool 5×5 → sign → bconv 32 (affine) → avgpool (4,10) → flatten → sign →
    bdense 100 (threshold) → dense 10 (bits in).

    Returns ``(layers, tensors, input_shape)``.
    """
    b = _Builder(seed)
    b.quantize()
    b.conv("conv0", "qconv", 1, 16, "threshold")
    b.conv("conv1", "bconv", 16, 16, "affine")
    b._add("pool1", "avgpool", {"kernel": [5, 5], "stride": [5, 5]})
    b._add("sign1", "sign", {"channels": 16})
    b.conv("conv2", "bconv", 16, 32, "affine")
    b._add("pool2", "avgpool", {"kernel": [4, 10], "stride": [4, 10]})
    b._add("flat", "flatten")
    b._add("sign2", "sign", {"channels": 64})
    b.bdense("fc1", 64, 100, "threshold")
    b.dense("fc", 100, 10)
    return b.layers, b.tensors, (40, 51, 1)


def kws_bnn_m(seed: int = 0):
    """KWS-BNN-M (input 40×101): quantize → qconv 64 (threshold) → bconv 64 → maxpool 2 →
    bconv 128 → bconv 128 → maxpool 2 → bconv 256 → bconv 256 (affine) →
    global_avgpool → dense 10. All convs 3×3 same; binary ones threshold unless noted.

    Returns ``(layers, tensors, input_shape)``.
    """
    b = _Builder(seed)
    b.quantize()
    b.conv("conv0", "qconv", 1, 64, "threshold")
    b.conv("conv1", "bconv", 64, 64, "threshold")
    b._add("pool1", "maxpool", {"kernel": [2, 2], "stride": [2, 2]})
    b.conv("conv2", "bconv", 64, 128, "threshold")
    b.conv("conv3", "bconv", 128, 128, "threshold")
    b._add("pool2", "maxpool", {"kernel": [2, 2], "stride": [2, 2]})
    b.conv("conv4", "bconv", 128, 256, "threshold")
    b.conv("conv5", "bconv", 256, 256, "affine")
    b._add("gap", "global_avgpool", {"channels": 256})
    b.dense("fc", 256, 10)
    return b.layers, b.tensors, (40, 101, 1)


def single_layer(channels: int, height: int, width: int, seed: int = 0):
    """One ``bconv`` 3×3 same, ``C_out = C_in``, threshold output, on packed bits.

    Returns ``(layers, tensors, input_shape)``; build the graph with
    ``Graph(layers, tensors, input_shape, input_kind="bits")``.
    """
    b = _Builder(seed)
    b.conv("conv", "bconv", channels, channels, "threshold")
    return b.layers, b.tensors, (height, width, channels)


def l64(seed: int = 0):
    """L64: one bconv 3×3 same on 40×101×64 packed bits (see :func:`single_layer`)."""
    return single_layer(64, 40, 101, seed)


def l128(seed: int = 0):
    """L128: one bconv 3×3 same on 20×50×128 packed bits."""
    return single_layer(128, 20, 50, seed)


def l256(seed: int = 0):
    """L256: one bconv 3×3 same on 10×25×256 packed bits."""
    return single_layer(256, 10, 25, seed)


def ast(seed: int = 0, input_shape=(40, 101), dim=64, depth=2, heads=2, mlp=128, patch=(20, 4),
        probs="real", n_classes=10):
    """The binarized audio spectrogram transformer (``trainer/transformer.py``, the
    trainer's ``--model ast``): quantize → qconv patch (stride = patch, valid, affine) →
    tokens → ``depth`` × [layernorm → sign → bconv 1×1 Q, K, V (threshold) → bmatmul →
    softmax → attend → sign → bconv 1×1 O (affine) → add → layernorm → sign → bconv 1×1
    FFN1 (threshold) → bconv 1×1 FFN2 (affine) → add] → layernorm → global_avgpool →
    dense. Any ``dim`` and ``mlp`` (not only multiples of 64).

    Returns ``(layers, tensors, input_shape)``.
    """
    b = _Builder(seed)
    rng = b.rng
    ph, pw = patch
    hp, wp = input_shape[0] // ph, input_shape[1] // pw
    t = hp * wp
    b.quantize()
    b.conv("embed", "qconv", 1, dim, "affine", kernel=(ph, pw), stride=(ph, pw), padding="valid")
    b._add("tokens", "tokens", {"channels": dim, "tokens": t},
           {"pos": rng.normal(0, 0.5, (t, dim)).astype(np.float32)})

    def ln(name, inp):
        b.prev = inp
        b._add(name, "layernorm", {"channels": dim, "eps": 1e-5},
               {"weight": rng.uniform(0.5, 1.5, dim).astype(np.float32),
                "bias": rng.normal(0, 0.2, dim).astype(np.float32)})
        b._add(name + ".sign", "sign", {"channels": dim})
        return name + ".sign"

    def lin(name, inp, c_in, c_out, output):
        b.prev = inp
        b.conv(name, "bconv", c_in, c_out, output, kernel=(1, 1), padding="valid")
        return name

    x = "tokens"
    for i in range(depth):
        h = ln(f"b{i}.ln1", x)
        q, k, v = (lin(f"b{i}.{n}", h, dim, dim, "threshold") for n in "qkv")
        b._add(f"b{i}.scores", "bmatmul", {"channels": dim, "heads": heads},
               {"scale": rng.uniform(0.1, 0.4, heads).astype(np.float32)}, inputs=[q, k])
        b._add(f"b{i}.softmax", "softmax")
        tau = {"tau": np.full(heads, 1.0 / t, np.float32)} if probs == "binary" else {}
        b._add(f"b{i}.attend", "attend", {"channels": dim, "heads": heads, "probs": probs}, tau,
               inputs=[f"b{i}.softmax", v])
        b._add(f"b{i}.osign", "sign", {"channels": dim},
               {"shift": rng.normal(0, 0.05, dim).astype(np.float32)})
        o = lin(f"b{i}.o", f"b{i}.osign", dim, dim, "affine")
        b._add(f"b{i}.add1", "add", inputs=[x, o])
        x = f"b{i}.add1"
        h = ln(f"b{i}.ln2", x)
        f = lin(f"b{i}.fc2", lin(f"b{i}.fc1", h, dim, mlp, "threshold"), mlp, dim, "affine")
        b._add(f"b{i}.add2", "add", inputs=[x, f])
        x = f"b{i}.add2"
    b.prev = x
    b._add("ln", "layernorm", {"channels": dim, "eps": 1e-5},
           {"weight": np.ones(dim, np.float32), "bias": np.zeros(dim, np.float32)})
    b._add("pool", "global_avgpool", {"channels": dim})
    b.dense("fc", dim, n_classes)
    return b.layers, b.tensors, tuple(input_shape) + (1,)


#: name -> (builder, input kind)
WORKLOADS = {"LC-BNN": (lc_bnn, "real"), "KWS-BNN-M": (kws_bnn_m, "real"),
             "L64": (l64, "bits"), "L128": (l128, "bits"), "L256": (l256, "bits")}


def random_input(input_shape, kind="real", batch=1, seed=0):
    """A random input for a workload: log-mel-like dB values or random packed bits."""
    rng = np.random.default_rng(seed)
    h, w, c = input_shape
    if kind == "bits":
        return pack_signs(rng.standard_normal((batch, h, w, c)))
    return rng.uniform(-80.0, 0.0, (batch, h, w, c)).astype(np.float32)


__all__ += ["random_input"]
