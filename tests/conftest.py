"""Shared fixtures: seeded randomness, the FSDD location, and the slow tier."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
FSDD = Path(os.environ.get("BITNET_FSDD", REPO.parent / "shared" / "data" / "fsdd" / "recordings"))


@pytest.fixture
def rng(request):
    """A NumPy generator seeded from the test's name: reproducible, different per test."""
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)


@pytest.fixture(scope="session")
def fsdd_dir():
    """The Free Spoken Digit Dataset recordings; the test is skipped where they are absent."""
    if not FSDD.is_dir():
        pytest.skip(f"FSDD not found at {FSDD} (set BITNET_FSDD)")
    return FSDD


@pytest.fixture(scope="session", autouse=True)
def _compiled_kernels():
    """Build this machine's ahead-of-time kernels (bitnet.compile.aot) once, before any test: a
    fresh checkout starts with an empty cache, and the first model would otherwise
    build them in the middle of a test (with a notice on stderr)."""
    from bitnet.compile import aot as _aot

    if os.environ.get("BITNET_AOT", "1") != "0" and _aot.load(build=False) is None:
        try:
            _aot.build()
        except RuntimeError:
            pass        # no compiler: the JIT kernels run (tests/test_aot.py skips)


@pytest.fixture(scope="session")
def official_accuracy(fsdd_dir):
    """``measure(path) -> (accuracy, header)``: the engine alone (the model file's graph,
    no torch) on the 300 FSDD official test takes, features computed once per frontend."""
    import json

    import bitnet
    from bitnet.features import FrontendConfig, clip_features
    from bitnet.graph import Graph
    from bitnet.modelfile import read_model

    files = sorted(f for f in fsdd_dir.glob("*.wav") if int(f.stem.split("_")[2]) <= 4)
    assert len(files) == 300
    labels = np.array([int(f.name[0]) for f in files])
    features = {}

    def measure(path):
        header, tensors = read_model(path)
        cfg = FrontendConfig.from_dict(header["frontend"])
        key = json.dumps(cfg.to_dict(), sort_keys=True)
        if key not in features:
            features[key] = np.stack([clip_features(bitnet.load_audio(str(f), sr=cfg.sample_rate)[0], cfg)
                                      for f in files])
        g = Graph(header["layers"], tensors, input_shape=header["input"]["shape"], output=header["output"])
        return float(np.mean(g.run(features[key]).argmax(1) == labels)), header

    return measure
