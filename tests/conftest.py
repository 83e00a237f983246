"""Shared fixtures: seeded randomness, the FSDD location, and the slow tier."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
FSDD = Path(os.environ.get("BITNET_FSDD", REPO.parent / "shared" / "data" / "fsdd" / "recordings"))


@pytest.fixture
def rng(request):
    """A NumPy generator seeded from the test's name: reproducible, different per test."""
    seed = int.from_bytes(request.node.nodeid.encode()[-8:].rjust(8, b"\0"), "little") % (2**32)
    return np.random.default_rng(seed)


@pytest.fixture(scope="session")
def fsdd_dir():
    """The Free Spoken Digit Dataset recordings; the test is skipped where they are absent."""
    if not FSDD.is_dir():
        pytest.skip(f"FSDD not found at {FSDD} (set BITNET_FSDD)")
    return FSDD
