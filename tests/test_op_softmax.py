"""The ``softmax`` op: kernel == NumPy reference (within float32 rounding) on awkward
shapes, PyTorch's eval-mode softmax == the reference, validation, a graph through it."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from bitnet.compile import registry
from bitnet.errors import ParameterError
from bitnet.graph import Graph
from bitnet.kernels.softmax import softmax_reference
from bitnet.testing.workloads import ast, random_input
from bitnet.testing import values_at_one_and_two_threads

TOL = dict(rtol=2e-7, atol=1e-9)


@pytest.mark.parametrize("n", [1, 2, 63, 64, 65, 101])
@pytest.mark.parametrize("rows", [1, 4, 33])
def test_kernel_equals_reference(rng, rows, n):
    kern = registry.jit_kernel("softmax")
    x = (rng.standard_normal((rows, n)) * rng.uniform(0.1, 40)).astype(np.float32)
    x[0] = 3.0                                   # a flat row: 1/n each
    if rows > 1:
        x[-1, 0] = 80.0                          # one dominant entry (others underflow toward 0)
    out = np.empty_like(x)
    kern(x, out)
    ref = softmax_reference(x)
    np.testing.assert_allclose(out, ref, **TOL)
    np.testing.assert_allclose(out.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(out[0], np.float32(1.0 / n))


def test_trainer_softmax_equals_reference(rng):
    torch = pytest.importorskip("torch")
    x = (rng.standard_normal((2, 3, 17, 29)) * 4).astype(np.float32)
    y = torch.softmax(torch.from_numpy(x).double(), -1).float().numpy()     # BinaryAttention, eval mode
    np.testing.assert_allclose(y, softmax_reference(x), **TOL)


def _graph():
    return ast(seed=2, input_shape=(16, 37), dim=65, depth=1, heads=5, mlp=64, patch=(4, 3))


@pytest.mark.parametrize("batch", [1, 6])
def test_graph_run_equals_reference_any_threads(batch):
    layers, tensors, shape = _graph()
    g = Graph(layers, tensors, shape)
    assert g.value_info["b0.softmax"].shape == (5, 48, 48)
    x = random_input(shape, batch=batch, seed=batch)
    v1, v2 = values_at_one_and_two_threads(g, x)
    _, vr = g.run_reference(x, return_values=True)
    np.testing.assert_array_equal(v1["b0.softmax"], v2["b0.softmax"])
    np.testing.assert_allclose(v1["b0.softmax"], vr["b0.softmax"], **TOL)


@pytest.mark.parametrize("mutate, match", [
    (lambda L: L[9]["attrs"].update(channels=3), "unknown attribute"),
    (lambda L: L[9].update(inputs=["b0.q"]), "input is bits"),
    (lambda L: L[9].update(tensors={"scale": "b0.scores.scale"}), "unknown tensor role"),
])
def test_validation(mutate, match):
    layers, tensors, shape = _graph()
    layers = copy.deepcopy(layers)
    assert layers[9]["op"] == "softmax"
    mutate(layers)
    with pytest.raises(ParameterError, match=match):
        Graph(layers, tensors, shape)
