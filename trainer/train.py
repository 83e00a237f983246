"""Training loop: Adam + schedule, augmentation, distillation, BN-statistics recompute.

Python API::

    from trainer.train import TrainConfig, train
    result = train(TrainConfig(data="fsdd", split="official", model="digits",
                               epochs=60, out="runs/digits"))

A run directory holds ``config.json``, ``metrics.csv`` (one row per epoch), ``last.pt``
(resumable checkpoint: model, optimiser, schedule, epoch), ``model.pt`` (final weights
after the batch-norm statistics were recomputed on the clean training features),
``result.json`` (final accuracies), ``curves.png`` and ``confusion.png``.

Recipe notes (what the FSDD experiments in docs/training.md showed): Adam without
weight decay on the latent binary weights, latent weights clipped to [-1, 1] after each
step, cosine schedule to zero with a short warm-up, batch-norm running statistics
recomputed on the training data after the last epoch (stale statistics from the moving
average wreck eval mode because signs flip as latent weights move).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data as D
from . import models as M
from .layers import clip_latent_weights, latent_parameters

__all__ = ["TrainConfig", "train", "load_run", "fast_layout", "init_weights", "recompute_bn_stats",
           "finalize_bn", "evaluate", "finalize_run"]


@dataclass
class TrainConfig:
    data: str = "fsdd"
    split: str = "official"
    model: str = "digits"
    model_kwargs: dict = field(default_factory=dict)
    float_twin: bool = False
    frontend: dict = field(default_factory=dict)  # overrides of the model spec's frontend
    out: str = "runs/run"
    epochs: int = 60
    batch_size: int = 32
    lr: float = 2e-3
    final_lr: float = 0.0
    schedule: str = "cosine"  # cosine | onecycle | constant
    warmup_epochs: float = 1.0
    weight_decay: float = 1e-4  # on non-latent parameters only (latent weights: none)
    label_smoothing: float = 0.1
    mixup: float = 0.0  # Beta(a, a) mixing; 0 = off
    wave_aug: bool = True  # time shift / random crop, gain, noise in the waveform domain
    noise_prob: float = 0.3
    speed: float = 0.0  # speed perturbation, factor in [1 - x, 1 + x] (trainer.data.WaveAug)
    pitch: float = 0.0  # pitch shift (resample + frame stretch back)
    tempo: float = 0.0  # tempo (frame-axis stretch)
    vtlp: float = 0.0  # vocal tract length perturbation (mel-axis warp)
    reverb: float = 0.0  # probability of a synthetic room response
    dc: float = 0.0  # DC offset, x the clip's peak
    noise: str = "white"  # white (in the window) | mixed (white, pink or babble on the clip)
    snr: tuple = (20.0, 50.0)  # SNR range of the added noise, dB
    gain: tuple = (-6.0, 6.0)  # gain range, dB (after the time shift: the padding stays digital zero)
    spec_freq_masks: int = 2
    spec_freq_width: int = 6
    spec_time_masks: int = 2
    spec_time_width: int = 10
    teacher: str = ""  # run directory of a trained float twin (distillation); "" = off
    distill_weight: float = 0.5
    distill_temp: float = 2.0
    seed: int = 0
    threads: int = 1
    eval_every: int = 1
    bn_recompute: str = "augmented"  # augmented | clean | none (see finalize_bn)
    cache_dir: str = ""
    progress: bool = True
    ddp: bool = False  # data-parallel under torchrun (trainer.distributed)
    init: str = ""  # a .pt file: state dict (or {"model": state dict}) to start from
    command: str = ""

    def to_json(self):
        return json.dumps(asdict(self), indent=2, sort_keys=True)


# ---------------------------------------------------------------------------------------


def _lr_at(cfg: TrainConfig, step: int, total: int, warm: int) -> float:
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    if cfg.schedule == "cosine":
        return cfg.final_lr + 0.5 * (cfg.lr - cfg.final_lr) * (1 + math.cos(math.pi * t))
    if cfg.schedule == "onecycle":  # linear anneal after the warm-up peak
        return cfg.final_lr + (cfg.lr - cfg.final_lr) * (1 - t)
    return cfg.lr


def spec_augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """SpecAugment frequency and time masks, filled with each clip's minimum (silence)."""
    n, h, w = x.shape
    x = x.clone()
    fill = x.amin(dim=(1, 2))
    for _ in range(cfg.spec_freq_masks):
        width = torch.randint(0, cfg.spec_freq_width + 1, (n,), generator=gen)
        start = (torch.rand(n, generator=gen) * (h - width + 1)).long()
        idx = torch.arange(h).view(1, h)
        m = (idx >= start.view(n, 1)) & (idx < (start + width).view(n, 1))
        x = torch.where(m.view(n, h, 1), fill.view(n, 1, 1), x)
    for _ in range(cfg.spec_time_masks):
        width = torch.randint(0, cfg.spec_time_width + 1, (n,), generator=gen)
        start = (torch.rand(n, generator=gen) * (w - width + 1)).long()
        idx = torch.arange(w).view(1, w)
        m = (idx >= start.view(n, 1)) & (idx < (start + width).view(n, 1))
        x = torch.where(m.view(n, 1, w), fill.view(n, 1, 1), x)
    return x


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, x: np.ndarray, batch_size: int = 256) -> None:
    """Replace every BN's running mean/var by exact averages over ``x`` (train-mode BN).

    Uses cumulative averaging (``momentum=None``); the model is left in eval mode. Under
    ``--ddp`` every rank passes the same ``x``, runs batch ``i`` when ``i mod world ==
    rank``, and the averages are combined over ranks (:func:`trainer.distributed.allreduce_bn_stats`).
    """
    from . import distributed as dd

    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    rank, world = dd.rank(), dd.world_size()
    for b, i in enumerate(range(0, len(x), batch_size)):
        if b % world == rank:
            model(torch.from_numpy(x[i:i + batch_size]))
    dd.allreduce_bn_stats(model)
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()


def finalize_bn(model, cfg: TrainConfig, feat, waves, x_train: np.ndarray, mode: str) -> None:
    """Set the batch-norm statistics used in eval mode (and so in the exported file).

    ``augmented`` (default): recompute them exactly over one pass of the *training
    distribution* (waveform augmentation and SpecAugment as in training, batches of the
    training size), since the learned shifts and BN parameters co-adapted with batch
    statistics of augmented data; ``clean``: over the clean training features; ``none``:
    keep the moving averages of the last training steps. On FSDD run b (no distillation),
    the test accuracy was 99.3% (augmented), 96.0% (clean) and 99.7% (moving averages):
    eval-mode BNNs are sensitive to these statistics; clean statistics mismatch training.
    """
    if mode == "none":
        model.eval()
        return
    if mode == "clean":
        recompute_bn_stats(model, x_train, batch_size=cfg.batch_size)
        return
    if mode != "augmented":
        raise ValueError(f"bn_recompute={mode!r}: expected augmented, clean or none")
    rng = np.random.default_rng([cfg.seed, 1_000_003])
    gen = torch.Generator().manual_seed(cfg.seed + 1_000_003)
    xa = D.augmented_features(feat, waves, make_aug(cfg, waves), rng) \
        if cfg.wave_aug else x_train
    xa = torch.from_numpy(xa)[torch.randperm(len(xa), generator=gen)]
    xs = spec_augment(xa, cfg, gen).numpy()
    recompute_bn_stats(model, xs, batch_size=cfg.batch_size)


@torch.no_grad()
def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 256):
    """Eval-mode ``(accuracy, mean loss, logits)``."""
    model.eval()
    logits = torch.cat([model(torch.from_numpy(x[i:i + batch_size]))
                        for i in range(0, len(x), batch_size)])
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    loss = F.cross_entropy(logits, yt).item()
    acc = (logits.argmax(1) == yt).float().mean().item()
    return acc, loss, logits.numpy()


def init_weights(model: nn.Module, path) -> list:
    """Load the weights of ``path`` (a state dict, ``{"model": state dict}`` or a run's
    ``model.pt``) into ``model``; returns the names it kept from ``model`` because their
    shapes differ there (a head for another label set: pretraining on keywords, then
    digits). Every other tensor must be present, with the same shape."""
    st = torch.load(path, map_location="cpu", weights_only=False)
    st = st.get("model", st) if isinstance(st, dict) else st
    own = model.state_dict()
    head = list(own)[-1].rsplit(".", 1)[0] + "."      # the classifier: the last module's tensors
    skipped = [k for k, v in st.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    other = [k for k in skipped if not k.startswith(head)]
    if other:
        raise ValueError(f"--init {path}: {other[0]} has shape {tuple(st[other[0]].shape)}, this model "
                         f"{tuple(own[other[0]].shape)} (only the classifier may differ)")
    model.load_state_dict({**st, **{k: own[k] for k in skipped}})
    return skipped


def fast_layout(model: nn.Module) -> nn.Module:
    """The model with channels-last 4-D tensors, the layout training uses: oneDNN's
    convolutions and their backward passes, batch norm and max pooling run ~1.5x faster
    per step on one core than in NCHW. Same values up to float32 rounding (another
    summation order); a state dict saved in either layout loads into the other.

    A 4-D weight with one input channel (the stem's) keeps its default strides: the same
    bytes in either layout, and the strides autograd gives its gradient (so
    DistributedDataParallel's gradient buckets match it)."""
    model = model.to(memory_format=torch.channels_last)
    with torch.no_grad():
        for prm in model.parameters():
            if prm.dim() == 4 and prm.shape[1] == 1:
                prm.data = prm.data.clone(memory_format=torch.contiguous_format)
    return model


def load_run(run_dir, which: str = "model.pt"):
    """Rebuild the model of a run directory; returns ``(model, info dict)``."""
    run_dir = Path(run_dir)
    ck = torch.load(run_dir / which, map_location="cpu", weights_only=False)
    info = ck["info"]
    model = M.build(info["model"], n_classes=len(info["labels"]),
                    float_twin=info["float_twin"], **info.get("model_kwargs", {}))
    model.load_state_dict(ck["model"])
    model.eval()
    return model, info


def _plots(out: Path, rows: list, cm: np.ndarray, labels: list, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot(ep, [r["train_loss"] for r in rows], label="train")
    ax[0].plot(ep, [r["test_loss"] for r in rows], label="test")
    ax[0].set_xlabel("epoch")
    ax[0].set_ylabel("loss")
    ax[0].legend()
    ax[1].plot(ep, [r["train_acc"] for r in rows], label="train (augmented)")
    ax[1].plot(ep, [r["test_acc"] for r in rows], label="test (eval mode)")
    ax[1].set_xlabel("epoch")
    ax[1].set_ylabel("accuracy")
    ax[1].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=100)
    plt.close(fig)

    fig, axc = plt.subplots(figsize=(5, 5))
    axc.imshow(cm, cmap="Blues")
    axc.set_xticks(range(len(labels)), labels, rotation=90 if len(labels) > 12 else 0)
    axc.set_yticks(range(len(labels)), labels)
    axc.set_xlabel("predicted")
    axc.set_ylabel("true")
    if len(labels) <= 20:
        for i in range(len(labels)):
            for j in range(len(labels)):
                if cm[i, j]:
                    axc.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                             color="white" if cm[i, j] > cm.max() / 2 else "black")
    axc.set_title(f"confusion ({title})")
    fig.tight_layout()
    fig.savefig(out / "confusion.png", dpi=100)
    plt.close(fig)


def make_aug(cfg: TrainConfig, pool=None) -> D.WaveAug:
    """The augmentation a config asks for (time shift, gain and noise always; the rest
    only where its field is non-zero); ``pool``: the training waveforms, babble sources."""
    return D.WaveAug(noise_prob=cfg.noise_prob, speed=cfg.speed, pitch=cfg.pitch,
                     tempo=cfg.tempo, vtlp=cfg.vtlp, reverb_prob=cfg.reverb, dc=cfg.dc,
                     noise=cfg.noise, snr_db=tuple(cfg.snr), pool=pool,
                     gain_range=tuple(cfg.gain))


def train(cfg: TrainConfig, resume: bool = True, log=print) -> dict:
    """Train a model as configured; returns the result dict (also in ``result.json``).

    With ``cfg.ddp`` (under torchrun) the ranks train one model together; only rank 0
    logs and writes files (see :mod:`trainer.distributed`).
    """
    from . import distributed as dd

    if cfg.ddp:
        dd.init()
    try:
        return _train(cfg, resume, log if dd.is_main() else (lambda *a, **k: None), dd)
    finally:
        if cfg.ddp:
            dd.shutdown()


def _train(cfg: TrainConfig, resume: bool, log, dd) -> dict:
    main, rank, world = dd.is_main(), dd.rank(), dd.world_size()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, cfg.threads))
    torch.manual_seed(cfg.seed)
    if not cfg.command:
        cfg.command = "python -m trainer " + " ".join(shlex.quote(a) for a in sys.argv[1:])

    spec = M.SPECS[cfg.model]
    fdict = {**spec.frontend, **cfg.frontend}
    fcfg = D.frontend_config(**fdict)
    feat = D.Featurizer(fcfg)
    train_set, test_set, desc = D.load_dataset(cfg.data, cfg.split, cfg.seed)
    log(f"data: {desc}; {len(train_set)} train / {len(test_set)} test clips; features {feat.impl}"
        + (f"; {world} ranks (ddp, gloo)" if cfg.ddp else ""))
    cache = cfg.cache_dir or None
    waves = D.load_waves(feat, train_set)
    x_train = D.clean_features(feat, train_set, cache, waves=waves)
    x_test = D.clean_features(feat, test_set, cache)
    y_train, y_test = train_set.labels.astype(np.int64), test_set.labels.astype(np.int64)
    n_classes = len(train_set.label_names)
    shape = tuple(x_train.shape[1:])

    model = M.build(cfg.model, n_classes=n_classes, float_twin=cfg.float_twin,
                    input_shape=shape, **cfg.model_kwargs)
    if cfg.init:
        skipped = init_weights(model, cfg.init)
        log(f"initialised from {cfg.init}"
            + (f" (kept this model's own {', '.join(skipped)}: other shapes there)" if skipped else ""))
    model = fast_layout(model)
    teacher = None
    if cfg.teacher:
        teacher, tinfo = load_run(cfg.teacher)
        teacher = fast_layout(teacher)
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        tacc = evaluate(teacher, x_test, y_test)[0]
        log(f"teacher {cfg.teacher}: test accuracy {tacc:.4f}")

    latent, other = latent_parameters(model)
    groups = [{"params": other, "weight_decay": cfg.weight_decay}]
    if latent:
        groups.append({"params": latent, "weight_decay": 0.0})
    opt = torch.optim.Adam(groups, lr=cfg.lr)
    sampler = None
    if cfg.ddp:
        from torch.utils.data import DistributedSampler

        # equal shares per rank (padded by repeating clips), reshuffled each epoch
        sampler = DistributedSampler(range(len(x_train)), num_replicas=world, rank=rank,
                                     shuffle=True, seed=cfg.seed, drop_last=False)
    steps_per_epoch = math.ceil((len(sampler) if sampler else len(x_train)) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warm = int(cfg.warmup_epochs * steps_per_epoch)

    start_epoch, rows = 0, []
    ckpt = out / "last.pt"
    if resume and ckpt.exists():
        ck = torch.load(ckpt, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        start_epoch, rows = ck["epoch"], ck["rows"]
        log(f"resumed from {ckpt} at epoch {start_epoch}")
    net = model
    if cfg.ddp:
        # broadcasts rank 0's weights now; averages gradients in every backward pass
        net = torch.nn.parallel.DistributedDataParallel(model)
    if main:
        (out / "config.json").write_text(cfg.to_json())

    aug = make_aug(cfg, waves)
    info = {"model": cfg.model, "model_kwargs": cfg.model_kwargs, "float_twin": cfg.float_twin,
            "labels": train_set.label_names, "frontend": fcfg.to_dict(),
            "features": feat.impl, "dataset": desc, "data": cfg.data, "split": cfg.split,
            "config": asdict(cfg)}
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        if sampler is None:
            rng = np.random.default_rng([cfg.seed, epoch])
            gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
            xe = D.augmented_features(feat, waves, aug, rng) if cfg.wave_aug else x_train
            ye = y_train
            xe = torch.from_numpy(xe)
            perm = torch.randperm(len(xe), generator=gen)
        else:  # this rank's share of the epoch, already shuffled by the sampler
            sampler.set_epoch(epoch)
            mine = np.fromiter(iter(sampler), dtype=np.int64)
            rng = np.random.default_rng([cfg.seed, epoch, rank])
            gen = torch.Generator().manual_seed((cfg.seed * 100003 + epoch) * 1009 + rank)
            xe = (D.augmented_features(feat, [waves[i] for i in mine], aug, rng) if cfg.wave_aug
                  else x_train[mine])
            ye = y_train[mine]
            xe = torch.from_numpy(xe)
            perm = torch.arange(len(xe))
        net.train()
        tot_loss = tot_acc = n_seen = 0.0
        it = range(steps_per_epoch)
        if tqdm is not None and cfg.progress and main:
            it = tqdm(it, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, mininterval=2)
        for s in it:
            step = epoch * steps_per_epoch + s
            lr = _lr_at(cfg, step, total, warm)
            for g in opt.param_groups:
                g["lr"] = lr
            idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            xb = xe[idx]
            yb = torch.from_numpy(ye)[idx]
            xb = spec_augment(xb, cfg, gen)
            lam, yb2 = 1.0, yb
            if cfg.mixup > 0:
                lam = float(rng.beta(cfg.mixup, cfg.mixup))
                p2 = torch.randperm(len(xb), generator=gen)
                xb = lam * xb + (1 - lam) * xb[p2]
                yb2 = yb[p2]
            logits = net(xb)
            ce = lambda t: F.cross_entropy(logits, t, label_smoothing=cfg.label_smoothing)
            loss = lam * ce(yb) + (1 - lam) * ce(yb2)
            if teacher is not None:
                with torch.no_grad():
                    tl = teacher(xb)
                T = cfg.distill_temp
                kd = F.kl_div(F.log_softmax(logits / T, 1), F.softmax(tl / T, 1),
                              reduction="batchmean") * T * T
                loss = (1 - cfg.distill_weight) * loss + cfg.distill_weight * kd
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            clip_latent_weights(model)
            tot_loss += loss.item() * len(xb)
            tot_acc += (logits.argmax(1) == yb).float().sum().item()
            n_seen += len(xb)
        tot_loss, tot_acc, n_seen = dd.all_reduce_sum(tot_loss, tot_acc, n_seen)
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": tot_loss / n_seen,
               "train_acc": tot_acc / n_seen, "test_loss": float("nan"),
               "test_acc": float("nan"), "seconds": 0.0}
        if main and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
            row["test_acc"], row["test_loss"], _ = evaluate(model, x_test, y_test)
        row["seconds"] = time.time() - t0
        rows.append(row)
        log(f"epoch {epoch + 1:3d} lr {lr:.2e} loss {row['train_loss']:.4f} "
            f"train {row['train_acc']:.4f} test {row['test_acc']:.4f} ({row['seconds']:.0f}s)")
        if not main:
            continue
        with open(out / "metrics.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        tmp = out / "last.pt.tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch + 1,
                    "rows": rows, "info": info}, tmp)
        os.replace(tmp, ckpt)

    nan = float("nan")
    accs = {"ema": evaluate(model, x_test, y_test)[0] if main else nan}
    if cfg.bn_recompute != "clean":  # reported for information only, never used to choose
        trained = {k: v.clone() for k, v in model.state_dict().items()}
        finalize_bn(model, cfg, feat, waves, x_train, "clean")
        accs["clean"] = evaluate(model, x_test, y_test)[0] if main else nan
        model.load_state_dict(trained)
    if cfg.ddp and cfg.bn_recompute == "none":  # rank 0's moving averages for every replica
        for t in model.state_dict().values():
            torch.distributed.broadcast(t, 0)
    finalize_bn(model, cfg, feat, waves, x_train, cfg.bn_recompute)
    checksums = dd.gather_strings(dd.state_checksum(model))
    if not main:
        return {}
    acc, loss, logits = evaluate(model, x_test, y_test)
    accs[cfg.bn_recompute] = acc
    acc_stale = accs["ema"]
    pred = logits.argmax(1)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_test, pred), 1)
    result = {"test_accuracy": acc, "test_loss": loss, "test_accuracy_before_bn_recompute": acc_stale,
              "bn_recompute": cfg.bn_recompute, "test_accuracy_by_bn_stats": accs,
              "train_clips": len(x_train), "test_clips": len(x_test), "dataset": desc,
              "model": cfg.model, "float_twin": cfg.float_twin, "epochs": cfg.epochs,
              "command": cfg.command, "labels": list(train_set.label_names),
              "confusion": cm.tolist(),  # rows: true class, columns: predicted
              "parameters": int(sum(p.numel() for p in model.parameters()))}
    if cfg.ddp:
        result["ddp"] = {"world_size": world, "backend": "gloo", "state_checksums": checksums,
                         "replicas_in_sync": len(set(checksums)) == 1}
        log(f"ddp: {world} replicas, final weights and statistics "
            f"{'identical' if len(set(checksums)) == 1 else 'DIFFER'} ({checksums[0][:12]})")
    info["result"] = result
    torch.save({"model": model.state_dict(), "info": info}, out / "model.pt")
    (out / "result.json").write_text(json.dumps(result, indent=2))
    _plots(out, rows, cm, train_set.label_names,
           f"{cfg.model}{' float twin' if cfg.float_twin else ''}: test {acc:.3f}")
    log(f"final test accuracy {acc:.4f} (before BN recompute {acc_stale:.4f}); wrote {out}")
    return result


def finalize_run(run_dir, mode: str = "augmented", log=print) -> dict:
    """Redo the final batch-norm statistics of a finished run from ``last.pt``.

    Writes ``model.pt`` and ``result.json`` again (``python -m trainer finalize RUN``).
    """
    run_dir = Path(run_dir)
    ck = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=False)
    info = ck["info"]
    cfg = TrainConfig(**{**info["config"], "bn_recompute": mode, "ddp": False})
    torch.set_num_threads(max(1, cfg.threads))
    model = M.build(info["model"], n_classes=len(info["labels"]), float_twin=info["float_twin"],
                    **info.get("model_kwargs", {}))
    model.load_state_dict(ck["model"])
    feat = D.Featurizer(D.frontend_config(**info["frontend"]))
    train_set, test_set, _ = D.load_dataset(cfg.data, cfg.split, cfg.seed)
    cache = cfg.cache_dir or None
    waves = D.load_waves(feat, train_set)
    x_train = D.clean_features(feat, train_set, cache, waves=waves)
    x_test = D.clean_features(feat, test_set, cache)
    y_test = test_set.labels.astype(np.int64)
    old = json.loads((run_dir / "result.json").read_text()) if (run_dir / "result.json").exists() else {}
    finalize_bn(model, cfg, feat, waves, x_train, mode)
    acc, loss, _ = evaluate(model, x_test, y_test)
    result = {**old, "test_accuracy": acc, "test_loss": loss, "bn_recompute": mode,
              "finalize_command": f"python -m trainer finalize {run_dir} --bn {mode}"}
    result.setdefault("test_accuracy_by_bn_stats", {})[mode] = acc
    info["result"] = result
    info["config"]["bn_recompute"] = mode
    torch.save({"model": model.state_dict(), "info": info}, run_dir / "model.pt")
    (run_dir / "result.json").write_text(json.dumps(result, indent=2))
    log(f"{run_dir}: batch-norm statistics '{mode}': test accuracy {acc:.4f}")
    return result
