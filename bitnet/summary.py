"""The per-layer summary table of a model: shapes, parameters, MACs and bytes.

One row per layer of the graph (``docs/graph.md``) with: name, op, input → output shape
(H×W×C or C, batch left out, true channel counts), kind (``binary`` for
``qconv``/``bconv``/``bdense``, ``float`` for layers with float parameters, ``-`` for
parameter-free ones), parameters (logical weights and per-channel values, not words),
MACs (multiply-accumulates of any kind), binary MACs (bits of xor+popcount: a ``qconv``
with k-bit inputs counts k per MAC, one per bitplane, docs/design.md §2), bytes as
stored (packed words and int32 thresholds) and bytes the same parameters would take as
float32.

Every figure is the op's own (:class:`bitnet.ops.Counts`, read through
``Graph(..., bind=False)``, which checks the graph without touching a kernel), so the
engine, this table and the trainer's exporter count alike::

    rows = summarize(header["layers"], tensors, header["input"]["shape"])
    print(format_table(rows))
"""

from __future__ import annotations

__all__ = ["summarize", "totals", "format_table", "format_summary"]


def _fmt_shape(shape) -> str:
    return "×".join(str(s) for s in shape)


def summarize(layers, tensors, input_shape, output=None) -> list[dict]:
    """Return one dict per layer (and nothing else).

    Parameters
    ----------
    layers : list of dict
        The header's ``"layers"``.
    tensors : dict of str to numpy.ndarray
        The arrays the layers name.
    input_shape : sequence of int
        ``(n_mels, frames, 1)``.
    output : str, optional
        The graph output (default: the last layer's).

    Returns
    -------
    list of dict
        Keys: ``name, op, inputs, input_shape, output_shape, kind, params, macs,
        binary_macs, bytes, float32_bytes`` (shapes are tuples without the batch axis).

    Raises
    ------
    bitnet.ParameterError
        The layer list is not a valid graph.
    """
    from .graph import Graph

    g = Graph(layers, tensors, tuple(int(s) for s in input_shape), output=output, bind=False)
    rows = []
    for li in g.layer_info:
        rows.append(
            {
                "name": li.name,
                "op": li.op,
                "inputs": list(li.inputs),
                "input_shape": tuple(li.in_info[0].logical_shape),
                "output_shape": tuple(li.out_info.logical_shape),
                "kind": li.kind,
                "params": li.params,
                "macs": li.macs,
                "binary_macs": li.binary_macs,
                "bytes": li.weight_bytes,
                "float32_bytes": 4 * li.params,
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
    rows = summarize(header["layers"], tensors, header["input"]["shape"], header.get("output"))
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
