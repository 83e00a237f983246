"""ARM64 under emulation, end to end: scripts/arm64_emulated.sh (marker ``arm64``).

Deselected by default (it needs root, qemu-user-static and debootstrap from Debian's
packages, PyPI's aarch64 wheels, and 10-30 minutes; much less on a rerun, which reuses
the arm64 root in ~/.cache/bitnet-arm64-root). Run it with ``pytest -m arm64``.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "arm64_emulated.sh"


@pytest.mark.arm64
def test_arm64_emulated_same_labels_and_logits():
    if platform.system() != "Linux" or not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("needs root on Linux (debootstrap, binfmt_misc, chroot)")
    if platform.machine().lower() in ("aarch64", "arm64"):
        pytest.skip("this machine is ARM64 already: the suite itself runs natively here")
    env = dict(os.environ, BITNET_HOST_PYTHON=sys.executable)
    p = subprocess.run(["bash", str(SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    report = f"stdout:\n{p.stdout[-4000:]}\nstderr:\n{p.stderr[-4000:]}"
    assert p.returncode == 0, report
    assert "arm64 kernel tests: " in p.stdout and "FAILED" not in p.stdout, report
    assert "labels identical on 10/10 clips" in p.stdout, report
    assert "OK: same labels, logits within float32 rounding" in p.stdout, report
