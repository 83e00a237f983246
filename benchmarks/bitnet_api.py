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


def save_workload(name: str, path: str | Path) -> Path:
    """Write a random-parameter DESIGN §4 workload (e.g. ``"KWS-BNN-M"``) as a ``.bnn`` file."""
    try:
        from bitnet import workloads
    except ImportError as exc:
        raise ImportError(f"bitnet.workloads is not available yet ({exc})") from exc
    from bitnet.modelfile import save_model

    for fname in ("model_file_parts", "header_and_tensors", "as_model"):
        fn = getattr(workloads, fname, None)
        if callable(fn):
            header, tensors = fn(name)
            return Path(save_model(path, header, tensors))
    raise ImportError("bitnet.workloads has no function returning (header, tensors) yet")
