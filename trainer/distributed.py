"""Data-parallel training across processes and machines: ``python -m trainer train --ddp``.

Launch with ``torchrun`` (it sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``)::

    torchrun --nproc_per_node 2 -m trainer train --ddp --data fsdd --out runs/digits
    # two machines: on each, --nnodes 2 --node_rank K --master_addr HEAD --master_port 29500

What is distributed, and how the replicas stay identical:

* The process group uses **gloo** (CPU). Every rank holds the whole (small) dataset
  and computes the same clean features; a :class:`torch.utils.data.DistributedSampler`
  (seeded with the run's seed, reshuffled per epoch) gives each rank a disjoint share of
  each epoch, padded so every rank takes the same number of steps. Each rank augments
  its own share (its random stream is seeded by seed, epoch and rank). ``--batch-size``
  is per rank: the global batch is ``batch_size × world_size``.
* :class:`torch.nn.parallel.DistributedDataParallel` broadcasts rank 0's parameters and
  buffers when it wraps the model and averages gradients in every backward pass (an
  all-reduce, so every rank gets the same bits); the optimiser and the latent-weight
  clipping are deterministic, so the parameters stay bit-identical. Batch-norm running
  statistics are rank 0's during training (DDP re-broadcasts buffers before each
  forward pass).
* **Final batch-norm statistics** (:func:`allreduce_bn_stats`): every rank builds the
  same recompute batches (same seed), runs its share of them (batch ``i`` on rank
  ``i mod world``) in train mode with cumulative averaging, and the per-rank averages
  are combined, weighted by batch counts: exactly the average over all batches a
  single process computes (up to float summation order), then broadcast from rank 0
  so every replica holds the same bits.
* Only rank 0 logs, evaluates, writes checkpoints, metrics, ``model.pt`` and the
  result; the run directory is rank 0's (put it on shared storage to resume a
  multi-machine run). ``result.json`` records a checksum of every replica's final
  weights (:func:`state_checksum`) to show that they agree.
"""

from __future__ import annotations

import hashlib
import os
import sys

import torch
import torch.distributed as dist
import torch.nn as nn

__all__ = ["init", "active", "rank", "world_size", "is_main", "barrier", "all_reduce_sum",
           "allreduce_bn_stats", "state_checksum", "gather_strings", "shutdown", "leave"]


def init() -> None:
    """Join the process group described by torchrun's environment (gloo backend)."""
    if dist.is_initialized():
        return
    missing = [v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise RuntimeError(f"--ddp needs torchrun (missing {', '.join(missing)}): "
                           "torchrun --nproc_per_node N -m trainer train --ddp ...")
    dist.init_process_group("gloo")


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


def all_reduce_sum(*values: float) -> list[float]:
    """Sum Python numbers over all ranks (float64)."""
    t = torch.tensor(values, dtype=torch.float64)
    if active():
        dist.all_reduce(t)
    return t.tolist()


def _bns(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def allreduce_bn_stats(model: nn.Module) -> None:
    """Combine per-rank cumulative batch-norm averages into the global average.

    Each rank's ``running_mean``/``running_var`` is the mean over its own
    ``num_batches_tracked`` recompute batches (``momentum=None``); the global value is the
    batch-count-weighted mean of those, the same as one process averaging every batch.
    """
    if not active():
        return
    for m in _bns(model):
        n = m.num_batches_tracked.to(torch.float64)
        packed = torch.cat([m.running_mean.double() * n, m.running_var.double() * n, n.view(1)])
        dist.all_reduce(packed)
        c = m.running_mean.numel()
        total = packed[-1].clamp_min(1)
        m.running_mean.copy_((packed[:c] / total).to(m.running_mean.dtype))
        m.running_var.copy_((packed[c:2 * c] / total).to(m.running_var.dtype))
        m.num_batches_tracked.fill_(int(packed[-1].item()))
    for t in model.state_dict().values():  # the same bits everywhere, whatever the reduction order
        if t.dtype.is_floating_point or t.dtype == torch.int64:
            dist.broadcast(t, 0)


def state_checksum(model: nn.Module) -> str:
    """SHA-256 of every parameter and buffer's bytes (in state-dict order)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def gather_strings(s: str) -> list[str]:
    """``[s from rank 0, s from rank 1, ...]`` on every rank."""
    if not active():
        return [s]
    out = [None] * world_size()
    dist.all_gather_object(out, s)
    return out


def shutdown() -> None:
    """Leave the group together: every rank reaches a barrier, then destroys it.

    Without the barrier a rank that finishes first (rank 1, while rank 0 still writes
    the run) tears down its gloo pairs under a peer's feet; gloo's transport threads can
    then abort the process at exit ("terminate called without an active exception").
    """
    if active():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def leave(code: int = 0) -> None:
    """End a torchrun worker after :func:`shutdown`: flush, then ``os._exit(code)``.

    A complete two-rank run on a clean CI machine once ended with rank 1 killed by
    SIGABRT ("terminate called without an active exception") after the group was
    destroyed and every file written: gloo's transport threads can still be torn down
    badly in the interpreter's and C++ runtime's exit. Nothing is left to do at that point,
    so a worker skips that teardown; its exit status is then the run's.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
