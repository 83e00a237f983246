"""Complexity side by side: each model as float32, INT8 and binary (``bitnet summary --compare``).

For every model the same network is counted three ways, from the ops' own counts
(:mod:`bitnet.summary`):

* **float32** — every parameter a 4-byte float, every MAC a float MAC;
* **INT8** — every parameter one byte, every MAC an 8-bit MAC;
* **binary** — as the file stores it: packed ±1 weights (1 bit), integer thresholds
  and float per-channel values; binary MACs (BOPs: bits of xor+popcount) for the
  binary layers, real MACs for the rest (pools, the last dense layer).

Latency is measured here, in the same run, for what the engine runs (the binary model,
batch 1, one thread, median of repeated runs on one window). The engine has no float or
INT8 runtime, so those columns are measured by ``python -m evaluation.zoo_table`` (with
PyTorch) and show ``-`` here. Accuracy is read from the model's provenance.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

__all__ = ["compare", "format_compare", "accuracy_of"]


def accuracy_of(model):
    """The test accuracy recorded in a model's provenance (float or None)."""
    acc = model.provenance.get("accuracy")
    if isinstance(acc, dict):
        acc = acc.get("test")
    return float(acc) if isinstance(acc, (int, float)) else None


def _totals(model):
    s = model.summary(as_dict=True)
    layers = [r for m in s.get("members", [s]) for r in m["layers"]]
    t = s["totals"]
    real_macs = sum(r["macs"] for r in layers if r["kind"] != "binary")
    return t, real_macs


def measure_latency(model, seconds: float = 0.5, min_reps: int = 5) -> float:
    """Median seconds of ``model.logits`` on one window (batch 1), after a warm-up."""
    x = np.zeros((1, int(model.frontend.n_mels), int(model.frontend.frames)), np.float32)
    x[:] = np.random.default_rng(0).normal(-40, 10, x.shape).clip(-80, 0)
    model.logits(x)
    times, end = [], time.perf_counter() + seconds
    while len(times) < min_reps or time.perf_counter() < end:
        t0 = time.perf_counter()
        model.logits(x)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def compare(models, names=None, seconds: float = 0.5) -> list[dict]:
    """One dict per model and precision.

    Parameters
    ----------
    models : list of bitnet.Model
    names : list of str, optional
        Row names (default: the file names).
    seconds : float
        Time spent measuring each model's latency.

    Returns
    -------
    list of dict
        Keys ``model, precision, params, macs, binary_macs, bytes, latency_ms,
        accuracy`` (``latency_ms`` None where not measured).
    """
    rows = []
    for i, m in enumerate(models):
        name = names[i] if names else m.path.name
        t, real_macs = _totals(m)
        lat = measure_latency(m, seconds) * 1e3
        acc = accuracy_of(m)
        common = {"model": name, "params": int(t["params"]), "accuracy": acc}
        rows.append({**common, "precision": "float32", "macs": int(t["macs"]), "binary_macs": 0,
                     "bytes": int(4 * t["params"]), "latency_ms": None})
        rows.append({**common, "precision": "INT8", "macs": int(t["macs"]), "binary_macs": 0,
                     "bytes": int(t["params"]), "latency_ms": None})
        rows.append({**common, "precision": "binary", "macs": int(real_macs),
                     "binary_macs": int(t["binary_macs"]), "bytes": int(t["bytes"]), "latency_ms": lat})
    return rows


def _si(n) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def _b(n) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.2f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} B"


def format_compare(rows, markdown: bool = False) -> str:
    """A plain-text (or Markdown) table of :func:`compare` rows."""
    head = ["model", "precision", "params", "MACs", "binary MACs (BOPs)", "bytes", "latency", "accuracy"]
    body = []
    for r in rows:
        lat = "-" if r["latency_ms"] is None else (f"{r['latency_ms']:.3f} ms" if r["latency_ms"] >= 1
                                                   else f"{r['latency_ms'] * 1e3:.0f} µs")
        acc = "-" if r["accuracy"] is None else f"{100 * r['accuracy']:.1f} %"
        body.append([r["model"], r["precision"], f"{r['params']:,}", _si(r["macs"]),
                     _si(r["binary_macs"]), _b(r["bytes"]), lat, acc])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(b) + " |" for b in body]
        return "\n".join(lines)
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    fmt = lambda cells: "  ".join(c.ljust(w) if i < 2 else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([fmt(head), "  ".join("-" * w for w in widths), *map(fmt, body)])
