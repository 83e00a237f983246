"""Classify an archive of clips and write one result row per clip: ``bitnet.batch``.

>>> import bitnet
>>> s = bitnet.batch("recordings/", "results.parquet")            # doctest: +SKIP
>>> s = bitnet.batch("manifest.parquet", "out.jsonl", ray="auto")  # doctest: +SKIP

The same job runs three ways, through the same per-chunk code (:class:`Classifier`):

* ``workers=0``: a plain loop in this process;
* ``workers=N`` (default: the CPUs this process may use): a pool of N local processes,
  each loading the model once;
* ``ray=ADDRESS`` (or ``True`` / ``"auto"``): Ray Data actors on a cluster
  (:mod:`bitnet._batch_ray`).

Each input gives exactly one row (:data:`bitnet._batch_io.COLUMNS`): id, path, label,
probability, top-k, window count, the model file's SHA-256 and an error. A file that
cannot be read or classified gives a row with ``error`` set (one line naming the file and
the problem) and empty results; it never stops the run. A rerun with the same output
skips the inputs already written (:mod:`bitnet._batch_io` says how each format makes that
safe), so a killed job is resumed by running it again.

The per-clip work is decode (libsndfile, or fsspec for URLs) → resample → log-mel →
graph, as :meth:`bitnet.Model.predict`, with threads set to 1 per worker process (the
parallelism is across clips).
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import time
import types
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import BitnetError, ParameterError

__all__ = ["batch", "BatchSummary", "Classifier"]


@dataclass
class BatchSummary:
    """What a :func:`batch` run did.

    Attributes
    ----------
    output : str
        The result file.
    inputs : int
        Inputs listed (unique ids).
    skipped : int
        Inputs already in the output before this run (resumed).
    written : int
        Rows written by this run.
    errors : int
        Rows with an error, in the whole output.
    seconds : float
        Wall time of the classification (listing and opening excluded).
    clips_per_s : float
        ``written / seconds``.
    backend : str
        ``"loop"``, ``"processes"`` or ``"ray"``.
    workers : int
        Worker processes (or Ray actors) used.
    """

    output: str
    inputs: int
    skipped: int
    written: int
    errors: int
    seconds: float
    clips_per_s: float
    backend: str
    workers: int

    def to_dict(self) -> dict:
        return asdict(self)


def model_hash(path) -> str:
    """SHA-256 (hex) of a model file's bytes: what the ``model_hash`` column holds."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _one_line(path: str, e: BaseException) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, BitnetError):
        return msg if path in msg else f"{path}: {msg}"
    if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return f"{path}: {e.strerror or msg}"
    return f"{path}: unexpected {type(e).__name__}: {msg}"


class Classifier:
    """Loads a model once and turns ``(id, path)`` pairs into result rows.

    Used by every backend: the loop, each pool process, each Ray actor.

    Parameters
    ----------
    model_path : str or os.PathLike, optional
        The ``.bnn`` file (default: the bundled model).
    top_k : int
        Classes kept in the ``top_k`` column.
    hop : float, optional
        Hop between windows of long clips, seconds (default half a window).
    threads : int
        bitnet threads for this process (:func:`bitnet.set_num_threads`).
    digest : str, optional
        The model file's SHA-256, if already known.
    """

    def __init__(self, model_path=None, top_k: int = 5, hop=None, threads: int = 1, digest: str | None = None):
        from .parallel import set_num_threads
        from .model import DEFAULT_MODEL, load

        set_num_threads(max(1, int(threads)))
        path = DEFAULT_MODEL if model_path is None else Path(model_path)
        self.model = load(path)
        self.digest = digest or model_hash(path)
        self.top_k = int(top_k)
        self.hop = hop
        self._fs_open = None

    def warm_up(self) -> None:
        """Run one window of silence so that kernels are loaded before the first clip."""
        import numpy as np

        self.model.predict(np.zeros(self.model.window_samples, np.float32), sample_rate=self.model.sample_rate)

    def _source(self, path: str):
        if "://" in path:
            # a URL: read the object's bytes through fsspec, decode from memory
            if self._fs_open is None:
                try:
                    import fsspec
                except ImportError:
                    raise ParameterError("reading URLs needs fsspec: pip install fsspec (and e.g. s3fs)") from None
                self._fs_open = fsspec.open
            with self._fs_open(path, "rb") as f:
                return io.BytesIO(f.read())
        return path

    def row(self, rid: str, path: str) -> dict:
        """Classify one input; never raises for a bad file (the row carries the error)."""
        try:
            p = self.model.predict(self._source(path), hop=self.hop)
        except (KeyboardInterrupt, SystemExit, MemoryError):
            raise
        except Exception as e:
            return {"id": rid, "path": path, "label": None, "probability": None, "top_k": [],
                    "windows": 0, "model_hash": self.digest, "error": _one_line(path, e)}
        return {
            "id": rid,
            "path": path,
            "label": p.label,
            "probability": round(p.probability, 6),
            "top_k": [{"label": lab, "probability": round(q, 6)} for lab, q in p.top_k(self.top_k)],
            "windows": int(p.window_probabilities.shape[0]),
            "model_hash": self.digest,
            "error": None,
        }

    def rows(self, items) -> list[dict]:
        """Rows for a list of ``(id, path)``."""
        return [self.row(rid, path) for rid, path in items]


# --------------------------------------------------------------------------- local pool

_worker: Classifier | None = None


def _init_worker(model_path, top_k, hop, digest):
    global _worker
    _worker = Classifier(model_path, top_k, hop, threads=1, digest=digest)
    _worker.warm_up()


def _run_chunk(items):
    return _worker.rows(items)


def _chunks(items, size):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _run_local(todo, emit, cfg, workers: int, chunk: int):
    if workers == 0:
        clf = Classifier(cfg["model_path"], cfg["top_k"], cfg["hop"], threads=1, digest=cfg["digest"])
        clf.warm_up()
        for c in _chunks(todo, chunk):
            emit(clf.rows(c))
        return
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    # fork where there is one: no re-import of the caller's __main__, fast start
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    pending = list(_chunks(todo, chunk))
    pending.reverse()  # pop() from the end keeps the input order
    restarts = 0
    while pending:
        inflight = {}
        try:
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                     initargs=(cfg["model_path"], cfg["top_k"], cfg["hop"], cfg["digest"])) as ex:
                while pending or inflight:
                    # a few chunks queued per worker: enough to keep them busy, bounded memory
                    while pending and len(inflight) < 4 * workers:
                        # submit raises BrokenProcessPool once a worker has died: the chunk
                        # leaves `pending` only when it is in flight, or it would be lost
                        fut = ex.submit(_run_chunk, pending[-1])
                        inflight[fut] = pending.pop()
                    done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                    for f in done:
                        rows = f.result()  # raises BrokenProcessPool while f is still in flight
                        del inflight[f]
                        emit(rows)
        except BrokenProcessPool:
            # a worker died (killed, out of memory): start a fresh pool, redo its chunks
            restarts += 1
            if restarts > 3:
                raise RuntimeError("local worker processes keep dying; giving up (the output is resumable)") from None
            pending.extend(inflight.values())


# --------------------------------------------------------------------------- public entry


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def batch(inputs, output, *, model=None, top_k: int = 5, hop=None, workers: int | None = None,
          ray=None, cpus_per_worker: float = 1, chunk_size: int | None = None, format: str | None = None,
          resume: bool = True, progress: bool | None = None, on_rows=None) -> BatchSummary:
    """Classify every clip of an archive and write one result row per clip.

    Parameters
    ----------
    inputs : str, os.PathLike, or a list of these
        Directories (recursive), glob patterns, CSV/Parquet manifests (``path`` and
        optional ``id`` columns) or files; local paths or fsspec URLs.
    output : str or os.PathLike
        ``.parquet`` or ``.jsonl`` result file (on the machine running this call).
    model : str or os.PathLike, optional
        Model file (default: the bundled model).
    top_k : int
        Classes kept per row in the ``top_k`` column (default 5).
    hop : float, optional
        Hop between windows of clips longer than the model window, seconds.
    workers : int, optional
        Local: worker processes, 0 for a loop in this process (default: this process's
        CPUs). Ray: actors (default: the cluster's CPUs divided by ``cpus_per_worker``).
    ray : bool or str, optional
        Run on Ray: ``True`` or ``"auto"`` connects to the cluster in ``RAY_ADDRESS`` or
        one started with ``ray start`` on this machine, else starts a local one; a string
        is an address for ``ray.init`` (``"ray://head:10001"``, ``"10.0.0.5:6379"``).
        Needs ``pip install 'bitnet-audio[ray]'``.
    cpus_per_worker : float
        Ray: CPUs reserved per actor; bitnet's thread count in the actor follows it.
    chunk_size : int, optional
        Clips per task (local) or per Ray batch (default 32 local, 64 Ray).
    format : {"parquet", "jsonl"}, optional
        Default: from the output's extension.
    resume : bool
        Skip inputs already in ``output`` (default). False starts the output afresh.
    progress : bool, optional
        Progress bar on stderr (clips/s, ETA); default: when stderr is a terminal.
    on_rows : callable, optional
        Called with each list of rows as it is written (e.g. for custom monitoring).

    Returns
    -------
    BatchSummary

    Raises
    ------
    ParameterError
        Bad arguments, missing inputs, an output that is not a bitnet result file, a
        missing optional dependency.
    ModelFileError
        The model file cannot be loaded.
    """
    from . import _batch_io as bio
    from .model import DEFAULT_MODEL, load

    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ParameterError(f"top_k must be a positive integer, got {top_k!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise ParameterError(f"workers must be a non-negative integer, got {workers!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ParameterError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if hop is not None and (isinstance(hop, bool) or not isinstance(hop, (int, float)) or not 0 < hop < float("inf")):
        raise ParameterError(f"hop must be a positive number of seconds, got {hop!r}")
    model_path = DEFAULT_MODEL if model is None else Path(model)
    load(model_path)  # fail early, here, on a bad model file
    digest = model_hash(model_path)
    bio.output_format(str(output), format)

    items = bio.list_inputs(inputs)
    out = bio.open_output(output, format, resume=resume)
    skipped = sum(1 for rid, _ in items if rid in out.done)
    todo = [(rid, p) for rid, p in items if rid not in out.done]
    written = 0
    errors = out.errors
    written_ids = set(out.done)

    bar = None
    if progress is None:
        progress = sys.stderr.isatty()
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit=" clips", file=sys.stderr, dynamic_ncols=True, smoothing=0.1,
                   desc="bitnet batch")

    def emit(rows):
        nonlocal written, errors
        fresh = []
        for r in rows:
            if r["id"] in written_ids:
                continue  # a retried task delivered this input again: one row per input
            written_ids.add(r["id"])
            fresh.append(r)
        if not fresh:
            return
        out.write(fresh)
        written += len(fresh)
        errors += sum(r["error"] is not None for r in fresh)
        if bar is not None:
            bar.update(len(fresh))
        if on_rows is not None:
            on_rows(fresh)

    cfg = {"model_path": str(model_path), "top_k": top_k, "hop": hop, "digest": digest}
    complete = False
    t0 = time.perf_counter()
    try:
        if ray is not None and ray is not False:
            from ._batch_ray import run_ray

            backend = "ray"
            n = run_ray(todo, emit, cfg, address=ray, workers=workers, cpus_per_worker=cpus_per_worker,
                        batch_size=chunk_size or 64)
        else:
            n = _default_workers() if workers is None else workers
            n = min(n, max(1, len(todo)))
            backend = "loop" if n == 0 or workers == 0 else "processes"
            if backend == "loop":
                n = 0
            _run_local(todo, emit, cfg, n, chunk_size or 32)
        missing = [(rid, p) for rid, p in todo if rid not in written_ids]
        if missing:
            raise RuntimeError(
                f"{len(missing)} inputs came back without a result (first: {missing[0][1]}); "
                "the output is resumable: run again to finish"
            )
        complete = True
    finally:
        seconds = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        out.close(complete)
    return BatchSummary(output=str(output), inputs=len(items), skipped=skipped, written=written,
                        errors=errors, seconds=seconds, clips_per_s=written / seconds if seconds > 0 else 0.0,
                        backend=backend, workers=n)


class _CallableModule(types.ModuleType):
    """``bitnet.batch`` is both this module and the function: importing the module
    (``from bitnet.batch import …``) makes the package attribute ``bitnet.batch`` the
    module, so the module forwards calls to :func:`batch` and ``bitnet.batch(...)``
    works whatever was imported first."""

    def __call__(self, *args, **kwargs):
        return batch(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
