"""Filter pruning by cosine similarity: prune, fine-tune, export a genuinely smaller model.

``python -m trainer prune RUN --amount 0.3 --epochs 5 --out RUN-pruned``
(``--amount 0,0,0.25,0.5``: one fraction per binary layer; ``--sensitivity``: the
accuracy after pruning each layer alone, to choose those fractions on a validation fold;
``--teacher RUN``: distil the fine-tuning)

For every binary layer of a sequential model (``lc-bnn``, ``kws-bnn-m``) the filters
are compared by the cosine similarity of their binary weights ``sign(W)`` (flattened
per output channel; for ±1 vectors of length n, ``cos = 1 - 2·hamming/n``). The most
similar pair is found and one of its two filters removed — the one whose latent
weights are closer to zero (the less settled one) — until ``amount`` of the layer's
filters are gone. A filter that nearly repeats another adds little the next layer
cannot get from its twin, which is the point of the method (the seed's low-complexity
CNN pruned filters this way).

Removal is structural: the layer's weights and batch norm lose the rows, every layer
up to the next weighted one loses the matching channels (a ``Sign`` shift, pools pass
through, ``Flatten`` maps channel ``c`` to its positions ``p·C + c``), and the next
binary or dense layer loses the matching input columns. The result is rebuilt from its
``widths`` (``models.build(name, widths=...)``), loaded with the sliced weights and
fine-tuned with the ordinary training loop (``TrainConfig.init``), so the exported file
holds fewer channels, not masked zeros.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from . import models as M
from .layers import BinaryConvBN, Sign

__all__ = ["similar_filters", "prune_model", "prune_run"]

PRUNABLE = ("lc-bnn", "kws-bnn-m")


def similar_filters(weight: torch.Tensor, n_remove: int) -> list[int]:
    """Indices of ``n_remove`` filters to drop by greedy cosine similarity.

    Parameters
    ----------
    weight : tensor (C_out, ...)
        Latent weights; the comparison uses their signs.
    n_remove : int

    Returns
    -------
    list of int
        Filters to remove, in the order they were chosen.
    """
    w = weight.detach().reshape(weight.shape[0], -1).double()
    b = torch.where(w >= 0, 1.0, -1.0).double()
    b = b / b.norm(dim=1, keepdim=True)
    sim = b @ b.T
    sim.fill_diagonal_(-2.0)
    settled = w.abs().mean(dim=1)
    alive = torch.ones(len(w), dtype=torch.bool)
    removed = []
    for _ in range(n_remove):
        s = sim.clone()
        s[~alive] = -3.0
        s[:, ~alive] = -3.0
        i, j = divmod(int(torch.argmax(s)), len(w))
        drop = i if settled[i] < settled[j] else j
        alive[drop] = False
        removed.append(drop)
    return removed


def _slice_bn(bn: nn.modules.batchnorm._BatchNorm, keep: torch.Tensor) -> None:
    bn.weight = nn.Parameter(bn.weight.detach()[keep].clone())
    bn.bias = nn.Parameter(bn.bias.detach()[keep].clone())
    bn.running_mean = bn.running_mean[keep].clone()
    bn.running_var = bn.running_var[keep].clone()
    bn.num_features = len(keep)


def _slice_out(layer: BinaryConvBN, keep: torch.Tensor) -> None:
    conv = layer.conv
    conv.weight = nn.Parameter(conv.weight.detach()[keep].clone())
    if hasattr(conv, "out_channels"):
        conv.out_channels = len(keep)
    else:
        conv.out_features = len(keep)
    _slice_bn(layer.bn, keep)


def _slice_in(layer, keep: torch.Tensor) -> None:
    if isinstance(layer, BinaryConvBN):
        conv = layer.conv
        conv.weight = nn.Parameter(conv.weight.detach()[:, keep].clone())
        if hasattr(conv, "in_channels"):
            conv.in_channels = len(keep)
        else:
            conv.in_features = len(keep)
    else:  # Dense
        layer.weight = nn.Parameter(layer.weight.detach()[:, keep].clone())
        layer.in_features = len(keep)


def _spatial_positions(model: M.Net, index: int) -> int:
    """H·W of the value entering ``model.layers[index]`` (a Flatten)."""
    x = torch.zeros(1, 1, *model.input_shape)
    model.eval()
    with torch.no_grad():
        for layer in model.layers[:index]:
            x = layer(x)
    return int(x.shape[2] * x.shape[3])


def _amounts(amount, n_layers: int) -> list[float]:
    """``amount`` as one fraction per binary layer (a number applies to all)."""
    fr = [float(a) for a in amount] if isinstance(amount, (list, tuple)) else [float(amount)] * n_layers
    if len(fr) != n_layers:
        raise ValueError(f"amount: {len(fr)} fractions for {n_layers} binary layers")
    if not all(0 <= a < 1 for a in fr):
        raise ValueError(f"amount must be in [0, 1), got {amount}")
    return fr


def prune_model(model: M.Net, amount) -> tuple[M.Net, dict]:
    """Remove ``amount`` (0..1) of the filters of every binary layer, in place; a
    sequence gives one fraction per binary layer, in order (layers differ in how much
    they can lose: see ``python -m trainer prune --sensitivity``).

    Returns
    -------
    model : the same Net, now with fewer channels
    report : dict with ``widths_before``, ``widths_after`` and ``removed`` (per layer)
    """
    if model.name not in PRUNABLE or model.float_twin:
        raise ValueError(f"pruning supports the binarized sequential models {PRUNABLE}, not "
                         f"{model.name}{' (float twin)' if model.float_twin else ''}")
    layers = list(model.layers)
    convs = [i for i, m in enumerate(layers) if isinstance(m, BinaryConvBN)]
    amounts = _amounts(amount, len(convs))
    before, after, removed = [], [], []
    positions = {i: _spatial_positions(model, i) for i, m in enumerate(layers) if isinstance(m, M.Flatten)}
    for i, frac in zip(convs, amounts):
        conv = layers[i]
        n = conv.conv.weight.shape[0]
        drop = similar_filters(conv.conv.weight, int(round(frac * n)))
        keep = torch.tensor(sorted(set(range(n)) - set(drop)), dtype=torch.long)
        before.append(n)
        after.append(len(keep))
        removed.append(sorted(drop))
        _slice_out(conv, keep)
        chan, n_chan = keep, n
        for j in range(i + 1, len(layers)):  # carry the removal to the next weighted layer
            m = layers[j]
            if isinstance(m, Sign):
                if m.shift is not None:
                    m.shift = nn.Parameter(m.shift.detach()[chan].clone())
                m.channels = len(chan)
            elif isinstance(m, M.Flatten):
                p = positions[j]
                chan = torch.tensor([q * n_chan + int(c) for q in range(p) for c in chan], dtype=torch.long)
                n_chan = p * n_chan
            elif isinstance(m, (BinaryConvBN, M.Dense)):
                _slice_in(m, chan)
                break
    model.config["widths"] = after
    return model, {"widths_before": before, "widths_after": after, "removed": removed,
                   "filters_before": sum(before), "filters_after": sum(after)}


def _amount_arg(amount) -> str:
    """``amount`` as ``--amount`` takes it: ``0.3`` or ``0,0,0.25,0.6``."""
    return ",".join(f"{float(a):g}" for a in amount) if isinstance(amount, (list, tuple)) else f"{amount:g}"


def parse_amount(text: str):
    """``--amount``: one fraction (``0.3``) or one per binary layer (``0,0,0.25,0.6``)."""
    parts = [float(p) for p in str(text).split(",")]
    return parts[0] if len(parts) == 1 else parts


def _load_with_test_features(run_dir: Path):
    """A trained run's model, info, config, and the clean features and clips of its own
    test (for a fold run: validation) split."""
    from .train import TrainConfig, load_run
    from . import data as D

    model, info = load_run(run_dir)
    cfg = TrainConfig(**{k: v for k, v in info["config"].items() if k in TrainConfig.__dataclass_fields__})
    feat = D.Featurizer(D.frontend_config(**info["frontend"]))
    _, test_set, _ = D.load_dataset(cfg.data, cfg.split, cfg.seed)
    return model, info, cfg, D.clean_features(feat, test_set, cfg.cache_dir or None), test_set


def sensitivity(run_dir, fractions=(0.25, 0.5, 0.75), log=print) -> list[dict]:
    """Accuracy of a trained run on its own test (validation) clips after pruning one
    binary layer alone by each of ``fractions``, without fine-tuning: how much each
    layer can lose, to choose per-layer amounts on a validation fold."""
    from .train import evaluate

    run_dir = Path(run_dir)
    model, _, _, x_test, test_set = _load_with_test_features(run_dir)
    n_layers = sum(isinstance(m, BinaryConvBN) for m in model.layers)
    base = evaluate(model, x_test, test_set.labels)[0]
    rows = [{"layer": None, "fraction": 0.0, "accuracy": base}]
    log(f"{run_dir}: accuracy {base:.4f} unpruned")
    for k in range(n_layers):
        for f in fractions:
            amounts = [0.0] * n_layers
            amounts[k] = f
            m, rep = prune_model(copy.deepcopy(model), amounts)   # pruning works in place
            acc = evaluate(m, x_test, test_set.labels)[0]
            rows.append({"layer": k, "fraction": f, "widths": rep["widths_after"], "accuracy": acc})
            log(f"binary layer {k}: {f:.0%} pruned (widths {rep['widths_after']}): accuracy {acc:.4f}")
    return rows


def prune_run(run_dir, out, amount: float | list[float] = 0.3, epochs: int = 5, lr: float = 5e-4,
              seed: int | None = None, log=print, teacher: str | None = None) -> dict:
    """Prune a trained run, fine-tune the smaller model, write a new run directory.

    The new run (``out``) is an ordinary run (``result.json`` with the accuracy after
    fine-tuning, ``model.pt``, curves, confusion matrix) whose ``model_kwargs`` hold the
    pruned widths, so ``python -m trainer export OUT`` writes the smaller file.
    ``amount``: as :func:`prune_model`. ``teacher``: a run directory to distil the
    fine-tuning from (e.g. the unpruned ``run_dir`` itself, so the pruned network learns
    to answer as it did; on LC-BNN it did not help, docs/zoo.md); ``None`` keeps the base
    run's own teacher (none, or its float twin).
    """
    from .train import evaluate, train

    run_dir, out = Path(run_dir), Path(out)
    model, info, cfg, x_test, test_set = _load_with_test_features(run_dir)
    model, rep = prune_model(model, amount)
    acc_before_ft = evaluate(model, x_test, test_set.labels)[0]
    log(f"pruned {rep['filters_before']} -> {rep['filters_after']} binary filters "
        f"({rep['widths_before']} -> {rep['widths_after']}); accuracy before fine-tuning {acc_before_ft:.4f}")
    out.mkdir(parents=True, exist_ok=True)
    init = out / "pruned_init.pt"
    torch.save({"model": model.state_dict()}, init)
    kwargs = {**info.get("model_kwargs", {}), "widths": rep["widths_after"]}
    ft = replace(cfg, out=str(out), epochs=epochs, lr=lr, warmup_epochs=0.0, model_kwargs=kwargs,
                 init=str(init), seed=cfg.seed if seed is None else seed,
                 teacher=cfg.teacher if teacher is None else str(teacher),
                 command=f"python -m trainer prune {run_dir} --amount {_amount_arg(amount)} --epochs {epochs} "
                         f"--lr {lr}" + ("" if teacher is None else f" --teacher {teacher}") + f" --out {out}")
    res = train(ft, resume=False, log=log)
    base = json.loads((run_dir / "result.json").read_text())
    report = {**rep, "amount": amount, "base_run": str(run_dir), "base_accuracy": base["test_accuracy"],
              "accuracy_before_finetune": acc_before_ft, "accuracy": res["test_accuracy"],
              "finetune": asdict(ft)}
    (out / "prune.json").write_text(json.dumps(report, indent=2, default=str))
    log(f"pruned model: accuracy {res['test_accuracy']:.4f} (base {base['test_accuracy']:.4f})")
    return report
