"""bitnet's own rows: the single binary layers L64/L128/L256 (packed bits in → packed
bits out), the binary roofline, and the LC-BNN / KWS-BNN-M models on features.

Group ``kernels``: L64, L128, L256 and ``roofline`` (runtime ``roofline``: the
xor+popcount+add loop of :mod:`bitnet.testing.roofline`, L1-resident, one operand
streaming, measured in the same run so that "% of roofline" compares like with like).
Group ``models``: LC-BNN, KWS-BNN-M and AST (the binarized spectrogram transformer),
batch 1 and 64. Threads 1 and 2 everywhere.
The PyTorch / ONNX Runtime peers of the same shapes are in ``test_peers_bench.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

import bitnet
from bitnet.parallel import ensure_threads
from bitnet.graph import Graph
from bitnet.testing import roofline
from bitnet.testing.workloads import LAYER_SHAPES, WORKLOADS, ast, random_input

THREADS = [1, 2]
LAYERS = ["L64", "L128", "L256"]
MODELS = ["LC-BNN", "KWS-BNN-M", "AST"]
#: the design §4 workloads, and the binarized spectrogram transformer (trainer ``--model
#: ast`` with its default size: 2 blocks, 64 channels, 2 heads, 50 tokens of 20×4 patches)
BUILDERS = {**WORKLOADS, "AST": (ast, "real")}
BATCHES = [1, 64]

_graphs = {}
_param_bytes = {}


def _graph(name):
    if name not in _graphs:
        build, kind = BUILDERS[name]
        layers, tensors, shape = build(seed=0)
        _graphs[name] = (Graph(layers, tensors, shape, input_kind=kind), shape, kind)
        # what the model carries: packed weights, thresholds, first-layer and head floats
        _param_bytes[name] = sum(int(t.nbytes) for t in tensors.values())
    return _graphs[name]


@pytest.mark.parametrize("threads", THREADS)
def test_roofline(bench, threads):
    bitnet.set_num_threads(threads)
    ensure_threads()          # the roofline kernels are called directly, not through a Graph
    a, keys = roofline.make_operands(threads)
    reps = 64
    fn = roofline.roofline_kernel if threads == 1 else roofline.roofline_parallel
    bench(fn, a, keys, reps, group="kernels", runtime="roofline", workload="roofline",
          batch=1, threads=threads, macs=a.size * 64 * reps)


def test_roofline_block(bench):
    """The kernels' own block step in a minimal loop (benchmarks/roofline_block.py): the
    roofline of the path's best popcount method, one thread."""
    from benchmarks import roofline_block as rb

    bitnet.set_num_threads(1)
    wt, xs, acc, L = rb.make_operands()
    reps = 16
    bench(rb.block_roofline, wt, xs, acc, reps, group="kernels", runtime="roofline",
          workload="roofline-block", batch=1, threads=1, macs=rb.macs(wt, xs, L, reps))


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("name", LAYERS)
def test_layer(bench, name, threads):
    """One 3×3 same bconv, threshold output, packed bits in → packed bits out."""
    bitnet.set_num_threads(threads)
    g, shape, kind = _graph(name)
    x = random_input(shape, kind, batch=1, seed=1)
    h, w, c = LAYER_SHAPES[name]
    bench(g.run, x, group="kernels", runtime="bitnet", workload=name, batch=1,
          threads=threads, macs=g.macs, param_bytes=_param_bytes[name])


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("name", MODELS)
def test_model(bench, name, batch, threads):
    """A whole model on log-mel features (frontend not included), float32 logits out."""
    bitnet.set_num_threads(threads)
    g, shape, kind = _graph(name)
    x = random_input(shape, kind, batch=batch, seed=2)[..., 0]
    y = bench(g.run, x, group="models", runtime="bitnet", workload=name, batch=batch,
              threads=threads, macs=g.macs * batch, param_bytes=_param_bytes[name])
    assert y.shape == (batch, 10) and np.isfinite(y).all()
