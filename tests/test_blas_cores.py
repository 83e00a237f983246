"""Stream == whole file, bit for bit, under each OpenBLAS core type this CPU can run.

OpenBLAS chooses its kernels at run time from the CPU (``OPENBLAS_CORETYPE`` forces a
choice), and kernels sum in different orders. The suite was red on an AMD Zen host
(tests/test_model.py::test_stream_equals_whole_file_windows: the float head's BLAS
product changed in the last bit with the number of windows), and green on the AVX-512
hosts: so every promise of exact equality is checked here under each kernel set, in a
subprocess per core type (tests/_blas_core_child.py). A core type is forced only where
this CPU has the instructions its kernels use (forcing AVX-512 kernels on an AVX2 CPU
would crash, not test anything).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from bitnet.testing import cpu_flags

CHILD = Path(__file__).with_name("_blas_core_child.py")

#: OPENBLAS_CORETYPE -> CPU flags (/proc/cpuinfo) its kernels need. ``None``: the
#: environment as it is (whatever OpenBLAS picks here, or a preset OPENBLAS_CORETYPE).
#: Zen runs OpenBLAS's Haswell kernels in the scipy-openblas builds NumPy ships, but is
#: kept as its own row: other OpenBLAS builds give it its own.
CORES = {
    None: set(),
    "Prescott": {"pni"},                 # Linux names SSE3 "pni"
    "Nehalem": {"sse4_2"},
    "Sandybridge": {"avx"},
    "Haswell": {"avx2", "fma"},
    "Zen": {"avx2", "fma"},
    "SkylakeX": {"avx512f", "avx512bw", "avx512dq", "avx512vl"},
}

CHECKS = ("frontend", "windows", "logits", "stream")


def _run(core: str | None) -> dict:
    env = dict(os.environ)
    if core is not None:
        env["OPENBLAS_CORETYPE"] = core
    env.setdefault("BITNET_QUIET", "1")
    p = subprocess.run([sys.executable, str(CHILD)], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"child failed under OPENBLAS_CORETYPE={core}:\n{p.stderr[-3000:]}"
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("core", list(CORES), ids=[c or "as-is" for c in CORES])
def test_stream_equals_whole_under_blas_core(core):
    if core is not None:
        if platform.machine().lower() not in ("x86_64", "amd64"):
            pytest.skip(f"OPENBLAS_CORETYPE={core} is an x86 core type; this is {platform.machine()}")
        flags = cpu_flags()
        if flags is None:
            pytest.skip("cannot read the CPU flags (/proc/cpuinfo)")
        if not CORES[core] <= flags:
            pytest.skip(f"this CPU lacks {sorted(CORES[core] - flags)} for OpenBLAS's {core} kernels")
    res = _run(core)
    if core is not None and "openblas" not in res["blas"]:
        pytest.skip(f"NumPy's BLAS is not OpenBLAS ({res['blas']}): OPENBLAS_CORETYPE does nothing")
    bad = {k: res[k] for k in CHECKS if not res[k]["equal"]}
    assert not bad, f"OPENBLAS_CORETYPE={core} (BLAS {res['blas']}): not bit-identical: {bad}"
