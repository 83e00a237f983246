"""Does a layer's time depend on where its weights sit? (the cross-process spread).

Each row runs one single-layer workload in fresh processes, with the kernels' weight,
bound and scale arrays either as bitnet allocates them (64-byte aligned, see
:data:`bitnet.kernels.layout.ALIGN`) or deliberately placed ``offset`` bytes past a
cache-line boundary, the way NumPy's 16-byte-aligned allocations land by chance. It
prints min/median/max of the per-process best times. Run it under each instruction
set path, e.g. ``NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES= BITNET_AOT=0
NUMBA_CACHE_DIR=/tmp/nc-avx2 python -m benchmarks.alignment L128``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

_CHILD = r'''
import json, sys, time
import numpy as np
off, name = int(sys.argv[1]), sys.argv[2]
from bitnet.kernels import bconv_layer
if off >= 0:
    def placed(a, align=64, _off=off):
        a = np.asarray(a)
        buf = np.empty(a.nbytes + 2 * align, np.uint8)
        o = (-buf.ctypes.data) % align + _off
        out = buf[o:o + a.nbytes].view(a.dtype).reshape(a.shape)
        out[...] = a
        return out
    bconv_layer.aligned = placed
from bitnet.graph import Graph
from bitnet.testing import workloads as W
layers, tensors, shp = {"L64": W.l64, "L128": W.l128, "L256": W.l256}[name](seed=0)
g = Graph(layers, tensors, shp, input_kind="bits")
x = W.random_input(shp, kind="bits", batch=1, seed=0)
g.run(x)
ts = []
end = time.perf_counter() + 1.0
while time.perf_counter() < end:
    t0 = time.perf_counter(); g.run(x); ts.append(time.perf_counter() - t0)
print(json.dumps(min(ts) * 1e6))
'''


def run(name: str = "L128", offsets=(-1, 16, 32, 48), processes: int = 6) -> dict:
    """``{offset: [best µs of each process]}``; processes alternate between offsets."""
    out = {o: [] for o in offsets}
    for _ in range(processes):
        for o in offsets:
            r = subprocess.run([sys.executable, "-c", _CHILD, str(o), name], capture_output=True, text=True,
                               check=True)
            out[o].append(json.loads(r.stdout.strip().splitlines()[-1]))
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    name = argv[0] if argv else "L128"
    t = time.time()
    res = run(name)
    print(f"{name}: best time per fresh process, µs ({time.time() - t:.0f} s)")
    print("| weights at | processes | min | median | max |")
    print("|---|---|---|---|---|")
    for o, v in res.items():
        v = sorted(v)
        label = "64-byte aligned (bitnet)" if o < 0 else f"cache line + {o} B"
        print(f"| {label} | {len(v)} | {v[0]:.0f} | {v[len(v) // 2]:.0f} | {v[-1]:.0f} |")


if __name__ == "__main__":
    main()
