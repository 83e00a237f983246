"""The ``attend`` op (P × V, heads merged): kernels == NumPy reference (bit for bit with
binarised probabilities, within float32 rounding with real ones) on awkward shapes;
the trainer's whole attention module (eval mode) == the engine ops it emits;
validation; a graph through it."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from bitnet.compile import registry
from bitnet.errors import ParameterError
from bitnet.graph import Graph
from bitnet.kernels.attend import attend_reference
from bitnet.packing import pack_signs
from bitnet.testing import values_at_one_and_two_threads
from bitnet.testing.workloads import ast, random_input


def _probs(rng, batch, heads, t, s):
    x = rng.standard_normal((batch, heads, t, s)) * 3
    e = np.exp(x - x.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("c, heads", [(1, 1), (32, 2), (65, 5), (96, 3), (130, 2)])
@pytest.mark.parametrize("batch, t, s", [(1, 1, 1), (1, 17, 63), (3, 20, 64), (2, 5, 130)])
def test_kernels_equal_reference(rng, batch, t, s, c, heads):
    p = _probs(rng, batch, heads, t, s)
    vv = np.where(rng.random((batch, 1, s, c)) < 0.5, -1.0, 1.0).astype(np.float32)
    v = pack_signs(vv)
    d = c // heads
    out = np.empty((batch, 1, t, c), np.float32)
    registry.jit_kernel("attend_real")(p, v.reshape(batch, s, -1), d, out.reshape(batch, t, c))
    ref = attend_reference(p, v, c, heads, "real")
    np.testing.assert_allclose(out, ref, rtol=2e-7, atol=1e-7)
    tau = rng.uniform(0.2, 1.5, heads).astype(np.float32) / s
    p[0, 0, 0, 0] = tau[0]                              # p == tau counts as 1
    registry.jit_kernel("attend_binary")(p, v.reshape(batch, s, -1), c, d, tau, out.reshape(batch, t, c))
    ref = attend_reference(p, v, c, heads, "binary", tau)
    np.testing.assert_array_equal(out, ref)
    beta = (p[:, 0] >= tau[0]).astype(np.float32)      # == the float product of 0/1 and ±1
    np.testing.assert_array_equal(ref[:, 0, :, :d], beta @ vv[:, 0, :, :d])


@pytest.mark.parametrize("probs", ["real", "binary"])
def test_trainer_attention_equals_engine(rng, probs):
    torch = pytest.importorskip("torch")
    from trainer.engine import Emitter
    from trainer.transformer import BinaryAttention

    t, c = 23, 96
    torch.manual_seed(0)
    m = BinaryAttention(c, 3, t, probs)
    with torch.no_grad():
        for lin in (m.q, m.k, m.v, m.o):
            lin.bias.normal_(0, 1)
        m.sign_o.shift.normal_(0, 0.1)
    m.eval()
    em = Emitter()
    em.kind["input"], em.channels["input"] = "bits", c
    out = m.to_engine(em, "input")
    g = Graph(em.layers, em.tensors, (1, t, c), output=out, input_kind="bits")
    xv = np.where(rng.random((4, t, c)) < 0.5, -1.0, 1.0).astype(np.float32)
    with torch.no_grad():
        y = m(torch.from_numpy(xv)).numpy()
    e = g.run(pack_signs(xv[:, None]))
    np.testing.assert_allclose(e[:, 0], y, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(g.run_reference(pack_signs(xv[:, None]))[:, 0], y, rtol=1e-6, atol=1e-6)


def _graph(probs):
    return ast(seed=5, input_shape=(20, 33), dim=65, depth=1, heads=5, mlp=64, patch=(5, 2), probs=probs)


@pytest.mark.parametrize("probs", ["real", "binary"])
@pytest.mark.parametrize("batch", [1, 5])
def test_graph_run_equals_reference_any_threads(batch, probs):
    layers, tensors, shape = _graph(probs)
    g = Graph(layers, tensors, shape)
    x = random_input(shape, batch=batch, seed=batch)
    y1, v1, y2, v2 = values_at_one_and_two_threads(g, x, outputs=True)
    _, vr = g.run_reference(x, return_values=True)
    np.testing.assert_array_equal(v1["b0.attend"], v2["b0.attend"])
    np.testing.assert_array_equal(y1, y2)
    if probs == "binary":
        np.testing.assert_array_equal(v1["b0.attend"], vr["b0.attend"])
    else:
        np.testing.assert_allclose(v1["b0.attend"], vr["b0.attend"], rtol=2e-7, atol=1e-7)


@pytest.mark.parametrize("mutate, match", [
    (lambda L, T: L[10]["attrs"].update(probs="hard"), "'probs' must be 'real' or 'binary'"),
    (lambda L, T: L[10]["attrs"].update(heads=13), "probabilities must be"),
    (lambda L, T: L[10]["attrs"].update(heads=2), "not a multiple of heads"),
    (lambda L, T: L[10].update(inputs=["b0.v", "b0.softmax"]), "input is bits"),
    (lambda L, T: L[10].update(tensors={"tau": "b0.scores.scale"}), "unknown tensor role"),
])
def test_validation(mutate, match):
    layers, tensors, shape = _graph("real")
    layers, tensors = copy.deepcopy(layers), {k: v.copy() for k, v in tensors.items()}
    assert layers[10]["op"] == "attend"
    mutate(layers, tensors)
    with pytest.raises(ParameterError, match=match):
        Graph(layers, tensors, shape)


def test_binary_tau_validated():
    layers, tensors, shape = _graph("binary")
    tensors = dict(tensors)
    tensors["b0.attend.tau"] = np.array([0.1, np.nan, 0.1, 0.1, 0.1], np.float32)
    with pytest.raises(ParameterError, match="NaN or infinite"):
        Graph(layers, tensors, shape)
