"""Compilation: ``import bitnet`` is cheap, and the on-disk cache copes with a read-only
package directory (numba then falls back to a per-user cache directory)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_py(code, cwd, env_extra=None, timeout=300):
    env = dict(os.environ)
    env.pop("NUMBA_CACHE_DIR", None)
    env["PYTHONPATH"] = str(cwd)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_import_is_cheap():
    code = ("import sys, bitnet, bitnet.packing, bitnet.graph, bitnet.testing.workloads\n"
            "bad = [m for m in ('numba', 'scipy', 'torch', 'llvmlite') if m in sys.modules]\n"
            "print('BAD', bad) if bad else print('OK')")
    r = run_py(code, REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "OK", r.stdout


KERNEL_RUN = """
import numpy as np
from bitnet.graph import Graph
from bitnet.testing.workloads import lc_bnn, random_input
g = Graph(*lc_bnn())
x = random_input((40, 51, 1))
y = g.run(x)
assert np.allclose(y, g.run_reference(x), atol=1e-5)
import numba
print("OK", numba.config.CACHE_DIR)
"""


def _make_readonly(root):
    for dirpath, dirnames, filenames in os.walk(root):
        for f in filenames:
            p = Path(dirpath, f)
            p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        Path(dirpath).chmod(Path(dirpath).stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _make_writable(root):
    for dirpath, dirnames, filenames in os.walk(root):
        Path(dirpath).chmod(Path(dirpath).stat().st_mode | stat.S_IWUSR)
        for f in filenames:
            p = Path(dirpath, f)
            p.chmod(p.stat().st_mode | stat.S_IWUSR)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0 and not os.environ.get("BITNET_TEST_AS_ROOT"),
                    reason="root ignores read-only permissions; run as a normal user")
def test_readonly_package_uses_user_cache(tmp_path):
    _readonly_case(tmp_path)


def test_readonly_package_simulated(tmp_path):
    """Same check where permissions cannot be enforced (root): numba decides by trying to
    write into ``__pycache__``; a file in its place makes that impossible for anyone."""
    _readonly_case(tmp_path, simulate=True)


def _readonly_case(tmp_path, simulate=False):
    pkg = tmp_path / "site"
    shutil.copytree(REPO / "bitnet", pkg / "bitnet",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc", "models"))
    home = tmp_path / "home"
    home.mkdir()
    if simulate:
        for d in [pkg / "bitnet", *pkg.joinpath("bitnet").rglob("*")]:
            if d.is_dir() and d.name != "__pycache__":
                (d / "__pycache__").write_text("not a directory")
    else:
        _make_readonly(pkg)
    # the JIT path (numba's own cache); the ahead-of-time module never goes into the
    # package directory anyway (tests/test_aot.py)
    env = {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "BITNET_AOT": "0"}
    try:
        for attempt in range(2):            # cold cache, then warm cache
            r = run_py(KERNEL_RUN, pkg, env)
            assert r.returncode == 0, r.stderr[-3000:]
            assert r.stdout.startswith("OK"), r.stdout
        cached = list((home / ".cache").rglob("*.nbi"))
        assert cached, "no numba index files in the per-user cache directory"
    finally:
        if not simulate:
            _make_writable(pkg)
