"""Graph medians of the reference workloads and the bundled model, one process, batch 1, one thread.

Prints one JSON line; run it from two checkouts alternately (old and new) to compare
revisions in one session: see benchmarks/results/before_after_avx512.md. To measure an
older revision with this script: ``PYTHONPATH=<old checkout> python benchmarks/graph_medians.py``."""
import sys, time, json, numpy as np
try:
    from bitnet.testing import workloads as W
except ImportError:
    from bitnet import workloads as W
from bitnet.graph import Graph
import bitnet
res = {}
for n, fn, kind in (("L64", W.l64, "bits"), ("L128", W.l128, "bits"), ("L256", W.l256, "bits"), ("KWS", W.kws_bnn_m, "real"), ("LC", W.lc_bnn, "real"),
                     ("AST", W.ast, "real")):
    layers, tensors, shp = fn(seed=0)
    g = Graph(layers, tensors, shp, input_kind=kind)
    x = W.random_input(shp, kind=kind, batch=1, seed=0)
    g.run(x); ts = []
    end = time.perf_counter() + 1.5
    while time.perf_counter() < end:
        t0 = time.perf_counter(); g.run(x); ts.append(time.perf_counter() - t0)
    res[n] = round(float(np.median(ts)) * 1e6, 1)
m = bitnet.load()
sys.path.insert(0, "/work/main")
from benchmarks import peers
h, w, _ = m.header["input"]["shape"]
x = peers.features_nchw((h, w), 1)[:, 0]
g = m.graph if hasattr(m, "graph") else m._graph
g.run(x); ts = []
end = time.perf_counter() + 1.5
while time.perf_counter() < end:
    t0 = time.perf_counter(); g.run(x); ts.append(time.perf_counter() - t0)
res["default"] = round(float(np.median(ts)) * 1e6, 1)
print(json.dumps(res))
