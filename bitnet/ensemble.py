"""Ensembles: several models that share a frontend and labels, probabilities averaged.

>>> import bitnet
>>> ens = bitnet.load(["a.bnn", "b.bnn", "c.bnn"])          # doctest: +SKIP
>>> bitnet.save_ensemble(["a.bnn", "b.bnn", "c.bnn"], "abc.bnn")  # one file to ship
>>> bitnet.load("abc.bnn").predict("clip.wav")              # doctest: +SKIP

An :class:`Ensemble` is a :class:`bitnet.Model`: ``predict``, ``stream``, ``timeline``,
``summary`` and ``bitnet infer --model`` work unchanged. Its probabilities for a window
are the arithmetic mean of its members' softmax probabilities (the usual ensemble of
independently trained classifiers; a mean of logits would let one over-confident member
dominate). :meth:`Ensemble.logits` returns ``log`` of that mean, so that ``softmax`` of
it gives the mean back exactly and every code path that goes through logits (clip
policy, streams, timelines, batch) treats an ensemble like one model.

The file (why one file)
-----------------------
What users ship is one file, so an ensemble is stored as one ``.bnn`` with the usual
header (one ``frontend``, ``input``, ``labels``, ``provenance``) plus the optional key
``"members"``: a list of ``{"layers": [...], "output": NAME, "provenance": {...}}``,
one per member, each an ordinary graph of docs/graph.md over the same ``"input"``. The
top-level ``"layers"`` is empty and ``"output"`` is ``""``. Member ``k``'s tensors are
stored as ``m<k>.<name>``, so the whole ensemble sits under the file's one checksum.
``bitnet.load([...])`` of several files builds the same object in memory without
writing anything. Members must share frontend settings, input shape and labels (in
order): a window means the same thing to every member only then.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import ModelFileError, ParameterError
from .model import Model
from .results import softmax

__all__ = ["Ensemble", "save_ensemble", "ensemble_of"]

# the smallest probability whose log is kept: log(0) would be -inf in the logits
_TINY = 1e-30


class Ensemble(Model):
    """A :class:`bitnet.Model` whose probabilities are the mean of its members'.

    Attributes
    ----------
    members : list of bitnet.Model
        The member models (same frontend, input shape and labels).
    """

    def __init__(self, members, path, provenance=None):
        first = members[0]
        header = dict(first.header)
        header["layers"] = []
        header["output"] = ""
        header["provenance"] = dict(provenance or {"ensemble": f"{len(members)} members, "
                                                               "probabilities averaged"})
        super().__init__(header, {}, path, None, first.frontend)
        self.members = list(members)

    def __repr__(self):
        return (f"Ensemble({str(self.path)!r}, members={len(self.members)}, labels={len(self.labels)}, "
                f"sample_rate={self.sample_rate})")

    def logits(self, features):
        """``log`` of the members' mean probabilities, ``(N, n_classes)`` float32."""
        probs = [softmax(m.logits(features)) for m in self.members]
        mean = np.mean(probs, axis=0)
        return np.log(np.maximum(mean, _TINY)).astype(np.float32)

    def summary(self, as_dict: bool = False):
        """One summary: every member's layer table, the ensemble's totals, provenance."""
        from .summary import format_table, summarize, totals

        rows = [summarize(m.header["layers"], m.tensors, m.header["input"]["shape"], m.header["output"])
                for m in self.members]
        tot = [totals(r) for r in rows]
        all_tot = {k: sum(t[k] for t in tot) for k in ("params", "macs", "binary_macs", "bytes",
                                                        "float32_bytes", "binary_params")}
        all_tot["compression"] = (all_tot["float32_bytes"] / all_tot["bytes"]
                                  if all_tot["bytes"] else float("nan"))
        if as_dict:
            return {
                "path": str(self.path),
                "frontend": dict(self.header["frontend"]),
                "ensemble": len(self.members),
                "members": [m.summary(as_dict=True) for m in self.members],
                "totals": all_tot,
                "labels": list(self.labels),
                "provenance": self.provenance,
            }
        fe = self.header["frontend"]
        n_mels, frames, _ = self.header["input"]["shape"]
        lines = [f"model: {self.path}",
                 f"ensemble of {len(self.members)} members, probabilities averaged",
                 f"input: {n_mels} mels × {frames} frames at {fe.get('sample_rate')} Hz "
                 f"(n_fft {fe.get('n_fft')}, hop {fe.get('hop_length')})"]
        for i, (m, r) in enumerate(zip(self.members, rows)):
            lines += ["", f"member {i}: {m.provenance.get('model', '')} "
                          f"{m.provenance.get('accuracy', '')}".rstrip(), format_table(r)]
        lines += ["", f"ensemble total: {all_tot['params']:,} parameters, {all_tot['macs']:,} MACs, "
                      f"{all_tot['binary_macs']:,} binary MACs, {all_tot['bytes']:,} bytes stored "
                      f"({all_tot['float32_bytes']:,} as float32)",
                  f"labels ({len(self.labels)}): {', '.join(self.labels)}"]
        if self.provenance:
            lines.append("provenance:")
            lines += [f"  {k}: {v}" for k, v in self.provenance.items()]
        return "\n".join(lines)



def check_compatible(models, names) -> None:
    """Raise :class:`ModelFileError` unless every model shares frontend, input and labels."""
    first = models[0]
    for m, name in zip(models[1:], names[1:]):
        if dict(m.header["frontend"]) != dict(first.header["frontend"]):
            raise ModelFileError(f"{name}: its frontend settings differ from {names[0]}'s; "
                                 "ensemble members must share them")
        if list(m.header["input"]["shape"]) != list(first.header["input"]["shape"]):
            raise ModelFileError(f"{name}: input shape {m.header['input']['shape']} differs from "
                                 f"{names[0]}'s {first.header['input']['shape']}")
        if tuple(m.labels) != tuple(first.labels):
            raise ModelFileError(f"{name}: its labels {list(m.labels)} differ from {names[0]}'s "
                                 f"{list(first.labels)}; ensemble members must share labels, in order")


def ensemble_of(models, path=None, provenance=None):
    """An in-memory ensemble of loaded models (``bitnet.load([...])`` calls this)."""
    models = list(models)
    if not models:
        raise ParameterError("an ensemble needs at least one model")
    names = [str(getattr(m, "path", f"member {i}")) for i, m in enumerate(models)]
    check_compatible(models, names)
    where = path if path is not None else Path("+".join(Path(n).name for n in names))
    return Ensemble(models, where, provenance)


def from_file(header: dict, tensors: dict, path: Path):
    """Build an ensemble from a file whose header holds ``"members"`` (see the module doc)."""
    from .model import _model_from_parts

    members = []
    for k, mem in enumerate(header["members"]):
        if not isinstance(mem, dict) or not isinstance(mem.get("layers"), list) \
                or not isinstance(mem.get("output"), str):
            raise ModelFileError(f"{path}: ensemble member {k} must hold 'layers' (list) and 'output' (str)")
        prefix = f"m{k}."
        sub = {name[len(prefix):]: arr for name, arr in tensors.items() if name.startswith(prefix)}
        layers = []
        for layer in mem["layers"]:
            layer = dict(layer)
            refs = layer.get("tensors") or {}
            layer["tensors"] = {role: (t[len(prefix):] if isinstance(t, str) and t.startswith(prefix) else
                                       f"<not member {k}'s: {t}>") for role, t in refs.items()}
            layers.append(layer)
        mh = {**{k2: v for k2, v in header.items() if k2 != "members"},
              "layers": layers, "output": mem["output"],
              "provenance": dict(mem.get("provenance") or {})}
        members.append(_model_from_parts(mh, sub, path, where=f"{path} (member {k})"))
    if not members:
        raise ModelFileError(f"{path}: ensemble file with no members")
    used = {t for mem in header["members"] for layer in mem["layers"] for t in (layer.get("tensors") or {}).values()}
    stray = sorted(set(tensors) - used)
    if stray:
        raise ModelFileError(f"{path}: tensors {stray[:5]} are not used by any member (corrupt or mis-exported file)")
    return Ensemble(members, path, header["provenance"])


def save_ensemble(models, path, provenance=None) -> Path:
    """Write several models (paths or loaded models) as one ensemble file.

    Parameters
    ----------
    models : list of str, os.PathLike or bitnet.Model
        The members, in order (at least one). They must share frontend settings, input
        shape and labels.
    path : str or os.PathLike
        The ``.bnn`` file to write.
    provenance : dict, optional
        The ensemble's own provenance (e.g. its accuracy); each member keeps its own.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ModelFileError
        A member cannot be read, or the members do not share frontend/input/labels.
    """
    from .model import load
    from .modelfile import save_model

    loaded = []
    for m in models:
        m = m if isinstance(m, Model) else load(m)
        loaded.extend(getattr(m, "members", [m]))  # an ensemble member contributes its members
    if not loaded:
        raise ParameterError("save_ensemble needs at least one model")
    check_compatible(loaded, [str(m.path) for m in loaded])
    tensors, members = {}, []
    for k, m in enumerate(loaded):
        prefix = f"m{k}."
        layers = []
        for layer in m.header["layers"]:
            layer = dict(layer)
            layer["tensors"] = {role: prefix + t for role, t in (layer.get("tensors") or {}).items()}
            layers.append(layer)
        for name, arr in m.tensors.items():
            tensors[prefix + name] = np.asarray(arr)
        members.append({"layers": layers, "output": m.header["output"], "provenance": dict(m.provenance)})
    first = loaded[0]
    prov = dict(provenance or {})
    prov.setdefault("ensemble", f"{len(loaded)} members, probabilities averaged")
    header = {"frontend": dict(first.header["frontend"]), "input": dict(first.header["input"]),
              "layers": [], "output": "", "labels": list(first.labels), "provenance": prov,
              "members": members}
    return save_model(os.fspath(path), header, tensors)
