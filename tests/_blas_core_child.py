"""Child process of tests/test_blas_cores.py: stream == whole file, on this BLAS core.

Run with ``OPENBLAS_CORETYPE`` set (or not) by the parent; prints one JSON object:
the BLAS kernel set threadpoolctl reports and, for each check, whether the two sides
are bit-identical (with the largest difference where they are not).

Checks
------
frontend
    ``log_mel(whole, top_db=None)`` against :class:`bitnet.LogMelStream` fed the same
    signal in random chunks (several seeds and chunk sizes, so frames land at every
    position of the frontend's fixed-size matrix blocks).
windows
    ``sliding_windows`` of the whole signal against :class:`bitnet.features.WindowStream`.
logits
    The model's logits for a batch of windows against one window at a time.
stream
    ``Model.predict(whole).window_probabilities`` against ``Model.stream(chunks)``
    (tests/test_model.py::test_stream_equals_whole_file_windows, which failed on
    OpenBLAS's Zen/Haswell kernels).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np


def _blas() -> str:
    try:
        import threadpoolctl
    except ImportError:
        return "unknown (no threadpoolctl)"
    info = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
    return ",".join(f"{i.get('internal_api')}:{i.get('architecture')}" for i in info) or "none"


def _diff(a: np.ndarray, b: np.ndarray) -> dict:
    if a.shape != b.shape:
        return {"equal": False, "why": f"shapes {a.shape} vs {b.shape}"}
    equal = bool(np.array_equal(a.view(np.uint32), b.view(np.uint32)))
    return {"equal": equal, "max_abs": float(np.abs(a.astype(np.float64) - b).max()) if a.size else 0.0}


def _chunks(y: np.ndarray, rng, biggest: int):
    i = 0
    while i < y.shape[0]:
        k = int(rng.integers(1, biggest))
        yield y[i : i + k]
        i += k


def _tone(seconds: float, sr: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * 350.0 * t) * np.hanning(t.size) + 0.02 * rng.standard_normal(t.size)
    return y.astype(np.float32)


def main() -> int:
    import bitnet
    from bitnet.testing.digits import digits_graph
    from bitnet.features import WindowStream, sliding_windows
    from bitnet.frontend import LogMelStream, log_mel
    from bitnet.modelfile import save_model

    out = {"blas": _blas()}
    fe = dict(sr=16000, n_fft=400, hop_length=160, n_mels=40)
    y = _tone(2.3, 16000, 0)
    whole = log_mel(y, **fe, top_db=None)
    worst = {"equal": True, "max_abs": 0.0}
    for seed, biggest in [(0, 50), (1, 700), (2, 3000), (3, 9000)]:
        s = LogMelStream(**fe)
        parts = [s.push(c) for c in _chunks(y, np.random.default_rng(seed), biggest)] + [s.flush()]
        d = _diff(np.concatenate(parts, axis=1), whole)
        if not d["equal"]:
            worst = d
    out["frontend"] = worst

    with tempfile.TemporaryDirectory() as tmp:
        header, tensors = digits_graph(seed=1, channels=(8, 16, 16))
        save_model(Path(tmp) / "small.bnn", header, tensors)
        small = bitnet.load(Path(tmp) / "small.bnn")
    sr = small.sample_rate
    y = _tone(4.1, sr, 0)
    hop = max(1, int(small.frontend.frames) // 2)
    feats = sliding_windows(y, small.frontend, hop)
    ws = WindowStream(small.frontend, hop)
    parts = [ws.push(c) for c in _chunks(y, np.random.default_rng(5), 3000)] + [ws.flush()]
    out["windows"] = _diff(np.concatenate([p for p in parts if len(p)]), feats)
    batch = small.logits(feats)
    one = np.concatenate([small.logits(feats[i : i + 1]) for i in range(feats.shape[0])])
    out["logits"] = _diff(one, batch)
    whole_p = small.predict(y, sample_rate=sr).window_probabilities
    preds = list(small.stream(_chunks(y, np.random.default_rng(7), 3000), sr))
    out["stream"] = _diff(np.stack([p.probabilities for p in preds]) if preds else np.zeros((0, 10), np.float32), whole_p)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
