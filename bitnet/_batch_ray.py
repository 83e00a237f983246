"""The Ray backend of :func:`bitnet.batch`: Ray Data actors classify the clips.

How the job is laid out, and why:

* **Input.** The driver lists the inputs (it must know them all to promise one row per
  input) and hands Ray Data an Arrow table of ``(id, path)``, cut into blocks of one
  batch each (``chunk_size``, 64 clips by default). Blocks hold paths and result rows only (a few hundred bytes a
  clip, ~0.4 GB for a million clips in flight at worst): the audio is read and decoded
  inside the actors and never enters the object store, so nothing spills.
* **Actors.** ``map_batches`` runs :class:`BatchActor` in an actor pool: each actor
  loads the model once (the bytes travel with the job, so the workers need no copy of
  the model file), warms the kernels on one window, and sets bitnet's thread count to
  the CPUs Ray gave it. Each call decodes, computes features and classifies a batch of
  clips (:class:`bitnet.batch.Classifier`).
* **Kernel cache.** Each actor uses ``BITNET_CACHE_DIR`` when the cluster sets it, else
  a directory on the node's local disk (:func:`node_cache_dir`), so the compiled kernels
  are built once per node (first builds that race are serialised by the lock in
  :mod:`bitnet.compile.aot`) and never shared between different CPUs over a network home.
* **Failures.** Ray Data restarts a dead actor and retries its tasks (its actor pools
  default to ``max_restarts=-1``, ``max_task_retries=-1``); a retried batch may
  deliver rows twice, which the driver drops by id, so the output still has exactly one row per input.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import ParameterError

def node_cache_dir() -> str:
    """The compiled-kernel cache on this node: ``$BITNET_CACHE_DIR`` or a local temp dir."""
    env = os.environ.get("BITNET_CACHE_DIR")
    if env:
        return env
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return str(Path(tempfile.gettempdir()) / f"bitnet-cache-{uid}")


class BatchActor:
    """A Ray Data actor: one model per actor, ``(id, path)`` batches in, result rows out."""

    def __init__(self, model_bytes: bytes, digest: str, top_k: int, hop, cpus: float):
        os.environ["BITNET_CACHE_DIR"] = node_cache_dir()
        from .batch import Classifier

        # the model file is written once per node, under its hash, then memory-mapped
        d = Path(os.environ["BITNET_CACHE_DIR"]) / "models"
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{digest}.bnn"
        if not path.exists():
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(model_bytes)
            os.replace(tmp, path)
        try:  # the CPUs Ray actually assigned to this actor
            import ray

            cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", cpus)
        except Exception:  # outside an actor (tests calling the class directly)
            pass
        self.clf = Classifier(path, top_k=top_k, hop=hop, threads=max(1, int(cpus)), digest=digest)
        self.clf.warm_up()

    def __call__(self, batch):
        from ._batch_io import rows_to_table

        ids = batch.column("id").to_pylist()
        paths = batch.column("path").to_pylist()
        return rows_to_table(self.clf.rows(list(zip(ids, paths))))


def _ray():
    try:
        import ray
    except ImportError:
        raise ParameterError("--ray needs Ray: pip install 'bitnet-audio[ray]'") from None
    return ray


def connect(address) -> None:
    """``ray.init`` for ``address`` (True/"auto": RAY_ADDRESS, a local cluster, or a new one)."""
    ray = _ray()
    if ray.is_initialized():
        return
    kw = {"log_to_driver": True, "configure_logging": False}
    if address in (True, "auto", "", None):
        ray.init(**kw)
    else:
        ray.init(address=str(address), **kw)


def run_ray(todo, emit, cfg, *, address, workers, cpus_per_worker: float = 1, batch_size: int = 64) -> int:
    """Classify ``todo`` on Ray, calling ``emit(rows)`` as batches come back; returns the actor count."""
    ray = _ray()
    import pyarrow as pa

    connect(address)
    if not todo:
        return 0
    if workers is None or workers == 0:
        cpus = float(ray.cluster_resources().get("CPU", 1))
        workers = max(1, int(cpus // cpus_per_worker))
    workers = min(workers, max(1, -(-len(todo) // batch_size)))
    model_bytes = Path(cfg["model_path"]).read_bytes()
    table = pa.table({"id": [i for i, _ in todo], "path": [p for _, p in todo]})
    # one block per batch: a block is one actor call (~0.1-1 s of work), so the pool
    # balances well, streams results back steadily and a dead actor loses little
    blocks = [table.slice(i, batch_size) for i in range(0, len(todo), batch_size)]
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # bitnet.batch draws its own (clips/s, ETA)
    ds = ray.data.from_arrow(blocks)
    ds = ds.map_batches(
        BatchActor,
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=cpus_per_worker,
        fn_constructor_kwargs={"model_bytes": model_bytes, "digest": cfg["digest"], "top_k": cfg["top_k"],
                               "hop": cfg["hop"], "cpus": cpus_per_worker},
    )  # Ray Data gives its actors max_restarts=-1 and max_task_retries=-1 by default
    from ._batch_io import COLUMNS

    for b in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        emit([{c: r[c] for c in COLUMNS} for r in b.to_pylist()])
    return workers
