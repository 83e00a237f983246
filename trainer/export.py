"""Export a trained run to one ``.bnn`` file the engine runs bit-exactly.

``python -m trainer export runs/NAME --out model.bnn``

Steps:

1. Rebuild the model of the run (``model.pt``, batch-norm statistics already recomputed).
2. Walk its layers and emit the graph of docs/graph.md (NHWC; flatten order h, w, c):
   binary weights ``sign(W_latent)`` packed with :func:`bitnet.packing.pack_signs`
   (set bit = -1, channel c in word c // 64, bit c % 64, pad bits 0) in the canonical
   layouts ``(C_out, kh, kw, ceil(C_in/64))`` / ``(C_out, ceil(C_in/64))``; batch norm
   folded into integer thresholds or a float32 affine map, derived in float64 by
   :func:`trainer.layers.fold_bn` and :func:`trainer.layers.thresholds_from_affine`
   (derivation in their docstrings).
3. Run the engine (``bitnet.graph.Graph``) on the run's test clips, features from the
   engine's own ``clip_features``, and compare with PyTorch eval mode. **Refuse to write**
   a file whose predicted classes differ on any clip or whose logits differ by more than
   ``tol``; report the max abs logit difference.
4. Print the per-layer table and warn loudly about float layers that should be binary.
5. Write the file with :func:`bitnet.modelfile.save_model`: frontend settings, graph,
   labels, provenance (dataset, split, accuracies, training command, export command,
   date, versions).
"""

from __future__ import annotations

import datetime as _dt
import json
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from . import data as D
from . import models as M
from .layers import BinaryConv2d, BinaryConvBN, BinaryLinear, BiRealBlock, QConv2d, Quantizer, Sign

__all__ = ["ExportError", "to_graph", "export_model", "export_run", "layer_table"]


class ExportError(RuntimeError):
    """The model cannot be exported, or the engine disagrees with PyTorch."""


def _pack(w_signs_last: np.ndarray) -> np.ndarray:
    """Pack +-1 values along the last axis (bit set iff value < 0)."""
    from bitnet.packing import pack_signs

    return pack_signs(np.ascontiguousarray(w_signs_last, dtype=np.float32), axis=-1)


def _binary_weight(conv) -> np.ndarray:
    w = conv.weight.detach().cpu().numpy().astype(np.float32)
    return np.where(w >= 0, np.float32(1), np.float32(-1))  # sign(0) = +1


class _Emitter:
    def __init__(self):
        self.layers, self.tensors = [], {}
        self.kind = {"input": "real"}
        self.channels = {"input": 1}
        self.names = set()

    def name(self, base):
        i = 0
        while f"{base}{i}" in self.names:
            i += 1
        n = f"{base}{i}"
        self.names.add(n)
        return n

    def add(self, op, inputs, attrs=None, tensors=None, kind="real", channels=None, base=None):
        name = self.name(base or op)
        refs = {}
        for role, arr in (tensors or {}).items():
            tname = f"{name}.{role}"
            self.tensors[tname] = arr
            refs[role] = tname
        layer = {"name": name, "op": op, "inputs": list(inputs), "output": name,
                 "attrs": dict(attrs or {})}
        if refs:
            layer["tensors"] = refs
        self.layers.append(layer)
        self.kind[name] = kind
        self.channels[name] = channels if channels is not None else self.channels[inputs[0]]
        return name


def _emit_binary(em: _Emitter, m: BinaryConvBN, v: str) -> str:
    conv = m.conv
    out_tensors = m.engine_tensors()
    kind = "bits" if m.output == "threshold" else "real"
    if isinstance(conv, BinaryLinear):
        if em.kind[v] != "bits":
            raise ExportError(f"bdense needs bits in, got {em.kind[v]} (add a sign before it)")
        w = _pack(_binary_weight(conv))
        attrs = {"in_features": conv.in_features, "out_features": conv.out_features,
                 "output": m.output}
        return em.add("bdense", [v], attrs, {"weight": w, **out_tensors}, kind,
                      conv.out_features)
    wb = _binary_weight(conv).transpose(0, 2, 3, 1)  # (C_out, kh, kw, C_in)
    attrs = {"in_channels": conv.in_channels, "out_channels": conv.out_channels,
             "kernel": list(conv.kernel), "stride": list(conv.stride),
             "padding": conv.padding, "output": m.output}
    if isinstance(conv, QConv2d):
        if em.kind[v] != "levels":
            raise ExportError(f"qconv needs quantized levels in, got {em.kind[v]}")
        attrs["bits"] = conv.bits
        op = "qconv"
    else:
        if em.kind[v] != "bits":
            raise ExportError(f"bconv needs bits in, got {em.kind[v]} (add a sign before it)")
        op = "bconv"
    return em.add(op, [v], attrs, {"weight": _pack(wb), **out_tensors}, kind,
                  conv.out_channels)


def _emit_sign(em: _Emitter, m: Sign, v: str) -> str:
    if em.kind[v] != "real":
        raise ExportError(f"sign needs real values in, got {em.kind[v]}")
    t = {}
    if m.shift is not None:
        t["shift"] = m.shift.detach().cpu().numpy().astype(np.float32)
    return em.add("sign", [v], {"channels": m.channels}, t, "bits", m.channels)


def _pool_attrs(m):
    k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size, m.kernel_size)
    s = m.stride if isinstance(m.stride, tuple) else (m.stride, m.stride)
    pad = m.padding if isinstance(m.padding, tuple) else (m.padding, m.padding)
    if any(pad) or getattr(m, "ceil_mode", False):
        raise ExportError("pools must be 'valid' (no padding, no ceil mode)")
    return {"kernel": list(k), "stride": list(s)}


def to_graph(model: M.Net):
    """Translate a binarized :class:`trainer.models.Net` into ``(layers, tensors, output)``."""
    if model.float_twin:
        raise ExportError("this is a float twin: only binarized models export to the engine")
    em = _Emitter()
    v = "input"
    for m in model.layers:
        if isinstance(m, Quantizer):
            v = em.add("quantize", [v], {"bits": m.bits, "offset": m.offset, "scale": m.scale},
                       kind="levels", base="quant")
        elif isinstance(m, BinaryConvBN):
            v = _emit_binary(em, m, v)
        elif isinstance(m, Sign):
            v = _emit_sign(em, m, v)
        elif isinstance(m, BiRealBlock):
            s = _emit_sign(em, m.sign, v)
            c = _emit_binary(em, m.conv, s)
            v = em.add("add", [v, c], kind="real", base="add")
        elif isinstance(m, M.MaxPool):
            v = em.add("maxpool", [v], _pool_attrs(m), kind=em.kind[v])
        elif isinstance(m, M.AvgPool):
            if em.kind[v] != "real":
                raise ExportError("avgpool needs real values")
            v = em.add("avgpool", [v], _pool_attrs(m), kind="real")
        elif isinstance(m, M.GlobalAvgPool):
            v = em.add("global_avgpool", [v], {"channels": em.channels[v]}, kind="real")
        elif isinstance(m, M.Flatten):
            v = em.add("flatten", [v], kind="real", channels=-1)
        elif isinstance(m, M.Duplicate):
            v = em.add("concat", [v, v], kind="real", channels=2 * em.channels[v])
        elif isinstance(m, M.Dense):
            w = m.weight.detach().cpu().numpy().astype(np.float32)
            b = (m.bias.detach().cpu().numpy().astype(np.float32) if m.bias is not None
                 else np.zeros(m.out_features, np.float32))
            v = em.add("dense", [v], {"in_features": m.in_features,
                                      "out_features": m.out_features},
                       {"weight": w, "bias": b}, kind="real", channels=m.out_features,
                       base="fc")
        else:
            raise ExportError(f"layer {type(m).__name__} has no engine op; cannot export")
    return em.layers, em.tensors, v


# ---------------------------------------------------------------------------------------
# Per-layer table


def _shapes(graph_layers, input_shape):
    """Output shape (H, W, C) or (C,) of every value, from the layer attrs."""
    shp = {"input": (input_shape[0], input_shape[1], 1)}
    for L in graph_layers:
        a, x = L["attrs"], shp[L["inputs"][0]]
        op = L["op"]
        if op in ("quantize", "sign", "add"):
            s = x
        elif op in ("qconv", "bconv"):
            kh, kw = a["kernel"]
            sh, sw = a["stride"]
            if a["padding"] == "same":
                s = (-(-x[0] // sh), -(-x[1] // sw), a["out_channels"])
            else:
                s = ((x[0] - kh) // sh + 1, (x[1] - kw) // sw + 1, a["out_channels"])
        elif op in ("maxpool", "avgpool"):
            kh, kw = a["kernel"]
            sh, sw = a.get("stride", a["kernel"])
            s = ((x[0] - kh) // sh + 1, (x[1] - kw) // sw + 1, x[2])
        elif op == "global_avgpool":
            s = (x[-1],)
        elif op == "flatten":
            s = (int(np.prod(x)),)
        elif op == "concat":
            s = x[:-1] + (sum(shp[i][-1] for i in L["inputs"]),)
        elif op in ("bdense",):
            s = (a["out_features"],)
        elif op == "dense":
            s = (a["out_features"],)
        else:
            s = x
        shp[L["output"]] = s
    return shp


def layer_table(graph_layers, tensors, input_shape):
    """Rows of (name, op, out shape, params, kind, MACs, bytes in file, float32 bytes)."""
    shp = _shapes(graph_layers, input_shape)
    rows = []
    for L in graph_layers:
        op, a, out = L["op"], L["attrs"], shp[L["output"]]
        nbytes = sum(tensors[t].nbytes for t in L.get("tensors", {}).values())
        params = macs = 0
        kind = "-"
        extra = 0
        if op in ("qconv", "bconv"):
            kh, kw = a["kernel"]
            params = a["out_channels"] * kh * kw * a["in_channels"]
            macs = out[0] * out[1] * params
            extra = a["out_channels"] * (2 if a["output"] in ("threshold", "affine") else 0)
            kind = f"binary ({a['bits']}-bit in)" if op == "qconv" else "binary"
        elif op == "bdense":
            params = a["out_features"] * a["in_features"]
            macs = params
            extra = 2 * a["out_features"]
            kind = "binary"
        elif op == "dense":
            params = a["out_features"] * a["in_features"] + a["out_features"]
            macs = a["out_features"] * a["in_features"]
            kind = "float"
        elif op == "sign" and "tensors" in L:
            params = a["channels"]
            kind = "float (shift)"
        rows.append({"name": L["name"], "op": op, "output": "x".join(map(str, out)),
                     "params": params, "kind": kind, "macs": macs, "bytes": nbytes,
                     "float32_bytes": 4 * (params + extra)})
    return rows


def format_table(rows) -> str:
    head = f"{'layer':10s} {'op':15s} {'output':>12s} {'params':>9s} {'kind':>18s} " \
           f"{'MACs':>12s} {'bytes':>9s} {'f32 bytes':>10s}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['name']:10s} {r['op']:15s} {r['output']:>12s} {r['params']:9d} "
                     f"{r['kind']:>18s} {r['macs']:12,d} {r['bytes']:9d} {r['float32_bytes']:10d}")
    bin_macs = sum(r["macs"] for r in rows if r["kind"].startswith("binary"))
    f_macs = sum(r["macs"] for r in rows if r["kind"].startswith("float"))
    lines.append("-" * len(head))
    lines.append(f"total: {sum(r['params'] for r in rows):,d} parameters "
                 f"({sum(r['params'] for r in rows if r['kind'].startswith('binary')):,d} binary), "
                 f"{bin_macs:,d} binary MACs, {f_macs:,d} float MACs, "
                 f"{sum(r['bytes'] for r in rows):,d} bytes of tensors "
                 f"(float32 model: {sum(r['float32_bytes'] for r in rows):,d} bytes)")
    return "\n".join(lines)


def _float_warnings(model: nn.Module, rows) -> list:
    """Loud warnings for layers that were meant to be binary but are float."""
    msgs = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and not isinstance(m, M.Dense):
            msgs.append(f"module {name} ({type(m).__name__}) is a FLOAT layer inside a "
                        "binarized model")
    dense = [r for r in rows if r["op"] == "dense"]
    for r in dense[:-1]:
        msgs.append(f"layer {r['name']}: float dense before the last layer (meant to be bdense?)")
    total = sum(r["params"] for r in rows) or 1
    for r in rows:
        if r["kind"].startswith("float") and r["params"] > 0.25 * total and r["params"] > 4096:
            msgs.append(f"layer {r['name']}: float layer holds {r['params']} of {total} "
                        "parameters (meant to be binary?)")
    return msgs


# ---------------------------------------------------------------------------------------


def _engine_logits(layers, tensors, output, input_shape, x: np.ndarray) -> np.ndarray:
    from bitnet.graph import Graph

    g = Graph(layers, tensors, input_shape=(input_shape[0], input_shape[1], 1), output=output)
    out = []
    for i in range(0, len(x), 64):
        out.append(np.asarray(g.run(np.ascontiguousarray(x[i:i + 64], dtype=np.float32))))
    return np.concatenate(out).astype(np.float32)


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except Exception:  # pragma: no cover
        return ""


def export_model(model: M.Net, info: dict, out, x_check: np.ndarray, y_check=None,
                 tol: float = 1e-4, provenance: dict | None = None, log=print) -> dict:
    """Export ``model``; check it against the engine on ``x_check`` first.

    Parameters
    ----------
    model : trainer.models.Net (eval mode is set here)
    info : dict
        ``labels``, ``frontend`` (``FrontendConfig.to_dict()``), ``dataset``, ``split``...
    out : path of the ``.bnn`` file
    x_check : float32 (N, n_mels, frames)
        Features (from ``bitnet.features.clip_features``) for the agreement check.
    y_check : int (N,), optional
        Labels: the engine's accuracy on them goes into the provenance.
    tol : float
        Largest allowed max-abs logit difference.

    Returns
    -------
    dict with ``max_abs_diff``, ``agree``, ``accuracy``, ``table`` (rows), ``path``.

    Raises
    ------
    ExportError
        The graph cannot be built, or engine and PyTorch disagree (nothing is written).
    """
    from bitnet.modelfile import save_model

    model.eval()
    layers, tensors, output = to_graph(model)
    shape = tuple(x_check.shape[1:])
    with torch.no_grad():
        ref = model(torch.from_numpy(np.ascontiguousarray(x_check, dtype=np.float32))).numpy()
    eng = _engine_logits(layers, tensors, output, shape, x_check)
    diff = float(np.max(np.abs(eng - ref))) if len(ref) else 0.0
    same = np.array_equal(eng.argmax(1), ref.argmax(1))
    n_bad = int(np.sum(eng.argmax(1) != ref.argmax(1)))
    log(f"engine vs PyTorch eval mode on {len(x_check)} clips: max |logit diff| = {diff:.3g}, "
        f"predictions {'identical' if same else f'DIFFER on {n_bad} clips'}")
    if not same or not diff <= tol:
        raise ExportError(f"engine disagrees with PyTorch (max abs logit diff {diff:.3g}, "
                          f"{n_bad} different predictions; tol {tol}); refusing to write {out}")
    try:  # the engine's own table (bitnet.summary), so the file and `bitnet summary` agree
        from bitnet.summary import format_table as _fmt, summarize

        rows = summarize(layers, tensors, [int(shape[0]), int(shape[1]), 1])
        log(_fmt(rows))
    except ImportError:  # pragma: no cover - older engine
        rows = layer_table(layers, tensors, shape)
        log(format_table(rows))
    for msg in _float_warnings(model, rows):
        warnings.warn("!!! " + msg, stacklevel=2)
        log("WARNING !!! " + msg)
    acc = None
    if y_check is not None:
        acc = float(np.mean(eng.argmax(1) == np.asarray(y_check)))
        log(f"engine accuracy on the check clips: {acc:.4f}")
    prov = dict(provenance or {})
    prov.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    prov.setdefault("engine_check", {"clips": int(len(x_check)), "max_abs_logit_diff": diff,
                                     "predictions_identical": bool(same)})
    header = {
        "frontend": info["frontend"],
        "input": {"shape": [int(shape[0]), int(shape[1]), 1]},
        "layers": layers,
        "output": output,
        "labels": list(info["labels"]),
        "provenance": prov,
    }
    path = save_model(out, header, tensors)
    size = Path(path).stat().st_size
    log(f"wrote {path} ({size:,d} bytes)")
    return {"max_abs_diff": diff, "agree": same, "accuracy": acc, "table": rows,
            "path": str(path), "bytes": size}


def export_run(run_dir, out, max_clips: int = 0, tol: float = 1e-4, which: str = "model.pt",
               log=print) -> dict:
    """Export the run in ``run_dir`` (see the module docstring)."""
    from .train import load_run

    run_dir = Path(run_dir)
    model, info = load_run(run_dir, which)
    fcfg = D.frontend_config(**info["frontend"])
    feat = D.Featurizer(fcfg)
    if not feat.exportable:
        raise ExportError("bitnet.features is missing: exported models must use the engine's "
                          "own frontend")
    if not str(info.get("features", "")).startswith("bitnet.features"):
        raise ExportError(f"{run_dir} was trained on {info.get('features')} features, not "
                          "bitnet.features; retrain before exporting")
    _, test_set, desc = D.load_dataset(info["data"], info["split"], info["config"]["seed"])
    if max_clips:
        test_set = test_set.subset(np.arange(min(max_clips, len(test_set))))
    x = D.clean_features(feat, test_set, info["config"].get("cache_dir") or None)
    res = info.get("result", {})
    acc = {"test": res.get("test_accuracy")}
    twin = run_dir.parent / (run_dir.name + "-float")
    for cand in (twin, Path(str(info["config"].get("teacher") or "__none__"))):
        if (cand / "result.json").exists():
            tres = json.loads((cand / "result.json").read_text())
            acc["float_twin_test"] = tres["test_accuracy"]
            twin_cmd = tres.get("command", "")
            break
    else:
        twin_cmd = ""
    prov = {
        "dataset": desc if not desc.startswith("FSDD") else
        desc + "; Free Spoken Digit Dataset (Jakobovski), CC BY-SA 4.0",
        "split": info["split"],
        "data": info["data"],
        "model": info["model"],
        "model_kwargs": info.get("model_kwargs", {}),
        "accuracy": acc,
        "command": info["config"].get("command", ""),
        **({"finalize_command": res["finalize_command"]} if res.get("finalize_command") else {}),
        "bn_statistics": info["config"].get("bn_recompute", "clean"),
        **({"float_twin_command": twin_cmd} if twin_cmd else {}),
        "export_command": "python -m trainer " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "trainer": {"torch": torch.__version__, "git": _git_commit(),
                    "epochs": info["config"].get("epochs"), "seed": info["config"].get("seed")},
    }
    if desc.startswith("FSDD"):
        prov["license"] = ("weights derived from the Free Spoken Digit Dataset, "
                           "CC BY-SA 4.0; redistributed under the same license")
    r = export_model(model, info, out, x, test_set.labels, tol=tol, provenance=prov, log=log)
    return r
