"""The model zoo's accuracy table, from the run directories and the shipped files.

``python -m evaluation.zoo [--runs runs]`` reads the training runs listed in
:data:`ENTRIES` (``result.json``, ``folds.json``, ``prune.json``: accuracies and the
exact commands that made them) and runs the engine on the shipped models' test clips:

* every bundled model (``bitnet.bundled_models()``) on the clips its provenance names
  (``data``/``split``), features from the engine's own frontend, compared with the
  accuracy recorded at export;
* the keyword model end to end with ``predict`` (clip policy and speech gate on, as a
  user calls it) and with the gate off, with how many clips per class the gate turned
  into ``_silence_``.

It writes ``docs/zoo.json`` and ``docs/zoo.md``. It needs the data under
``../shared/data`` but not PyTorch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

#: (row name, what, run directory relative to --runs, kind: run | folds | prune)
ENTRIES = [
    ("keywords BNN (kws-res), 15 epochs", "BNN", "kw-bnn", "run"),
    ("keywords BNN (kws-res), 30 epochs, distilled (shipped until SpecAugment was turned off)", "BNN",
     "kw-bnn30kd", "run"),
    ("keywords BNN (kws-res), 30 epochs, distilled, SpecAugment off (shipped until the 50-epoch run)", "BNN",
     "kw-bnn30kd-ns", "run"),
    ("keywords float twin", "float", "kw-bnn-float", "run"),
    ("ESC-10 resnet-esc BNN", "BNN", "esc-bnn", "folds"),
    ("ESC-10 resnet-esc float twin", "float", "esc-bnn-float", "folds"),
    ("ESC-10 BNN, no mixup (fold 1 only)", "BNN", "esc-bnn-nomix", "folds"),
    ("ESC-10 BNN, no label smoothing (fold 1 only)", "BNN", "esc-bnn-nols", "folds"),
    ("ESC-10 float twin, no mixup (fold 1 only)", "float", "esc-bnn-float-nomix", "folds"),
    ("keywords BNN, SpecAugment on (the earlier recipe), validation fold 1", "BNN", "kwcv-bnn", "folds"),
    ("keywords BNN, SpecAugment off (the shipped recipe), 4 speaker folds (cross-validation)", "BNN",
     "kwcv-bnn-ns", "folds"),
    ("keywords float twin, 4 speaker folds (cross-validation)", "float", "kwcv-float", "folds"),
    ("keywords BNN, SpecAugment off, 50 epochs, validation fold 1 (chosen)", "BNN", "kwcv-bnn-ns50", "folds"),
    ("keywords BNN (kws-res), 50 epochs, distilled, SpecAugment off (shipped)", "BNN", "kw-bnn50kd-ns", "run"),
    ("ESC-10 resnet-esc BNN, 90 epochs (the schedule chosen on fold 1)", "BNN", "esc-bnn90", "folds"),
    ("LC-BNN keywords, seed 0, 20 epochs (the first recipe)", "BNN", "lc-s0", "run"),
    ("LC-BNN keywords, seed 1, 20 epochs (the first recipe)", "BNN", "lc-s1", "run"),
    ("LC-BNN keywords, seed 2, 20 epochs (the first recipe)", "BNN", "lc-s2", "run"),
    ("LC-BNN seed 0 (20 epochs) pruned 30 %, 5 epochs of fine-tuning", "pruned", "lc-s0-p30", "prune"),
    ("LC-BNN seed 0 (20 epochs) pruned 50 %, 5 epochs of fine-tuning", "pruned", "lc-s0-p50", "prune"),
    ("LC-BNN seed 1 (20 epochs) pruned 50 %, 5 epochs of fine-tuning", "pruned", "lc-s1-p50", "prune"),
    ("LC-BNN seed 2 (20 epochs) pruned 50 %, 5 epochs of fine-tuning", "pruned", "lc-s2-p50", "prune"),
    # the LC recipe chosen on validation fold 1 (the test part unused)
    ("LC-BNN, validation fold 1: 20 epochs (the first recipe, SpecAugment on)", "BNN", "lccv-sa", "folds"),
    ("LC-BNN, validation fold 1: 20 epochs, SpecAugment off", "BNN", "lccv-ns", "folds"),
    ("LC-BNN, validation fold 1: 20 epochs, SpecAugment and waveform augmentation off", "BNN",
     "lccv-nsnw", "folds"),
    ("LC-BNN, validation fold 1: 20 epochs, SpecAugment, waveform augmentation and label smoothing off",
     "BNN", "lccv-nsnw-ls0", "folds"),
    ("LC-BNN, validation fold 1: 60 epochs, SpecAugment off", "BNN", "lccv-ns60", "folds"),
    ("LC-BNN, validation fold 1: 150 epochs, SpecAugment off (chosen)", "BNN", "lccv-ns150", "folds"),
    ("LC-BNN validation fold 1 (60 epochs) pruned 30 %, 20 epochs of fine-tuning at lr 5e-4", "pruned",
     "lccv-ns60-p30e20", "prune"),
    ("LC-BNN validation fold 1 (60 epochs) pruned 30 %, 60 epochs of fine-tuning at lr 1e-3 (chosen)",
     "pruned", "lccv-ns60-p30e60", "prune"),
    ("LC-BNN validation fold 1 (60 epochs) pruned 50 %, 60 epochs of fine-tuning at lr 1e-3", "pruned",
     "lccv-ns60-p50e60", "prune"),
    ("LC-BNN validation fold 1 (150 epochs) pruned 30 % in every layer, 60 epochs of fine-tuning", "pruned",
     "lccv-ns150-p30", "prune"),
    ("LC-BNN validation fold 1 (150 epochs) pruned 30 % in every layer, fine-tuning distilled from the "
     "unpruned model", "pruned", "lccv-ns150-p30kd", "prune"),
    ("LC-BNN validation fold 1 (150 epochs) pruned 0/0/25/50 % per layer", "pruned",
     "lccv-ns150-p0-0-025-05", "prune"),
    ("LC-BNN validation fold 1 (150 epochs) pruned 0/0/0/50 % per layer (bdense 100 -> 50; chosen)", "pruned",
     "lccv-ns150-p0-0-0-05", "prune"),
    ("LC-BNN validation fold 1 (150 epochs), nothing pruned, the same 60 epochs of fine-tuning (control)",
     "control", "lccv-ns150-p0", "prune"),
    ("LC-BNN validation fold 1 (150 epochs) pruned 50 % in every layer (an ensemble member's budget; chosen)",
     "pruned", "lccv-ns150-p50", "prune"),
    ("LC-BNN validation fold 1 (150 epochs) pruned 50/50/37.5/0 % per layer (the same budget)", "pruned",
     "lccv-ns150-pm", "prune"),
    # the chosen recipe on the fixed test part
    ("LC-BNN keywords, seed 0, 150 epochs, SpecAugment off (shipped as lc-keywords)", "BNN", "lc150-s0", "run"),
    ("LC-BNN keywords, seed 1, 150 epochs, SpecAugment off", "BNN", "lc150-s1", "run"),
    ("LC-BNN keywords, seed 2, 150 epochs, SpecAugment off", "BNN", "lc150-s2", "run"),
    ("LC-BNN float twin, 150 epochs, SpecAugment off", "float", "lc150-float", "run"),
    ("LC-BNN seed 0 (150 epochs) pruned 30 % in every layer, 60 epochs of fine-tuning", "pruned",
     "lc150-s0-p30", "prune"),
    ("LC-BNN seed 0 (150 epochs) pruned 0/0/0/50 % per layer, 60 epochs of fine-tuning (shipped as "
     "lc-keywords-pruned)", "pruned", "lc150-s0-pl", "prune"),
    ("LC-BNN seed 0 (150 epochs), nothing pruned, the same 60 epochs of fine-tuning (control)", "control",
     "lc150-s0-p0", "prune"),
    ("LC-BNN seed 0 (150 epochs) pruned 50 % (ensemble member)", "pruned", "lc150-s0-p50", "prune"),
    ("LC-BNN seed 1 (150 epochs) pruned 50 % (ensemble member)", "pruned", "lc150-s1-p50", "prune"),
    ("LC-BNN seed 2 (150 epochs) pruned 50 % (ensemble member)", "pruned", "lc150-s2-p50", "prune"),
]


def recorded_rows(rows) -> dict:
    """Rows of a previous ``docs/zoo.json`` by name and by ``"--out runs/<dir>"`` of their
    command (found again after a row is renamed)."""
    out = {}
    for r in rows:
        out[r["name"]] = r
        if " --out " in r.get("command", ""):
            out["--out " + r["command"].split(" --out ", 1)[1].split()[0]] = r
    return out


def collect(runs: Path, recorded: dict | None = None) -> list[dict]:
    """One row per entry of :data:`ENTRIES` whose run is under ``runs``; an entry whose
    run is not on this machine keeps its row from ``recorded`` (row of the previous
    ``docs/zoo.json`` by name, or by ``"--out runs/<dir>"`` of its command when the row
    was renamed), so regenerating the table never drops a measured run."""
    rows = []
    recorded = recorded or {}
    for name, what, rel, kind in ENTRIES:
        d = runs / rel
        n_rows = len(rows)
        n_recorded = len((recorded.get(name) or {}).get("folds", {}))
        if kind == "folds" and (d / "folds.json").exists():
            # a recorded cross-validation with more folds than this machine's run is kept below
            f = json.loads((d / "folds.json").read_text())
            if n_recorded <= len(f["folds"]):
                rows.append({"name": name, "what": what, "accuracy": f["mean"], "std": f["std"],
                             "folds": {r["fold"]: r["accuracy"] for r in f["folds"]}, "command": f["command"]})
        elif kind == "folds" and (done := sorted(d.glob("fold*/result.json"))) and n_recorded <= len(done):
            # a cross-validation cut short (a recorded row with more folds is kept instead)
            res = {p.parent.name[4:]: json.loads(p.read_text()) for p in done}
            accs = [r["test_accuracy"] for r in res.values()]
            rows.append({"name": name + f" ({len(accs)} folds finished)", "what": what,
                         "accuracy": float(np.mean(accs)), "std": float(np.std(accs)),
                         "folds": {k: r["test_accuracy"] for k, r in res.items()},
                         "command": next(iter(res.values()))["command"]})
        elif kind in ("run", "prune") and (d / "result.json").exists():
            r = json.loads((d / "result.json").read_text())
            row = {"name": name, "what": what, "accuracy": r["test_accuracy"], "command": r["command"],
                   "epochs": r["epochs"], "dataset": r["dataset"]}
            if kind == "prune" and (d / "prune.json").exists():
                p = json.loads((d / "prune.json").read_text())
                row.update({k: p[k] for k in ("widths_before", "widths_after", "filters_before",
                                              "filters_after", "base_accuracy", "accuracy_before_finetune")})
            rows.append(row)
        if len(rows) == n_rows:
            rec = recorded.get(name) or recorded.get(f"--out runs/{rel}")
            if rec is not None:
                rows.append({**rec, "name": name})
    return rows


def engine_checks() -> list[dict]:
    """Every bundled model on its provenance's test clips, through the engine."""
    import bitnet
    from trainer import data as D

    out = []
    for name, path in bitnet.bundled_models().items():
        m = bitnet.load(name)
        prov = m.provenance
        members = getattr(m, "members", [m])
        first = members[0].provenance
        data, split = prov.get("data", first.get("data")), prov.get("split", first.get("split"))
        if not data:
            continue
        _, test, desc = D.load_dataset(data, split)
        feat = D.Featurizer(m.frontend)
        x = D.clean_features(feat, test)
        pred = m.logits(x).argmax(1)
        acc = float(np.mean(pred == test.labels))
        row = {"model": name, "file": path.name, "bytes": path.stat().st_size, "data": data, "split": split,
               "clips": len(test), "engine_accuracy": acc,
               "export_check": [mm.provenance.get("engine_check") for mm in members]}
        out.append(row)
    return out


def keyword_gate(name: str = "keywords") -> dict:
    """The keyword model as users call it: ``predict`` with and without the speech gate."""
    import bitnet
    from trainer import data as D

    m = bitnet.load(name)
    _, test, _ = D.load_dataset(m.provenance["data"], m.provenance["split"])
    labels = list(m.labels)
    on = m.predict([str(p) for p in test.paths])
    off = m.predict([str(p) for p in test.paths], gate=False)
    truth = [labels[i] for i in test.labels]
    per = {}
    for t, a in zip(truth, on):
        d = per.setdefault(t, {"clips": 0, "gated": 0})
        d["clips"] += 1
        d["gated"] += int(not a.speech)
    return {"clips": len(truth),
            "accuracy_gate_on": float(np.mean([a.label == t for a, t in zip(on, truth)])),
            "accuracy_gate_off": float(np.mean([a.label == t for a, t in zip(off, truth)])),
            "gated_to_silence_per_class": per}


def make_ensemble(members, out) -> dict:
    """Write ``members`` (.bnn files) as one ensemble file whose provenance holds its
    engine accuracy on the members' test clips (they must share data and split)."""
    import shlex
    import sys

    import bitnet
    from trainer import data as D

    loaded = [bitnet.load(m) for m in members]
    data = {(m.provenance.get("data"), m.provenance.get("split")) for m in loaded}
    if len(data) != 1:
        raise SystemExit(f"members were tested on different data/splits: {sorted(map(str, data))}")
    (d, split), = data
    _, test, desc = D.load_dataset(d, split)
    ens = bitnet.load(list(members))
    x = D.clean_features(D.Featurizer(ens.frontend), test)
    acc = float(np.mean(ens.logits(x).argmax(1) == test.labels))
    singles = [float(np.mean(m.logits(x).argmax(1) == test.labels)) for m in loaded]
    prov = {"ensemble": f"{len(loaded)} members, probabilities averaged", "data": d, "split": split,
            "dataset": desc, "accuracy": {"test": acc, "members_test": singles},
            "license": loaded[0].provenance.get("license", ""),
            "command": "python -m evaluation.zoo " + " ".join(shlex.quote(a) for a in sys.argv[1:])}
    bitnet.save_ensemble(list(members), out, provenance=prov)
    print(f"wrote {out}: ensemble accuracy {acc:.4f}; members {', '.join(f'{a:.4f}' for a in singles)}")
    return prov


def _pct(v):
    return "-" if v is None else f"{100 * v:.1f} %"


def write(rows, checks, gate, out_md: Path) -> None:
    lines = ["| model | kind | accuracy | per fold / details | command |", "|---|---|---|---|---|"]
    for r in rows:
        acc = _pct(r["accuracy"]) + (f" ± {100 * r['std']:.1f}" if "std" in r else "")
        det = ", ".join(f"{k}: {100 * v:.1f}" for k, v in r.get("folds", {}).items())
        if "widths_after" in r:
            det = (f"filters {r['filters_before']} → {r['filters_after']} "
                   f"({100 * (1 - r['filters_after'] / r['filters_before']):.0f} % pruned), widths "
                   f"{r['widths_after']}; base {_pct(r['base_accuracy'])}, before fine-tuning "
                   f"{_pct(r['accuracy_before_finetune'])}")
        lines.append(f"| {r['name']} | {r['what']} | {acc} | {det} | `{r['command']}` |")
    lines += ["", "Engine on the shipped files (features from the engine's frontend, the clips the "
              "provenance names):", "", "| bundled | file | data / split | clips | engine accuracy | "
              "export check (engine vs PyTorch) |", "|---|---|---|---|---|---|"]
    for c in checks:
        ec = "; ".join(f"{e['clips']} clips, max Δlogit {e['max_abs_logit_diff']:.2g}, predictions "
                       f"{'identical' if e['predictions_identical'] else 'DIFFER'}" for e in c["export_check"] if e)
        lines.append(f"| `{c['model']}` | {c['file']} ({c['bytes']:,} B) | {c['data']} / {c['split']} | "
                     f"{c['clips']} | {_pct(c['engine_accuracy'])} | {ec} |")
    if gate:
        lines += ["", f"Keyword model as users call it (`predict`, clip policy) on the {gate['clips']} test "
                  f"clips: {_pct(gate['accuracy_gate_on'])} with the speech gate (default), "
                  f"{_pct(gate['accuracy_gate_off'])} without. Clips the gate called no speech (label "
                  "`_silence_`) per true class: " + ", ".join(
                      f"{k} {v['gated']}/{v['clips']}" for k, v in sorted(gate["gated_to_silence_per_class"].items()))
                  + "."]
    text = "\n".join(lines) + "\n"
    out_md.write_text(text)
    copy_into(REPO / "docs" / "zoo.md", text)


#: where docs/zoo.md holds its copy of the generated table
MARK_BEGIN, MARK_END = "<!-- zoo-accuracy begin -->", "<!-- zoo-accuracy end -->"


def copy_into(doc: Path, text: str) -> bool:
    """Replace what lies between the markers of ``doc`` with ``text`` (nothing happens
    without both markers); True when ``doc`` was rewritten."""
    from ._docs import replace_between

    return replace_between(doc, MARK_BEGIN, MARK_END, text)


def main(argv=None) -> int:
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "ensemble":  # python -m evaluation.zoo ensemble OUT MEMBER...
        make_ensemble(argv[2:], argv[1])
        return 0
    ap = argparse.ArgumentParser(prog="python -m evaluation.zoo", description=__doc__)
    ap.add_argument("--runs", default=str(REPO / "runs"))
    ap.add_argument("--no-engine", action="store_true", help="only collect the run results")
    a = ap.parse_args(argv)
    before = REPO / "docs" / "zoo.json"
    recorded = recorded_rows(json.loads(before.read_text())["runs"] if before.exists() else [])
    rows = collect(Path(a.runs), recorded)
    checks = [] if a.no_engine else engine_checks()
    gate = None
    import bitnet

    if not a.no_engine and "keywords" in bitnet.bundled_models():
        gate = keyword_gate()
    (REPO / "docs" / "zoo.json").write_text(json.dumps({"runs": rows, "engine": checks, "keywords_gate": gate},
                                                       indent=2))
    write(rows, checks, gate, REPO / "docs" / "zoo_accuracy.md")
    print((REPO / "docs" / "zoo_accuracy.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
