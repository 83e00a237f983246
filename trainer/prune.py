"""Filter pruning by cosine similarity: prune, fine-tune, export a genuinely smaller model.

``python -m trainer prune RUN --amount 0.3 --epochs 5 --out RUN-pruned``

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


def prune_model(model: M.Net, amount: float) -> tuple[M.Net, dict]:
    """Remove ``amount`` (0..1) of the filters of every binary layer, in place.

    Returns
    -------
    model : the same Net, now with fewer channels
    report : dict with ``widths_before``, ``widths_after`` and ``removed`` (per layer)
    """
    if model.name not in PRUNABLE or model.float_twin:
        raise ValueError(f"pruning supports the binarized sequential models {PRUNABLE}, not "
                         f"{model.name}{' (float twin)' if model.float_twin else ''}")
    if not 0 <= amount < 1:
        raise ValueError(f"amount must be in [0, 1), got {amount}")
    layers = list(model.layers)
    convs = [i for i, m in enumerate(layers) if isinstance(m, BinaryConvBN)]
    before, after, removed = [], [], []
    positions = {i: _spatial_positions(model, i) for i, m in enumerate(layers) if isinstance(m, M.Flatten)}
    for i in convs:
        conv = layers[i]
        n = conv.conv.weight.shape[0]
        drop = similar_filters(conv.conv.weight, int(round(amount * n)))
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


def prune_run(run_dir, out, amount: float = 0.3, epochs: int = 5, lr: float = 5e-4,
              seed: int | None = None, log=print, teacher: str | None = None) -> dict:
    """Prune a trained run, fine-tune the smaller model, write a new run directory.

    The new run (``out``) is an ordinary run (``result.json`` with the accuracy after
    fine-tuning, ``model.pt``, curves, confusion matrix) whose ``model_kwargs`` hold the
    pruned widths, so ``python -m trainer export OUT`` writes the smaller file.
    ``teacher``: a run directory to distil the fine-tuning from (the unpruned ``run_dir``
    itself is the usual choice: the pruned network learns to answer as it did); ``None``
    keeps the base run's own teacher (none, or its float twin).
    """
    from .train import TrainConfig, evaluate, load_run, train
    from . import data as D

    run_dir, out = Path(run_dir), Path(out)
    model, info = load_run(run_dir)
    cfg = TrainConfig(**{k: v for k, v in info["config"].items() if k in TrainConfig.__dataclass_fields__})
    model, rep = prune_model(model, amount)
    feat = D.Featurizer(D.frontend_config(**info["frontend"]))
    _, test_set, _ = D.load_dataset(cfg.data, cfg.split, cfg.seed)
    x_test = D.clean_features(feat, test_set, cfg.cache_dir or None)
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
                 command=f"python -m trainer prune {run_dir} --amount {amount} --epochs {epochs} "
                         f"--lr {lr}" + ("" if teacher is None else f" --teacher {teacher}") + f" --out {out}")
    res = train(ft, resume=False, log=log)
    base = json.loads((run_dir / "result.json").read_text())
    report = {**rep, "amount": amount, "base_run": str(run_dir), "base_accuracy": base["test_accuracy"],
              "accuracy_before_finetune": acc_before_ft, "accuracy": res["test_accuracy"],
              "finetune": asdict(ft)}
    (out / "prune.json").write_text(json.dumps(report, indent=2, default=str))
    log(f"pruned model: accuracy {res['test_accuracy']:.4f} (base {base['test_accuracy']:.4f})")
    return report
