"""bitnet running the bundled default model: the bitnet rows of workload ``default``.

Group ``models``: ``Model.logits`` on log-mel features ``(N, 40, 101)`` (the float
peers get the same features, see ``test_peers_bench.py``), batch 1 and 64, 1 and 2
threads; and ``default-clip``: ``Model.predict`` on real 1 s clips, frontend and
resampling included (bitnet only; no peer has a frontend here), batch 1 and 64 clips.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import pytest

from benchmarks import bitnet_api, peers

REPO = Path(__file__).resolve().parents[1]
FSDD = Path(os.environ.get("BITNET_FSDD", REPO.parent / "shared" / "data" / "fsdd" / "recordings"))

THREADS = [1, 2]
BATCHES = [1, 64]


@lru_cache(maxsize=None)
def _model():
    import bitnet

    return bitnet.load()


def _model_or_skip():
    for mod in ("bitnet.model", "bitnet.graph", "bitnet.features"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not available yet")
    try:
        return _model()
    except ImportError as exc:
        pytest.skip(f"bitnet.load() cannot run yet: {exc}")


def _set_threads(n):
    import bitnet

    bitnet.set_num_threads(n)


@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"t{t}")
@pytest.mark.parametrize("batch", BATCHES, ids=lambda b: f"b{b}")
def test_default_model_bitnet(bench, batch, threads):
    model = _model_or_skip()
    h, w, _ = model.header["input"]["shape"]
    x = peers.features_nchw((h, w), batch)[:, 0]
    _set_threads(threads)
    fn = bitnet_api.features_runner(model, x)
    bench(fn, group="models", runtime="bitnet", workload="default", batch=batch, threads=threads,
          model_bytes=os.path.getsize(peers.default_model_path()))


def _clips(n):
    wavs = sorted((REPO / "examples").glob("*.wav")) or (sorted(FSDD.glob("*.wav")) if FSDD.is_dir() else [])
    if not wavs:
        pytest.skip("no .wav clips in examples/ or FSDD")
    return [str(wavs[i % len(wavs)]) for i in range(n)]


@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"t{t}")
@pytest.mark.parametrize("batch", BATCHES, ids=lambda b: f"b{b}")
def test_default_model_clips(bench, batch, threads):
    """Read, resample, log-mel and classify real clips (a list of ``batch`` paths)."""
    model = _model_or_skip()
    clips = _clips(batch)
    arg = clips[0] if batch == 1 else clips
    _set_threads(threads)
    bench(model.predict, arg, group="models", runtime="bitnet", workload="default-clip",
          batch=batch, threads=threads)
