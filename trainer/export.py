"""Export a trained run to one ``.bnn`` file the engine runs bit-exactly.

``python -m trainer export runs/NAME --out model.bnn``

Steps:

1. Rebuild the model of the run (``model.pt``, batch-norm statistics already recomputed).
2. Walk its layers and emit the graph of docs/graph.md (NHWC; flatten order h, w, c);
   each layer emits its own ops (``to_engine``, :mod:`trainer.engine`):
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
4. Print the engine's per-layer table (:mod:`bitnet.summary`) and warn loudly about float layers that should be binary.
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
from .engine import Emitter, ExportError

__all__ = ["ExportError", "to_graph", "export_model", "export_run", "layer_table"]


def to_graph(model: M.Net):
    """Translate a binarized :class:`trainer.models.Net` into ``(layers, tensors, output)``.

    Each layer emits its own engine op(s) (``to_engine``, :mod:`trainer.engine`); a layer
    without one has no engine op and cannot be exported.
    """
    if model.float_twin:
        raise ExportError("this is a float twin: only binarized models export to the engine")
    em = Emitter()
    v = "input"
    for m in model.layers:
        emit = getattr(m, "to_engine", None)
        if emit is None:
            raise ExportError(f"layer {type(m).__name__} has no engine op; cannot export")
        v = emit(em, v)
    return em.layers, em.tensors, v


def layer_table(graph_layers, tensors, input_shape):
    """The engine's per-layer rows (:func:`bitnet.summary.summarize`: the ops' own
    shapes, parameters, MACs, binary MACs and bytes) for an input ``(n_mels, frames)``."""
    from bitnet.summary import summarize

    return summarize(graph_layers, tensors, [int(input_shape[0]), int(input_shape[1]), 1])


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
                 tol: float = 1e-4, provenance: dict | None = None, log=print, gate: bool = True) -> dict:
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
    from bitnet.summary import format_table  # the engine's own table: the file and `bitnet summary` agree

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
    if not gate:
        header["gate"] = False
    path = save_model(out, header, tensors)
    size = Path(path).stat().st_size
    log(f"wrote {path} ({size:,d} bytes)")
    return {"max_abs_diff": diff, "agree": same, "accuracy": acc, "table": rows,
            "path": str(path), "bytes": size}


#: (description prefix, dataset, licence, redistribution note) of the datasets runs name
_TERMS = [("FSDD", "the Free Spoken Digit Dataset", "CC BY-SA 4.0", "; redistributed under the same license"),
          ("ESC-10", "ESC-10 (Piczak 2015)", "CC BY 3.0", ""),
          ("Speech Commands", "Speech Commands v0.02 (Warden 2018)", "CC BY 4.0", "")]


def _terms(desc: str):
    return next((t for t in _TERMS if desc.startswith(t[0])), None)


def pretraining(init: str | None) -> dict:
    """What the provenance records of a run that started from the checkpoint ``init``:
    the checkpoint, and where it says so, the pretraining run's dataset, command and test
    accuracy ({} without ``init``; only the checkpoint where it cannot be read)."""
    if not init:
        return {}
    try:
        ck = torch.load(init, map_location="cpu", weights_only=False)
    except OSError:
        ck = None
    info = (ck.get("info") or {}) if isinstance(ck, dict) else {}
    res, cfg = info.get("result") or {}, info.get("config") or {}
    out = {"checkpoint": str(init), "dataset": info.get("dataset") or res.get("dataset"),
           "command": cfg.get("command") or res.get("command"), "test_accuracy": res.get("test_accuracy")}
    return {k: v for k, v in out.items() if v is not None}


def run_license(desc: str, init: str | None = None, pre: dict | None = None) -> str:
    """The licence line of a run on the dataset ``desc`` ("" if unknown) whose weights
    started from the run checkpoint ``init`` (pretraining): both datasets' terms are named.
    ``pre``: :func:`pretraining` of ``init`` where the caller has it already."""
    t = _terms(desc)
    if t is None:
        return ""
    lic = f"weights derived from {t[1]}, {t[2]}{t[3]}"
    if not init:
        return lic
    pre = _terms((pre if pre is not None else pretraining(init)).get("dataset", ""))
    if pre:
        return lic + f"; initialised from weights pretrained on {pre[1]}, {pre[2]}"
    return lic + f"; initialised from {init} (its terms apply too)"


def export_run(run_dir, out, max_clips: int = 0, tol: float = 1e-4, which: str = "model.pt",
               log=print, gate: bool = True, float_twin=None, evidence=None) -> dict:
    """Export the run in ``run_dir`` (see the module docstring).

    ``evidence``: ``{name: path of a JSON file}``, recorded in the provenance under
    ``"evidence"`` (e.g. the leave-one-speaker-out and robustness summaries of the recipe).
    """
    from .train import load_run

    run_dir = Path(run_dir)
    model, info = load_run(run_dir, which)
    fcfg = D.frontend_config(**info["frontend"])
    feat = D.Featurizer(fcfg)
    if not str(info.get("features", "")).startswith("bitnet.features"):
        raise ExportError(f"{run_dir} was trained on {info.get('features')} features, not "
                          "bitnet.features; retrain before exporting")
    _, test_set, desc = D.load_dataset(info["data"], info["split"], info["config"]["seed"])
    if max_clips:
        test_set = test_set.subset(np.arange(min(max_clips, len(test_set))))
    x = D.clean_features(feat, test_set, info["config"].get("cache_dir") or None)
    res = info.get("result", {})
    acc = {"test": res.get("test_accuracy")}
    twin = Path(float_twin) if float_twin else run_dir.parent / (run_dir.name + "-float")
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
    if evidence:
        prov["evidence"] = {}
        for name, path in evidence.items():
            try:
                prov["evidence"][name] = json.loads(Path(path).read_text())
            except (OSError, ValueError) as exc:
                raise ExportError(f"--evidence {name}={path}: {exc}") from None
    init = info["config"].get("init")
    pre = pretraining(init)
    if pre:
        prov["pretraining"] = pre
    lic = run_license(desc, init, pre)
    if lic:
        prov["license"] = lic
    r = export_model(model, info, out, x, test_set.labels, tol=tol, provenance=prov, log=log, gate=gate)
    return r
