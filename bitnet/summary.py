"""The per-layer summary table of a model: shapes, parameters, MACs and bytes.

One row per layer of the graph (``docs/graph.md``) with: name, op, input → output shape
(H×W×C or C, batch left out), kind (``binary`` for ``qconv``/``bconv``/``bdense``,
``float`` for layers with float parameters, ``-`` for parameter-free ones), parameters
(logical weights and per-channel values, not words), MACs (float multiply-adds),
binary MACs (bits of xor+popcount, DESIGN §2: a ``qconv`` with k-bit inputs counts k per
MAC, one per bitplane), bytes as stored (packed words and int32 thresholds) and bytes the
same parameters would take as float32.

The table is computed from the header's layer list, the input shape and the tensors, so
the trainer's exporter can print the very same table before it writes a file::

    rows = summarize(header["layers"], tensors, header["input"]["shape"])
    print(format_table(rows))

Shapes are inferred here with the rules of ``docs/graph.md``; the layer list is assumed
valid (``bitnet.graph.Graph`` validates it; this module only reports).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["summarize", "totals", "format_table", "format_summary"]

_BINARY_OPS = {"qconv", "bconv", "bdense"}


def _pair(v, default=None):
    if v is None:
        v = default
    if isinstance(v, int):
        return (v, v)
    return (int(v[0]), int(v[1]))


def _conv_out(h, w, attrs):
    kh, kw = _pair(attrs.get("kernel"))
    sh, sw = _pair(attrs.get("stride"), (1, 1))
    if attrs.get("padding", "valid") == "same":
        return -(-h // sh), -(-w // sw)
    return (h - kh) // sh + 1, (w - kw) // sw + 1


def _fmt_shape(shape) -> str:
    return "×".join(str(s) for s in shape)


def summarize(layers, tensors, input_shape) -> list[dict]:
    """Return one dict per layer (and nothing else).

    Parameters
    ----------
    layers : list of dict
        The header's ``"layers"``.
    tensors : dict of str to numpy.ndarray
        The arrays the layers name (for stored byte counts).
    input_shape : sequence of int
        ``(n_mels, frames, 1)``.

    Returns
    -------
    list of dict
        Keys: ``name, op, inputs, input_shape, output_shape, kind, params, macs,
        binary_macs, bytes, float32_bytes`` (shapes are tuples without the batch axis).
    """
    shapes = {"input": tuple(int(s) for s in input_shape)}
    rows = []
    for layer in layers:
        op = layer["op"]
        attrs = layer.get("attrs", {}) or {}
        ins = list(layer.get("inputs", []))
        in_shape = shapes.get(ins[0], ()) if ins else ()
        macs = bmacs = params = 0
        out = in_shape
        if op in ("qconv", "bconv"):
            h, w = in_shape[0], in_shape[1]
            kh, kw = _pair(attrs["kernel"])
            ho, wo = _conv_out(h, w, attrs)
            cin, cout = int(attrs["in_channels"]), int(attrs["out_channels"])
            out = (ho, wo, cout)
            per = ho * wo * cout * kh * kw * cin
            bmacs = per * (int(attrs.get("bits", 8)) if op == "qconv" else 1)
            params = cout * kh * kw * cin
        elif op == "bdense":
            cin, cout = int(attrs["in_features"]), int(attrs["out_features"])
            out = (cout,)
            bmacs = cin * cout
            params = cin * cout
        elif op == "dense":
            cin, cout = int(attrs["in_features"]), int(attrs["out_features"])
            out = (cout,)
            macs = cin * cout
        elif op in ("maxpool", "avgpool"):
            kh, kw = _pair(attrs["kernel"])
            sh, sw = _pair(attrs.get("stride"), (kh, kw))
            out = ((in_shape[0] - kh) // sh + 1, (in_shape[1] - kw) // sw + 1, in_shape[2])
        elif op == "global_avgpool":
            out = (in_shape[-1],)
        elif op == "flatten":
            out = (math.prod(in_shape),)
        elif op == "concat":
            c = sum(shapes[i][-1] for i in ins)
            out = tuple(in_shape[:-1]) + (c,)
        # quantize, sign, add: shape unchanged
        shapes[layer.get("output", layer.get("name"))] = tuple(out)

        refs = layer.get("tensors", {}) or {}
        stored = 0
        extra = 0
        for role, tname in refs.items():
            arr = tensors.get(tname)
            if arr is None:
                continue
            stored += int(np.asarray(arr).nbytes)
            if op in _BINARY_OPS and role == "weight":
                continue  # counted logically above
            extra += int(np.asarray(arr).size)
        params += extra
        if op in _BINARY_OPS:
            kind = "binary"
        elif refs:
            kind = "float"
        else:
            kind = "-"
        rows.append(
            {
                "name": layer.get("name", ""),
                "op": op,
                "inputs": ins,
                "input_shape": tuple(in_shape),
                "output_shape": tuple(out),
                "kind": kind,
                "params": params,
                "macs": macs,
                "binary_macs": bmacs,
                "bytes": stored,
                "float32_bytes": 4 * params,
            }
        )
    return rows


def totals(rows) -> dict:
    """Sum the numeric columns of :func:`summarize` rows; add the packed/float32 ratio."""
    t = {k: sum(r[k] for r in rows) for k in ("params", "macs", "binary_macs", "bytes", "float32_bytes")}
    t["binary_params"] = sum(r["params"] for r in rows if r["kind"] == "binary")
    t["compression"] = t["float32_bytes"] / t["bytes"] if t["bytes"] else float("nan")
    return t


def _si(n: int) -> str:
    if n == 0:
        return "0"
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def _bytes(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.2f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} B"


def format_table(rows) -> str:
    """A plain-text table of :func:`summarize` rows with a totals line."""
    head = ["layer", "op", "input → output", "kind", "params", "MACs", "binary MACs", "bytes", "float32"]
    body = []
    for r in rows:
        body.append(
            [
                r["name"],
                r["op"],
                f"{_fmt_shape(r['input_shape'])} → {_fmt_shape(r['output_shape'])}",
                r["kind"],
                f"{r['params']:,}",
                _si(r["macs"]),
                _si(r["binary_macs"]),
                _bytes(r["bytes"]),
                _bytes(r["float32_bytes"]),
            ]
        )
    t = totals(rows)
    foot = ["total", "", "", "", f"{t['params']:,}", _si(t["macs"]), _si(t["binary_macs"]), _bytes(t["bytes"]), _bytes(t["float32_bytes"])]
    widths = [max(len(str(row[i])) for row in [head, *body, foot]) for i in range(len(head))]
    right = {4, 5, 6, 7, 8}

    def line(cells):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [line(head), rule, *(line(b) for b in body), rule, line(foot)]
    if t["bytes"]:
        out.append(f"stored {_bytes(t['bytes'])}, {t['compression']:.1f}× smaller than float32 ({_bytes(t['float32_bytes'])})")
    return "\n".join(out)


def format_summary(header: dict, tensors: dict, path=None) -> str:
    """The full summary: source, frontend, the layer table, labels and provenance."""
    rows = summarize(header["layers"], tensors, header["input"]["shape"])
    fe = header.get("frontend", {})
    n_mels, frames, _ = header["input"]["shape"]
    lines = []
    if path is not None:
        lines.append(f"model: {path}")
    sr = fe.get("sample_rate")
    hop = fe.get("hop_length")
    secs = f", {((frames - 1) * hop) / sr:.3f} s window" if sr and hop else ""
    lines.append(f"input: {n_mels} mels × {frames} frames at {sr} Hz (n_fft {fe.get('n_fft')}, hop {hop}{secs})")
    lines.append("")
    lines.append(format_table(rows))
    lines.append("")
    labels = header.get("labels", [])
    lines.append(f"labels ({len(labels)}): {', '.join(labels)}")
    prov = header.get("provenance", {})
    if prov:
        lines.append("provenance:")
        for k, v in prov.items():
            lines.append(f"  {k}: {v}")
    return "\n".join(lines)
