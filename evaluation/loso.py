"""Leave-one-speaker-out tables for the spoken-digit model, from the run directories.

``python -m evaluation.loso [--runs runs/abl]`` reads ``<runs>/<recipe>-<speaker>/result.json``
(and ``metrics.csv``) for the recipes in :data:`ABLATION` and :data:`SIX_FOLD`, and writes

* ``docs/loso.json`` — every fold's accuracy and the command that trained it
  (``docs/loso_summary.json``: the six-fold figures alone, for a model's provenance);
* ``docs/loso.md`` — the ablation table (validation speakers, one lever at a time) and
  the six-fold table (BNN and float twin), with the goals checked;
* ``docs/loso_curves.png`` — test accuracy per epoch of every fold of the six-fold runs;
* ``docs/loso_confusion.png`` — the confusion matrix of the BNN's worst fold.

Each run directory is an ordinary ``python -m trainer train --split speaker:NAME`` run,
so a row is re-made by its command (printed in ``loso.json``). Nothing here trains.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SPEAKERS = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
VALIDATION = ["george", "nicolas"]  # the ablation's speakers: the two weakest in the first LOSO table

#: (run prefix, lever, flags on top of the baseline). The baseline is the bundled model's
#: recipe: time shift, gain ±6 dB, white noise (p 0.3, 20-50 dB), SpecAugment 2×6 / 2×10,
#: label smoothing 0.1, Adam 2e-3 cosine, batch 32, 12 epochs.
ABLATION = [
    ("base", "baseline (the bundled model's recipe, 12 epochs)", ""),
    ("speed", "speed perturbation ±10 %", "--speed 0.1"),
    ("tempo", "tempo ±15 % (frame stretch)", "--tempo 0.15"),
    ("pitch", "pitch / formant shift ±10 %", "--pitch 0.1"),
    ("vtlp", "vocal tract length perturbation ±10 % (mel warp)", "--vtlp 0.1"),
    ("reverb", "synthetic room reverberation (p 0.5, RT60 0.15-0.7 s)", "--reverb 0.5"),
    ("cmn", "per-channel (mel band) mean normalisation in the frontend", "--frontend '{\"channel_norm\": \"mean\"}'"),
    ("noise", "pink, white or babble noise at 0-20 dB SNR on half the clips (instead of white 20-50 dB on 30 %)", "--noise mixed --snr 0,20 --noise-prob 0.5"),
    ("dc", "DC offset ±5 % of peak (gain ±6 dB is in the baseline)", "--dc 0.05"),
    ("nospec", "SpecAugment removed", "--freq-masks 0 --time-masks 0"),
    ("mixup", "mixup (Beta 0.2)", "--mixup 0.2"),
    ("distill", "distillation from the fold's float twin (KL, weight 0.5, T 2)", "--teacher runs/abl/float-SPEAKER"),
    ("wide", "wider binary trunk (stem 96, stages 96/96/192)", "--model-kwargs '{\"stem\": 96, \"stages\": [[96, 1], [96, 2], [192, 2]]}'"),
    ("final", "**the chosen levers together: VTLP + mixed noise, 24 epochs (the six-fold recipe)**",
     "--epochs 24 --vtlp 0.1 --noise mixed --snr 0,20 --noise-prob 0.5"),
    ("long", "longer schedule: 24 epochs", "--epochs 24"),
    ("kw", "pretraining on the Speech Commands keywords (the digits model, 12 classes, 20 epochs, "
           "VTLP + mixed noise), then the six-fold recipe from those weights",
     "--epochs 24 --vtlp 0.1 --noise mixed --snr 0,20 --noise-prob 0.5 --init runs/abl/kwpre/model.pt"),
    ("fd", "the six-fold recipe + distillation from the fold's float twin (baseline recipe)",
     "--epochs 24 --vtlp 0.1 --noise mixed --snr 0,20 --noise-prob 0.5 --teacher runs/abl/float-SPEAKER"),
    ("kwns", "keyword pretraining + the six-fold recipe, SpecAugment removed",
     "--epochs 24 --vtlp 0.1 --noise mixed --snr 0,20 --noise-prob 0.5 --freq-masks 0 --time-masks 0 "
     "--init runs/abl/kwpre/model.pt"),
    ("kwfd", "keyword pretraining + the six-fold recipe + distillation from the fold's float twin (six-fold recipe)",
     "--epochs 24 --vtlp 0.1 --noise mixed --snr 0,20 --noise-prob 0.5 --init runs/abl/kwpre/model.pt "
     "--teacher runs/abl/ffloat-SPEAKER"),
    ("kwrv", "keyword pretraining + the six-fold recipe + synthetic room reverberation (p 0.5)",
     "--epochs 24 --vtlp 0.1 --noise mixed --snr 0,20 --noise-prob 0.5 --init runs/abl/kwpre/model.pt --reverb 0.5"),
    ("float", "float twin (baseline recipe)", "--float-twin"),
    ("ffloat", "float twin, the six-fold recipe (VTLP + mixed noise, 24 epochs)",
     "--float-twin --epochs 24 --vtlp 0.1 --noise mixed --snr 0,20 --noise-prob 0.5"),
    ("ffns", "float twin, the six-fold recipe, SpecAugment removed",
     "--float-twin --epochs 24 --vtlp 0.1 --noise mixed --snr 0,20 --noise-prob 0.5 --freq-masks 0 --time-masks 0"),
]

#: the spectrogram transformer's six folds (issue: the transformer's leave-one-speaker-out mean):
#: (BNN prefix, float twin prefix), the shipped ``ast_digits.bnn`` recipe on every fold
AST = ("ast", "astf")

#: more transformer columns (their folds as far as they ran): (prefix, column title, recipe)
AST_EXTRA = [("astkw", "AST BNN, keyword pretraining",
              "the same recipe from the weights of `astkwpre`, tried on the validation speakers first"),
             ("astkwns", "AST BNN, keyword pretraining, SpecAugment off",
              "keyword pretraining as above and no SpecAugment, chosen on the official split's validation "
              "takes (94.3 → 98.7 %, `runs/abl/astkw-val`, `runs/abl/astkw-val-nospec`) before any fold ran")]

#: the column whose recipe made the bundled ``ast_digits.bnn``
AST_BUNDLED = "astkwns"

#: the transformer's keyword pretraining run (``--init`` of the "astkw" runs)
AST_KW_PRETRAIN = "astkwpre"


#: rows whose runs finished after the six-fold recipe was fixed (reported, not used to choose)
AFTER_CHOICE = {"distill", "pitch", "reverb", "mixup", "nospec", "tempo", "dc", "wide", "fd", "ffloat", "kw", "kwns", "kwfd", "kwrv", "ffns"}

#: rows that add one lever to the six-fold recipe (their Δ is also given against the recipe's row)
ON_RECIPE = {"kw", "fd", "kwns", "kwfd", "kwrv"}

#: more six-fold columns beside the recipe and the float twin, where all their folds ran
SIX_FOLD_EXTRA = [("kw", "BNN, recipe + keyword pretraining"),
                  ("kwns", "BNN, recipe + keyword pretraining, SpecAugment off"),
                  ("kwrv", "BNN, recipe + keyword pretraining + reverberation"),
                  ("ffloat", "float twin, recipe"),
                  ("ffns", "float twin, recipe, SpecAugment off")]

#: the float-twin rows (left out of the BNN rows' means)
FLOAT_ROWS = {"float", "ffloat", "ffns"}

#: the keyword pretraining run (``--init`` of the "kw" rows)
KW_PRETRAIN = "kwpre"


def _tidy(command: str) -> str:
    """The command without a ``--model digits`` that a later ``--model`` overrides (the
    queue that ran these put ``--model digits`` first; argparse keeps the last one)."""
    if command.count("--model ") > 1 and "--model digits " in command:
        command = command.replace("--model digits ", "", 1)
    return command


def read_run(run: Path) -> dict | None:
    res = run / "result.json"
    if not res.exists():
        return None
    r = json.loads(res.read_text())
    curve = []
    if (run / "metrics.csv").exists():
        with open(run / "metrics.csv") as fh:
            curve = [float(row["test_acc"]) for row in csv.DictReader(fh)]
    return {"accuracy": r["test_accuracy"], "command": _tidy(r.get("command", "")), "epochs": r.get("epochs"),
            "curve": curve, "confusion": r.get("confusion"), "labels": r.get("labels"),
            "by_bn": r.get("test_accuracy_by_bn_stats", {}),
            "run": str(run)}


NOISY = (("pink", 10.0), ("babble", 10.0))


def noisy_accuracy(run: Path, seed: int = 0) -> dict:
    """Accuracy of a run's model on its held-out speaker's clips with pink and babble noise
    at 10 dB SNR (babble: 4 clips of the fold's training speakers). A validation figure: the
    held-out speaker, never the official test takes. Cached in ``<run>/noisy.json``."""
    cache = run / "noisy.json"
    if cache.exists() and cache.stat().st_mtime >= (run / "model.pt").stat().st_mtime:
        return json.loads(cache.read_text())
    import torch

    from trainer import data as D
    from trainer.train import load_run

    torch.set_num_threads(1)
    model, info = load_run(run)
    feat = D.Featurizer(D.frontend_config(**info["frontend"]))
    train_set, test_set, _ = D.load_dataset(info["data"], info["split"], 0)
    rng = np.random.default_rng(seed)
    pool = [feat.load(train_set.paths[i]) for i in rng.choice(len(train_set), 200, replace=False)]
    waves = D.load_waves(feat, test_set)
    out = {}
    for kind, snr in NOISY:
        r = np.random.default_rng([seed, int(snr), len(kind)])
        x = np.stack([feat(D.add_noise(y, kind, snr, r, pool)) for y in waves]).astype(np.float32)
        with torch.no_grad():
            pred = torch.cat([model(torch.from_numpy(x[i:i + 250])) for i in range(0, len(x), 250)]).argmax(1)
        out[f"{kind} {snr:g} dB"] = float((pred.numpy() == test_set.labels).mean())
    cache.write_text(json.dumps(out))
    return out


def collect(runs: Path, prefixes, noisy: bool = True) -> dict:
    out = {}
    for prefix in prefixes:
        folds = {s: read_run(runs / f"{prefix}-{s}") for s in SPEAKERS}
        folds = {s: f for s, f in folds.items() if f is not None}
        if noisy:
            for s, f in folds.items():
                if s in VALIDATION:
                    f["noisy"] = noisy_accuracy(Path(f["run"]))
        if folds:
            out[prefix] = folds
    return out


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def markdown(data: dict, final: str, runs: Path) -> str:
    L = ["# Leave-one-speaker-out: the spoken-digit model on voices it never heard", "",
         "FSDD has six speakers. Each fold holds one speaker out entirely (all 500 of their "
         "clips are the test set) and trains on the other five speakers' 2,500 clips. "
         "Made by `python -m evaluation.loso` from the runs below; every run's command is in "
         "[loso.json](loso.json).", ""]
    # ablation
    base = data["runs"].get("base", {})
    L += ["## Ablation: one lever at a time (validation speakers " + ", ".join(VALIDATION) + ")", "",
          "Each lever is added alone to the baseline; same schedule (12 epochs, except the schedule row), seed 0. "
          "The noisy columns are the same held-out speakers' clips with pink or babble noise "
          "(4 other talkers from the fold's training speakers) at 10 dB SNR. "
          "Recipes were chosen on these two folds only, never on the official test takes. "
          "Δ is the change of the two-fold mean against the baseline (one seed: a Δ within "
          "about ±2 points is within run-to-run noise on 1,000 test clips).", "",
          "| lever | flags | " + " | ".join(VALIDATION) + " | mean | Δ | "
          + " | ".join(f"{k} {v:g} dB (mean)" for k, v in NOISY) + " |",
          "|---|---|" + "---|" * len(VALIDATION) + "---|---|" + "---|" * len(NOISY)]
    bmean = None
    if base and all(s in base for s in VALIDATION):
        bmean = float(np.mean([base[s]["accuracy"] for s in VALIDATION]))
    for prefix, what, flags in ABLATION:
        folds = data["runs"].get(prefix)
        if not folds or not all(s in folds for s in VALIDATION):
            continue
        m = float(np.mean([folds[s]["accuracy"] for s in VALIDATION]))
        d = "" if bmean is None or prefix == "base" else f"{100 * (m - bmean):+.1f}"
        rec = data["runs"].get("final", {})
        if prefix in ON_RECIPE and all(s in rec for s in VALIDATION):
            d += f" ({100 * (m - float(np.mean([rec[s]['accuracy'] for s in VALIDATION]))):+.1f} on the recipe)"
        fl = flags or data.get("flags", {}).get(prefix, "")
        nz = []
        for k, v in NOISY:
            vals = [folds[s].get("noisy", {}).get(f"{k} {v:g} dB") for s in VALIDATION]
            nz.append(_pct(float(np.mean(vals))) if all(x is not None for x in vals) else "—")
        what = what + (" *(finished after the recipe was fixed)*" if prefix in AFTER_CHOICE else "")
        L.append(f"| {what} | `{fl}` | " + " | ".join(_pct(folds[s]["accuracy"]) for s in VALIDATION)
                 + f" | {_pct(m)} | {d} | " + " | ".join(nz) + " |")
    kwp = data.get("kw_pretrain")
    if kwp and "kw" in data["runs"]:
        L += ["", f"The keyword pretraining run (`{kwp['command']}`) reached {_pct(kwp['accuracy'])} on the "
              "Speech Commands test part (12 classes, speakers disjoint from its training speakers); "
              "no FSDD clip is in it, so every fold may start from it."]
    modes = ("ema", "clean", "augmented")
    L += ["", "Batch-norm statistics of the same runs (the choice the bundled model's recipe makes after "
          "training: moving averages, or recomputed over clean or augmented training clips), two-fold means:", "",
          "| lever | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    tot = {m: [] for m in modes}
    for prefix, what, _ in ABLATION:
        folds = data["runs"].get(prefix)
        if not folds or not all(s in folds for s in VALIDATION):
            continue
        cells = []
        for m in modes:
            vals = [folds[s]["by_bn"].get(m) for s in VALIDATION]
            ok = all(v is not None for v in vals)
            if ok and prefix not in FLOAT_ROWS:
                tot[m].append(float(np.mean(vals)))
            cells.append(_pct(float(np.mean(vals))) if ok else "—")
        L.append(f"| {what} | " + " | ".join(cells) + " |")
    if all(tot[m] for m in modes):
        L.append("| **mean over the BNN rows** | " + " | ".join(_pct(float(np.mean(tot[m]))) for m in modes) + " |")
    not_run = [what for prefix, what, _ in ABLATION if prefix not in data["runs"]]
    not_run.append("multi-task training on the Speech Commands keywords" if "kw" in data["runs"]
                   else "pretraining or multi-task training on the Speech Commands keywords")

    L += ["", "Not run (CPU time on 2 shared cores): " + "; ".join(not_run) + "."]
    # six folds
    extra = [(p, title) for p, title in SIX_FOLD_EXTRA if len(data["runs"].get(p, {})) == len(SPEAKERS)]
    L += ["", f"## All six speakers: BNN (`{final}`) and float twin", "",
          "| held-out speaker | BNN, recipe | " + "".join(f"{t} | " for _, t in extra) + "float twin, baseline recipe |",
          "|---|---|" + "---|" * len(extra) + "---|"]
    bnn, flt = data["runs"].get(final, {}), data["runs"].get("float", {})
    for s in SPEAKERS:
        L.append(f"| {s} | {_pct(bnn.get(s, {}).get('accuracy'))} | "
                 + "".join(f"{_pct(data['runs'][p][s]['accuracy'])} | " for p, _ in extra)
                 + f"{_pct(flt.get(s, {}).get('accuracy'))} |")
    summ = data["six_fold"]
    xs = [_fold_stats(data["runs"][p]) for p, _ in extra]
    L.append(f"| **mean** | **{_pct(summ['bnn_mean'])}** | " + "".join(f"**{_pct(x['mean'])}** | " for x in xs)
             + f"**{_pct(summ['float_mean'])}** |")
    L.append(f"| worst speaker | {_pct(summ['bnn_min'])} | " + "".join(f"{_pct(x['min'])} | " for x in xs)
             + f"{_pct(summ['float_min'])} |")
    if extra:
        L += ["", "The extra columns are rows of the ablation above (same flags), run on all six folds "
              "after their two validation folds."]
    key = lambda t: -1 if t[0] is None else t[0]  # noqa: E731
    stats = list(zip((p for p, _ in extra), xs))
    best = max([(summ["bnn_mean"], summ["bnn_min"], summ["bnn_folds"])]
               + [(x["mean"], x["min"], x["folds"]) for p, x in stats if p not in FLOAT_ROWS], key=key)
    best_f = max([(summ["float_mean"], summ["float_min"], summ["float_folds"])]
                 + [(x["mean"], x["min"], x["folds"]) for p, x in stats if p in FLOAT_ROWS], key=key)
    L += ["", "Goals (the best column of each): BNN mean ≥ 92 % — " + _verdict(best[0], 0.92, best[2])
          + "; no speaker below 85 % — " + _verdict(best[1], 0.85, best[2])
          + "; float twin mean ≥ 95 % — " + _verdict(best_f[0], 0.95, best_f[2]) + ".",
          "", "![test accuracy per epoch, every fold](loso_curves.png)", "",
          f"![confusion matrix of the BNN's worst fold ({summ.get('worst')})](loso_confusion.png)"]
    L += ast_section(data)
    return "\n".join(L)


def _fold_stats(folds: dict) -> dict:
    acc = [folds[s]["accuracy"] for s in SPEAKERS if s in folds]
    return {"mean": float(np.mean(acc)) if acc else None, "min": float(min(acc)) if acc else None,
            "folds": len(acc)}


def ast_section(data: dict) -> list:
    """The spectrogram transformer's six folds (BNN and float twin), where its runs exist."""
    bnn, flt = (data["runs"].get(p, {}) for p in AST)
    if not bnn and not flt:
        return []
    cmd = next((f["command"] for f in bnn.values()), "")
    fcmd = next((f["command"] for f in flt.values()), "")
    extra = [(p, t, data["runs"][p]) for p, t, _ in AST_EXTRA if data["runs"].get(p)]
    recipes = {p: r for p, _, r in AST_EXTRA}
    L = ["", "## The spectrogram transformer (`--model ast`): all six speakers", "",
         "The transformer's recipe on every fold (fixed on the official split's validation takes "
         "before these runs): the float twin 40 epochs, then the BNN 80 epochs with distillation "
         "from that fold's float twin. Commands: BNN `" + cmd + "`; float twin `" + fcmd + "`."]
    for p, t, folds in extra:
        L += ["", f"{t}{' (the recipe of the bundled `ast_digits.bnn`)' if p == AST_BUNDLED else ''}: "
              f"{recipes[p]}. Command: `{next(iter(folds.values()))['command']}`."]
    pre = data.get("ast_kw_pretrain")
    if pre and extra:
        L += ["", f"The pretraining run (`{pre['command']}`) reached {_pct(pre['accuracy'])} on the Speech "
              "Commands test part (speakers disjoint from its training speakers)."]
    L += ["", "| held-out speaker | AST BNN | " + "".join(f"{t} | " for _, t, _ in extra) + "AST float twin |",
          "|---|---|" + "---|" * len(extra) + "---|"]
    for s in SPEAKERS:
        L.append(f"| {s} | {_pct(bnn.get(s, {}).get('accuracy'))} | "
                 + "".join(f"{_pct(folds.get(s, {}).get('accuracy'))} | " for _, _, folds in extra)
                 + f"{_pct(flt.get(s, {}).get('accuracy'))} |")
    b, f = _fold_stats(bnn), _fold_stats(flt)
    xs = [_fold_stats(folds) for _, _, folds in extra]
    L.append(f"| **mean** | **{_pct(b['mean'])}** ({b['folds']} folds) | "
             + "".join(f"**{_pct(x['mean'])}** ({x['folds']} folds) | " for x in xs)
             + f"**{_pct(f['mean'])}** ({f['folds']} folds) |")
    L.append(f"| worst speaker | {_pct(b['min'])} | " + "".join(f"{_pct(x['min'])} | " for x in xs)
             + f"{_pct(f['min'])} |")
    if extra:
        val = [s for s in VALIDATION if all(s in folds for _, _, folds in extra) and s in bnn]
        if val:
            L.append(f"| mean of {', '.join(val)} | {_pct(float(np.mean([bnn[s]['accuracy'] for s in val])))} | "
                     + "".join(f"{_pct(float(np.mean([folds[s]['accuracy'] for s in val])))} | " for _, _, folds in extra)
                     + f"{_pct(float(np.mean([flt[s]['accuracy'] for s in val if s in flt])) if all(s in flt for s in val) else None)} |")
    return L


def _verdict(v, goal, n) -> str:
    if v is None or n < len(SPEAKERS):
        return f"not measured on all six folds ({n} run)"
    return ("met" if v >= goal else "**missed**") + f" ({100 * v:.1f} %)"


def plots(data: dict, final: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, prefix, title in ((axes[0], final, "BNN"), (axes[1], "float", "float twin")):
        for s, f in sorted(data["runs"].get(prefix, {}).items()):
            if f["curve"]:
                ax.plot(range(1, len(f["curve"]) + 1), [100 * a for a in f["curve"]], label=s)
        ax.set_title(f"{title}: held-out speaker accuracy")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    for ax in axes:
        if ax.get_lines():
            ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "loso_curves.png", dpi=100)
    plt.close(fig)

    worst = data["six_fold"].get("worst")
    f = data["runs"].get(final, {}).get(worst)
    if f and f.get("confusion"):
        cm = np.array(f["confusion"])
        labels = f.get("labels") or [str(i) for i in range(len(cm))]
        fig, ax = plt.subplots(figsize=(4.6, 4.2))
        ax.imshow(cm, cmap="Blues")
        for i in range(len(cm)):
            for j in range(len(cm)):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if cm[i, j] > cm.max() / 2 else "black")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("spoken")
        ax.set_title(f"BNN, {worst} held out ({100 * f['accuracy']:.1f} %)")
        fig.tight_layout()
        fig.savefig(out / "loso_confusion.png", dpi=100)
        plt.close(fig)


MARK_BEGIN, MARK_END = "<!-- digits-table begin -->", "<!-- digits-table end -->"


def _row(m, name: str) -> tuple[str, str]:
    prov = m.header.get("provenance", {})
    acc = prov.get("accuracy", {})
    chk = prov.get("engine_check", {})
    loso = prov.get("evidence", {}).get("loso", {})
    rob = prov.get("evidence", {}).get("robustness", {}).get("accuracy_gate_on", {})
    if not rob:  # no evidence in the file: a generated robustness table made from this very file
        from ._docs import file_sha256

        sha = file_sha256(m.path)
        for summ in [REPO / "docs" / "robustness_summary.json",
                     *sorted((REPO / "docs").glob("robustness-*/robustness_summary.json"))]:
            d = json.loads(summ.read_text())
            if d.get("model_sha256") == sha:
                rob = d.get("accuracy_gate_on", {})
                break
    tensor_bytes = sum(int(np.asarray(v).nbytes) for v in m.tensors.values())
    size = Path(m.path).stat().st_size

    def lo(key, n):
        v = loso.get(key)
        return "—" if v is None else f"{100 * v:.1f} % over {n} speakers (worst {100 * loso[key.replace('mean', 'min')]:.1f} %)"

    def noisy():
        cells = [f"{k} {100 * rob[k]:.1f} %" for k in ("pink 10 dB", "babble 10 dB") if k in rob]
        return ", ".join(cells) if cells else "see docs/robustness.md"

    check = (f"same predictions on all {chk.get('clips')} clips, max \\|Δlogit\\| {chk.get('max_abs_logit_diff', float('nan')):.1e}"
             if chk.get("predictions_identical") else "—")
    bnn = (f"| `digits` BNN — `{name}` (`{Path(m.path).name}`) | **{100 * acc.get('test', float('nan')):.1f} %** "
           f"| {lo('bnn_mean', len(loso.get('bnn', {})))} | {noisy()} "
           f"| {tensor_bytes / 1024:.1f} KiB of tensors ({size / 1000:.0f} KB file) | {check} |")
    twin = acc.get("float_twin_test")
    flt = (f"| its float twin (same layers, float weights, ReLU) | {'—' if twin is None else f'{100 * twin:.1f} %'} "
           f"| {lo('float_mean', len(loso.get('float_twin', {})))} | — | — | — |")
    return bnn, flt, prov.get("command", "")


def digits_table() -> str:
    """The README's table of the bundled digit models (the default and ``digits-clean``),
    from their files: provenance (official split, float twin, engine check, and the
    leave-one-speaker-out and robustness evidence where recorded) and sizes."""
    import bitnet

    lines = ["| model | FSDD official split (300 test clips) | leave-one-speaker-out (mean) | 10 dB SNR, official test takes "
             "| stored | engine vs PyTorch |", "|---|---|---|---|---|---|"]
    cmds = []
    for name in ("digits", "digits-clean"):
        if name not in bitnet.bundled_models():
            continue
        bnn, flt, cmd = _row(bitnet.load(name), name)
        lines += [bnn, flt]
        cmds.append(f"`{name}`: `{cmd}`")
    return "\n".join(lines + ["", "Generated by `python -m evaluation.loso --readme` from the bundled files' provenance "
                               "(leave-one-speaker-out: the six folds recorded in the file as evidence, whose recipes "
                               "are listed there and in docs/loso.md; the bundled model itself is trained on the "
                               "official split). "
                               "Training commands: " + "; ".join(cmds) + "."])


def write_readme(table: str) -> None:
    """Put the table between the markers of README.md and docs/training.md."""
    from ._docs import replace_between

    for doc in (REPO / "README.md", REPO / "docs" / "training.md"):
        replace_between(doc, MARK_BEGIN, MARK_END, table + "\n")


def evidence(runs: Path, prefix: str) -> dict:
    """Six-fold figures of the runs ``PREFIX-<speaker>`` (all six must exist) and of the float
    twin beside them: the recipe's own float runs (``ffloat``) where all six ran, else the
    baseline float twin (``float``); for the transformer's prefixes (``AST``, ``AST_EXTRA``)
    its float twin's runs (``astf``). Each recipe is recorded with its figures."""
    got = collect(runs, [prefix], noisy=False).get(prefix, {})
    if len(got) != len(SPEAKERS):
        raise SystemExit(f"{prefix}: {len(got)} of {len(SPEAKERS)} folds in {runs}")
    ast_family = {AST[0], *(p for p, _, _ in AST_EXTRA)}
    twins = (AST[1],) if prefix in ast_family else ("ffloat", "float")   # the transformer's own twin
    floats = {p: collect(runs, [p], noisy=False).get(p, {}) for p in twins}
    flt = next(f for f in floats.values() if len(f) == len(SPEAKERS))
    b, f = _fold_stats(got), _fold_stats(flt)
    return {"protocol": "FSDD leave-one-speaker-out, 6 folds (500 test clips each)",
            "bnn_recipe": got["george"]["command"], "float_twin_recipe": flt["george"]["command"],
            "bnn": {s: r["accuracy"] for s, r in got.items()}, "float_twin": {s: r["accuracy"] for s, r in flt.items()},
            "bnn_mean": b["mean"], "bnn_min": b["min"], "float_mean": f["mean"], "float_min": f["min"],
            "made_by": f"python -m evaluation.loso --evidence {prefix} FILE (docs/loso.md)"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=str(REPO / "runs" / "abl"))
    ap.add_argument("--final", default="final", help="run prefix of the six-fold BNN recipe")
    ap.add_argument("--flags", default="{}", help='JSON {prefix: flags} for rows whose flags are not fixed ("cmb", "final")')
    ap.add_argument("--out", default=str(REPO / "docs"))
    ap.add_argument("--readme", action="store_true",
                    help="only rewrite the README's digits table from the bundled model's provenance")
    ap.add_argument("--evidence", nargs=2, metavar=("PREFIX", "FILE"),
                    help="only write the six-fold evidence of the runs PREFIX-<speaker> to FILE (JSON, for "
                         "`trainer export --evidence loso=FILE`)")
    args = ap.parse_args(argv)
    if args.evidence:
        ev = evidence(Path(args.runs), args.evidence[0])
        Path(args.evidence[1]).write_text(json.dumps(ev, indent=1) + "\n")
        print(json.dumps({k: v for k, v in ev.items() if k.endswith(("mean", "min"))}))
        return 0
    if args.readme:
        t = digits_table()
        write_readme(t)
        print(t)
        return 0
    runs, out = Path(args.runs), Path(args.out)
    prefixes = [p for p, _, _ in ABLATION] + [args.final, *AST] + [p for p, _, _ in AST_EXTRA]
    data = {"runs": collect(runs, dict.fromkeys(prefixes)), "flags": json.loads(args.flags)}
    kwp = read_run(runs / KW_PRETRAIN)
    if kwp:
        data["kw_pretrain"] = {"accuracy": kwp["accuracy"], "command": kwp["command"]}
    akp = read_run(runs / AST_KW_PRETRAIN)
    if akp:
        data["ast_kw_pretrain"] = {"accuracy": akp["accuracy"], "command": akp["command"]}
    bnn, flt = data["runs"].get(args.final, {}), data["runs"].get("float", {})
    b = [bnn[s]["accuracy"] for s in SPEAKERS if s in bnn]
    f = [flt[s]["accuracy"] for s in SPEAKERS if s in flt]
    data["six_fold"] = {
        "bnn_mean": float(np.mean(b)) if b else None, "bnn_min": float(min(b)) if b else None,
        "float_mean": float(np.mean(f)) if f else None, "float_min": float(min(f)) if f else None,
        "bnn_folds": len(b), "float_folds": len(f),
        "worst": min(bnn, key=lambda s: bnn[s]["accuracy"]) if bnn else None,
    }
    out.mkdir(parents=True, exist_ok=True)
    slim = {"final": args.final, "validation_speakers": VALIDATION, "six_fold": data["six_fold"],
            "flags": data["flags"], "kw_pretrain": data.get("kw_pretrain"),
            "ast_kw_pretrain": data.get("ast_kw_pretrain"),
            "runs": {p: {s: {k: v for k, v in r.items() if k not in ("confusion", "labels")}
                         for s, r in folds.items()} for p, folds in data["runs"].items()}}
    (out / "loso.json").write_text(json.dumps(slim, indent=1) + "\n")
    summary = {"protocol": "FSDD leave-one-speaker-out, 6 folds (500 test clips each)",
               "bnn_recipe": (data["runs"].get(args.final, {}).get("george") or {}).get("command", ""),
               "bnn": {s: r["accuracy"] for s, r in bnn.items()},
               "float_twin": {s: r["accuracy"] for s, r in flt.items()},
               **{k: data["six_fold"][k] for k in ("bnn_mean", "bnn_min", "float_mean", "float_min")},
               "made_by": "python -m evaluation.loso (docs/loso.md)"}
    for p, _ in SIX_FOLD_EXTRA:
        folds = data["runs"].get(p, {})
        if len(folds) == len(SPEAKERS):
            st = _fold_stats(folds)
            summary[p] = {"recipe": folds["george"]["command"], "bnn": {s: r["accuracy"] for s, r in folds.items()},
                          "bnn_mean": st["mean"], "bnn_min": st["min"]}
    if any(p in data["runs"] for p in AST):
        bnn_a, flt_a = (data["runs"].get(p, {}) for p in AST)
        sb, sf = _fold_stats(bnn_a), _fold_stats(flt_a)
        summary["ast"] = {"bnn": {s: r["accuracy"] for s, r in bnn_a.items()},
                          "float_twin": {s: r["accuracy"] for s, r in flt_a.items()},
                          "bnn_mean": sb["mean"], "bnn_min": sb["min"], "float_mean": sf["mean"], "float_min": sf["min"]}
    (out / "loso_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    md = markdown(data, args.final, runs)
    (out / "loso.md").write_text(md + "\n")
    plots(data, args.final, out)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
