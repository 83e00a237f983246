"""A digits-shaped model with RANDOM weights, for tests and benchmarks.

:func:`digits_graph` returns the header and tensors of a small model shaped like the
bundled spoken-digit model (same frontend, same kind of layers) whose provenance says
``"untrained placeholder: random weights"``; write it with
:func:`bitnet.modelfile.save_model` where a test needs a file. Its answers are
meaningless. (This module writes no file itself: the bundled ``default.bnn`` is the
trained model and nothing here may overwrite it.)
"""

from __future__ import annotations

import numpy as np


UNTRAINED = "untrained placeholder: random weights"

FRONTEND = {
    "sample_rate": 8000, "n_fft": 256, "hop_length": 80, "win_length": None, "n_mels": 40,
    "fmin": 0.0, "fmax": None, "htk": False, "norm": "slaney", "center": True,
    "pad_mode": "constant", "power": 2.0, "amin": 1e-10, "top_db": 80.0, "frames": 101,
}  # fmt: skip


def pack_signs(w: np.ndarray) -> np.ndarray:
    """Pack the signs of ``w`` (..., C) into uint64 words (..., ceil(C/64)): set bit = −1.

    Plain NumPy, docs/design.md §2 conventions: ``sign(0) = +1``, channel ``c`` in word
    ``c // 64``, bit ``c % 64``, bits past the last channel zero.
    """
    w = np.asarray(w)
    c = w.shape[-1]
    words = -(-c // 64)
    bits = np.zeros(w.shape[:-1] + (words * 64,), dtype=np.uint64)
    bits[..., :c] = w < 0
    shifts = np.arange(64, dtype=np.uint64)
    return (bits.reshape(w.shape[:-1] + (words, 64)) << shifts).sum(axis=-1, dtype=np.uint64)


def digits_graph(seed: int = 0, frontend: dict | None = None, labels=None, channels=(16, 32, 64)):
    """Return ``(header, tensors)`` of a small random-weight digits-shaped model.

    quantize → qconv c0 3×3 (threshold) → maxpool 2 → bconv c1 3×3 (threshold) →
    maxpool 2 → bconv c2 3×3 (affine) → global_avgpool → dense n_classes.
    """
    rng = np.random.default_rng(seed)
    fe = dict(FRONTEND if frontend is None else frontend)
    labels = [str(i) for i in range(10)] if labels is None else list(labels)
    n_mels, frames = fe["n_mels"], fe["frames"]
    c0, c1, c2 = channels
    tensors = {}
    layers = [
        {"name": "quant", "op": "quantize", "inputs": ["input"], "output": "quant",
         "attrs": {"bits": 8, "offset": -80.0, "scale": 255.0 / 120.0}, "tensors": {}},
    ]  # fmt: skip

    def conv(name, op, inp, cin, cout, output):
        w = rng.standard_normal((cout, 3, 3, cin))
        tensors[f"{name}.weight"] = pack_signs(w)
        refs = {"weight": f"{name}.weight"}
        attrs = {"in_channels": cin, "out_channels": cout, "kernel": [3, 3], "stride": [1, 1],
                 "padding": "same", "output": output}  # fmt: skip
        if op == "qconv":
            attrs["bits"] = 8
        if output == "threshold":
            fan = 9 * cin * (255 if op == "qconv" else 1)
            tensors[f"{name}.thresh"] = rng.integers(-fan // 8, fan // 8 + 1, cout).astype(np.int32)
            tensors[f"{name}.thresh_sign"] = rng.choice(np.array([-1, 1], np.int32), cout)
            refs.update(thresh=f"{name}.thresh", thresh_sign=f"{name}.thresh_sign")
        else:
            tensors[f"{name}.scale"] = np.full(cout, 1.0 / (9 * cin), np.float32)
            tensors[f"{name}.bias"] = (0.1 * rng.standard_normal(cout)).astype(np.float32)
            refs.update(scale=f"{name}.scale", bias=f"{name}.bias")
        layers.append({"name": name, "op": op, "inputs": [inp], "output": name, "attrs": attrs, "tensors": refs})

    def pool(name, inp):
        layers.append({"name": name, "op": "maxpool", "inputs": [inp], "output": name,
                       "attrs": {"kernel": [2, 2], "stride": [2, 2]}, "tensors": {}})  # fmt: skip

    conv("conv0", "qconv", "quant", 1, c0, "threshold")
    pool("pool0", "conv0")
    conv("conv1", "bconv", "pool0", c0, c1, "threshold")
    pool("pool1", "conv1")
    conv("conv2", "bconv", "pool1", c1, c2, "affine")
    layers.append({"name": "gap", "op": "global_avgpool", "inputs": ["conv2"], "output": "gap",
                   "attrs": {"channels": c2}, "tensors": {}})  # fmt: skip
    n = len(labels)
    tensors["fc.weight"] = (rng.standard_normal((n, c2)) / np.sqrt(c2)).astype(np.float32)
    tensors["fc.bias"] = np.zeros(n, np.float32)
    layers.append({"name": "fc", "op": "dense", "inputs": ["gap"], "output": "fc",
                   "attrs": {"in_features": c2, "out_features": n},
                   "tensors": {"weight": "fc.weight", "bias": "fc.bias"}})  # fmt: skip
    header = {
        "format": "bitnet-model",
        "version": 1,
        "frontend": fe,
        "input": {"shape": [n_mels, frames, 1]},
        "layers": layers,
        "output": "fc",
        "labels": labels,
        "provenance": {
            "status": UNTRAINED,
            "dataset": "none (" + UNTRAINED + ")",
            "split": None,
            "accuracy": None,
            "command": "bitnet.testing.digits.digits_graph",
            "created": "placeholder",
            "seed": seed,
        },
    }
    return header, tensors
