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
    """Build this machine's ahead-of-time kernels (bitnet._aot) once, before any test: a
    fresh checkout starts with an empty cache, and the first model would otherwise
    build them in the middle of a test (with a notice on stderr)."""
    from bitnet import _aot

    if os.environ.get("BITNET_AOT", "1") != "0" and _aot.load(build=False) is None:
        try:
            _aot.build()
        except RuntimeError:
            pass        # no compiler: the JIT kernels run (tests/test_aot.py skips)
