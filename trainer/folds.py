"""Cross-validation: train one run per fold and report the mean ± standard deviation.

``python -m trainer train --data esc10 --folds 1,2,3,4,5 --model resnet-esc --out runs/esc``
trains ``runs/esc/fold1`` ... ``runs/esc/fold5`` (each an ordinary run directory: its
own ``result.json``, curves and confusion matrix; an interrupted run resumes, a finished
one trained with the same recipe is reused as it is) and writes ``runs/esc/folds.json``
and ``runs/esc/folds.png``. ``{fold}`` in ``--teacher`` or ``--init`` is replaced by each
fold's run name (``fold3``, ``george``), so each fold distils from its own float twin::

    python -m trainer train --data speech_commands --model kws-res --float-twin --folds 1-4 --out runs/kw-float
    python -m trainer train --data speech_commands --model kws-res --folds 1-4 --out runs/kw \
        --teacher 'runs/kw-float/{fold}' The features of every clip
are computed once per frontend setting and shared by all folds (:mod:`trainer.data`).

Python::

    from trainer.folds import run_folds
    summary = run_folds(TrainConfig(data="esc10", model="resnet-esc", out="runs/esc"), [1, 2, 3, 4, 5])
    summary["mean"], summary["std"]
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

__all__ = ["run_folds", "parse_folds", "fold_config"]


SPEAKERS = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]  # FSDD


def parse_folds(text: str) -> list[str]:
    """``"1,2,3"`` or ``"1-5"`` -> fold names ``["1", "2", "3"]``; ``"speakers"`` -> the six
    FSDD speakers (leave-one-speaker-out); speaker names may also be listed."""
    if str(text).strip() == "speakers":
        return list(SPEAKERS)
    out = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            out += [str(k) for k in range(int(a), int(b) + 1)]
        elif not part.isdigit() and part not in SPEAKERS:
            raise ValueError(f"--folds {text!r}: {part!r} is neither a fold number nor an FSDD speaker "
                             f"({', '.join(SPEAKERS)})")
        else:
            out.append(part)
    if not out:
        raise ValueError(f"--folds {text!r}: expected e.g. 1,2,3,4,5 or 1-5")
    return out


# fields that may differ between a finished fold run and the recipe that reuses it
_INCIDENTAL = ("command", "progress", "threads", "cache_dir", "eval_every", "out")


def fold_config(cfg, k):
    """The run of fold ``k``: ``(config, run directory)`` with its split, output directory,
    and ``{fold}`` in ``teacher`` / ``init`` replaced by the run's name."""
    name = f"fold{k}" if str(k).isdigit() else str(k)
    split = f"fold:{k}" if str(k).isdigit() else f"speaker:{k}"
    run = Path(cfg.out) / name
    return replace(cfg, split=split, out=str(run), teacher=cfg.teacher.replace("{fold}", name),
                   init=cfg.init.replace("{fold}", name)), run


def _finished(fcfg, run: Path):
    """The result of ``run`` if it finished with the recipe ``fcfg``, else ``None``."""
    try:
        result = json.loads((run / "result.json").read_text())
        done = json.loads((run / "config.json").read_text())
    except (OSError, ValueError):
        return None
    want = json.loads(fcfg.to_json())
    same = all(done.get(f) == v for f, v in want.items() if f not in _INCIDENTAL)
    return result if same else None


def run_folds(cfg, folds, resume: bool = True, log=print) -> dict:
    """Train ``cfg`` once per fold (``split=fold:K``, ``out=<out>/foldK``; a speaker name
    ``S``: ``split=speaker:S``, ``out=<out>/S``).

    Parameters
    ----------
    cfg : trainer.train.TrainConfig
        The recipe; its ``split`` and ``out`` are replaced per fold.
    folds : list of str
        Fold names as the data source knows them (``"1"`` ... ``"5"`` for ESC-10).

    Returns
    -------
    dict
        ``folds`` (per fold: name, accuracy, run directory), ``mean``, ``std``
        (population standard deviation over folds), ``command``; also written to
        ``<out>/folds.json``.
    """
    from tqdm import tqdm

    from .train import train

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    bar = tqdm(folds, desc=f"folds ({cfg.model})", disable=not cfg.progress)
    for k in bar:
        fcfg, run = fold_config(cfg, k)
        res = _finished(fcfg, run) if resume else None
        if res is not None:
            log(f"fold {k}: {run} finished with this recipe; reused")
        else:
            res = train(fcfg, resume=resume, log=log)
        rows.append({"fold": str(k), "accuracy": res["test_accuracy"], "run": str(run),
                     "test_clips": res["test_clips"]})
        bar.set_postfix(last=f"{res['test_accuracy']:.3f}")
    accs = np.array([r["accuracy"] for r in rows])
    summary = {"model": cfg.model, "float_twin": cfg.float_twin, "data": cfg.data,
               "folds": rows, "mean": float(accs.mean()), "std": float(accs.std()),
               "command": cfg.command}
    (out / "folds.json").write_text(json.dumps(summary, indent=2))
    _plot(out, rows, summary)
    log(f"{cfg.model}{' float twin' if cfg.float_twin else ''} on {cfg.data}: "
        + ", ".join(f"fold {r['fold']} {100 * r['accuracy']:.1f}%" for r in rows)
        + f"; mean {100 * summary['mean']:.1f} ± {100 * summary['std']:.1f} %")
    return summary


def _plot(out: Path, rows, summary) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar([r["fold"] for r in rows], [100 * r["accuracy"] for r in rows], color="tab:blue")
    ax.axhline(100 * summary["mean"], color="k", ls="--",
               label=f"mean {100 * summary['mean']:.1f} ± {100 * summary['std']:.1f} %")
    ax.set_xlabel("held-out fold")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(loc="lower right")
    ax.set_title(f"{summary['model']}{' float twin' if summary['float_twin'] else ''}")
    fig.tight_layout()
    fig.savefig(out / "folds.png", dpi=100)
    plt.close(fig)
