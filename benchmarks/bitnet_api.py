"""How the benchmarks drive bitnet: one place that knows the engine's API.

The engine's public API is still settling; the benchmarks (and the start-up probe)
reach it only through these two functions, so an API change is fixed here once.
Missing pieces raise ``ImportError`` with what is missing; the benchmarks turn that
into a skip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def features_runner(model, x: np.ndarray):
    """A zero-argument callable: ``model.logits`` on float32 features.

    ``model`` is what ``bitnet.load`` returns; ``x`` is ``(N, n_mels, frames)`` (the
    public ``Model.logits`` layout) or ``(N, n_mels, frames, 1)`` NHWC / ``(N, 1, n_mels,
    frames)`` NCHW, reshaped here outside the timed call. The frontend is not included
    (the float peers get the same features); ``Model.predict`` on audio is timed
    separately.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 4:
        x = x[..., 0] if x.shape[-1] == 1 else x[:, 0]
    x = np.ascontiguousarray(x)
    logits = getattr(model, "logits", None)
    if not callable(logits):
        raise ImportError(f"{type(model).__name__} has no logits(features) method")
    return lambda: logits(x)


def save_workload(name: str, path: str | Path, seed: int = 0) -> Path:
    """Write a random-parameter DESIGN §4 workload (``"LC-BNN"``, ``"KWS-BNN-M"``) as a
    ``.bnn`` file, so that the start-up probe loads it the way a user loads a model.

    The graph comes from ``bitnet.testing.workloads``; the header gets the default model's
    frontend settings (with the workload's frame count), labels ``"0".."9"`` and a
    provenance that says the weights are random.
    """
    try:
        from bitnet.testing import workloads
        from bitnet.testing.digits import FRONTEND
        from bitnet.modelfile import save_model
    except ImportError as exc:
        raise ImportError(f"bitnet.testing.workloads/modelfile are not available yet ({exc})") from exc
    builder, kind = workloads.WORKLOADS[name]
    if kind != "real":
        raise ValueError(f"{name} takes packed bits, not features; only whole models can be saved")
    layers, tensors, shape = builder(seed=seed)
    header = {
        "format": "bitnet-model", "version": 1,
        "frontend": dict(FRONTEND, frames=int(shape[1])),
        "input": {"shape": [int(s) for s in shape]},
        "layers": layers,
        "output": layers[-1]["output"],
        "labels": [str(i) for i in range(10)],
        "provenance": {"status": "untrained: random weights", "dataset": f"none (random {name}, DESIGN §4)",
                       "split": None, "accuracy": None,
                       "command": f"benchmarks.bitnet_api.save_workload({name!r})",
                       "created": "benchmark", "seed": seed},
    }
    return Path(save_model(path, header, tensors))
