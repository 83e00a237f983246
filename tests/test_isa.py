"""Every ISA target gives the same numbers: kernel tests and the example clips, per target.

Each row of :data:`TARGETS` runs in its own subprocess (tests/_isa_child.py) with the
environment that forces it: the small tier of the kernel agreement tests, then the
default model on the ten ``examples/`` clips. The logits and probabilities of every
target must equal the host's bit for bit (raw float32 bytes), and the labels must be the
digits the clips' names start with.

Forced targets compile with numba's JIT for the named CPU (``NUMBA_CPU_NAME``, empty
``NUMBA_CPU_FEATURES``: that CPU's own features), with ``BITNET_AOT=0`` (the
ahead-of-time module is built for the host CPU) and a numba cache of their own. A target
runs only where this machine can execute its instructions: x86 rows are skipped on other
machines, and a row whose CPU flags this host lacks (an AVX2 row on a pre-AVX2 CPU) too.
Each forced target costs one compile of the kernels and the tests (~1 CPU-minute on a
2-core machine); the host only classifies (the main suite runs its kernel tests).

To add an ISA: one line in :data:`TARGETS`.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import pytest

from bitnet.testing import cpu_flags

REPO = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).with_name("_isa_child.py")

#: the small tier of the kernel agreement tests each target runs (no torch needed)
ISA_TESTS = ("tests/test_kernels.py", "tests/test_fusion.py")

X86 = ("x86_64", "amd64")


class Target(NamedTuple):
    name: str
    machines: tuple | None      # platform.machine() values it runs on; None: any
    flags: frozenset            # /proc/cpuinfo flags the host needs to run its code
    env: dict                   # the environment that forces it
    tests: bool = True          # run ISA_TESTS too (the host's run them in the main suite already)
    path: str | None = None     # the ISA path bitnet must report (bitnet.kernels.isa); None: any


def _forced(cpu: str) -> dict:
    return {"NUMBA_CPU_NAME": cpu, "NUMBA_CPU_FEATURES": "", "BITNET_AOT": "0"}


#: the targets, the host first (the reference the others are compared with)
TARGETS = [
    Target("host", None, frozenset(), {}, tests=False),
    Target("avx2", X86, frozenset({"avx2", "fma", "bmi1", "bmi2", "movbe", "f16c", "popcnt"}), _forced("haswell"),
           path="avx2"),
    Target("x86-64", X86, frozenset(), _forced("x86-64"), path="generic"),
]
BY_NAME = {t.name: t for t in TARGETS}


def _unavailable(t: Target) -> str | None:
    """Why target ``t`` cannot run on this machine, or None."""
    machine = platform.machine().lower()
    if t.machines is not None and machine not in t.machines:
        return f"{t.name} is a {'/'.join(t.machines)} target; this machine is {machine}"
    if t.flags:
        flags = cpu_flags()
        if flags is None:
            return f"cannot read the CPU flags to know whether {t.name} runs here"
        if not t.flags <= flags:
            return f"this CPU lacks {sorted(t.flags - flags)} for {t.name}"
    return None


@pytest.fixture(scope="session")
def isa_workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("isa")


_results: dict = {}


def _run(t: Target, workdir: Path) -> dict:
    """Run target ``t``'s child once per session; its parsed output."""
    if t.name in _results:
        return _results[t.name]
    env = dict(os.environ)
    env.update(t.env)
    env.setdefault("BITNET_QUIET", "1")
    if t.env:  # a forced target: a numba cache of its own (never the host's)
        env["NUMBA_CACHE_DIR"] = str(workdir / f"numba-{t.name}")
    out = workdir / f"{t.name}.json"
    p = subprocess.run([sys.executable, str(CHILD), str(out), *(ISA_TESTS if t.tests else ())], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0 and out.is_file(), f"{t.name}: child failed\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    res = json.loads(out.read_text())
    res["log"] = p.stdout[-3000:]
    _results[t.name] = res
    return res


@pytest.mark.parametrize("name", [t.name for t in TARGETS])
def test_isa_target_agrees(name, isa_workdir):
    t = BY_NAME[name]
    why = _unavailable(t)
    if why:
        pytest.skip(why)
    res = _run(t, isa_workdir)
    assert res["pytest"] == (0 if t.tests else None), f"{name} ({res['isa']}): kernel agreement tests failed\n{res['log']}"
    labels = {clip: r["label"] for clip, r in res["clips"].items()}
    assert len(labels) == 10
    assert labels == {clip: clip.split("_")[0] for clip in labels}, f"{name}: wrong labels {labels}"
    if t.env.get("NUMBA_CPU_NAME") and not res["isa"]["cpu_name"].startswith("unknown"):
        assert res["isa"]["cpu_name"] == t.env["NUMBA_CPU_NAME"], f"{name}: numba compiled for {res['isa']}"
    if t.path is not None:
        assert res["isa"]["path"] == t.path, f"{name} took the ISA path {res['isa']['path']}, not {t.path}"
    if name != TARGETS[0].name and not _unavailable(TARGETS[0]):
        host = _run(TARGETS[0], isa_workdir)
        for clip, r in res["clips"].items():
            for key in ("logits", "probabilities"):
                assert r[key] == host["clips"][clip][key], (
                    f"{name}: {clip} {key} differ from the host's ({host['isa']['cpu_name']}) bit for bit"
                )
