"""One fresh process timing one bitnet workload: the unit of the cross-process spread.

Run by ``test_isa_bench.py`` as ``python -m benchmarks._spread_probe '<json spec>'``
from the repository root, N times one after another, so that the report can give the
spread of the per-process medians (buffer addresses, page placement and the code's own
alignment change from one process to the next; the spread within one process does not
see that). The spec: ``workload`` (``"L64"``, ``"L128"``, ``"L256"``, ``"LC-BNN"``,
``"KWS-BNN-M"``), ``min_time`` (seconds of timed calls, at least), ``min_calls``,
``max_calls``. The input and the graph are built exactly as ``test_kernels_bench.py``
builds them (seeded). Warm-up as in the ``bench`` fixture: up to 3 calls while they take
< 0.5 s. One thread (bitnet's default).

Prints one line of JSON: the median, minimum and number of timed calls, and the ISA
path the kernels took (:func:`benchmarks.isa_paths.describe_isa`).
"""

from __future__ import annotations

import json
import statistics
import sys
import time


def main(argv=None) -> int:
    spec = json.loads((argv or sys.argv[1:])[0])
    from bitnet.graph import Graph
    from bitnet.testing.workloads import WORKLOADS, random_input

    from benchmarks.isa_paths import describe_isa

    build, kind = WORKLOADS[spec["workload"]]
    layers, tensors, shape = build(seed=0)
    graph = Graph(layers, tensors, shape, input_kind=kind)
    if kind == "bits":  # a single layer: packed bits in, as test_layer
        x = random_input(shape, kind, batch=1, seed=1)
    else:  # a whole model on features, as test_model
        x = random_input(shape, kind, batch=1, seed=2)[..., 0]
    t0 = time.perf_counter()
    for i in range(3):
        if i and time.perf_counter() - t0 > 0.5:
            break
        graph.run(x)
    times = []
    min_time, min_calls = float(spec.get("min_time", 0.3)), int(spec.get("min_calls", 10))
    max_calls = int(spec.get("max_calls", 100_000))
    start = time.perf_counter()
    while len(times) < max_calls and (len(times) < min_calls or time.perf_counter() - start < min_time):
        t = time.perf_counter()
        graph.run(x)
        times.append(time.perf_counter() - t)
    print(json.dumps({"median": statistics.median(times), "min": min(times), "calls": len(times),
                      "isa": describe_isa()["path"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
