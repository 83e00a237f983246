"""The ``tokens`` op: kernel == NumPy reference bit for bit, the trainer's module ==
the reference, validation, a graph through it."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from bitnet.compile import registry
from bitnet.errors import ParameterError
from bitnet.graph import Graph
from bitnet.kernels.tokens import tokens_reference
from bitnet.testing.workloads import ast, random_input


@pytest.mark.parametrize("hw, c", [((1, 1), 1), ((2, 25), 64), ((3, 7), 65), ((5, 20), 130)])
@pytest.mark.parametrize("batch", [1, 4])
def test_kernel_equals_reference(rng, batch, hw, c):
    kern = registry.jit_kernel("tokens")
    x = rng.standard_normal((batch,) + hw + (c,)).astype(np.float32)
    t = hw[0] * hw[1]
    pos = rng.standard_normal((t, c)).astype(np.float32)
    out = np.empty((batch, 1, t, c), np.float32)
    kern(x.reshape(batch, t, c), pos, out.reshape(batch, t, c))
    ref = tokens_reference(x, pos)
    assert ref.shape == (batch, 1, t, c)
    np.testing.assert_array_equal(out, ref)
    r, col = divmod(t - 2, hw[1]) if t > 1 else (0, 0)               # row-major patch order
    np.testing.assert_array_equal(ref[:, 0, max(t - 2, 0)], x[:, r, col] + pos[max(t - 2, 0)])


def test_trainer_module_equals_reference(rng):
    torch = pytest.importorskip("torch")
    from trainer.transformer import Tokens

    m = Tokens(3 * 7, 65).eval()
    x = rng.standard_normal((2, 65, 3, 7)).astype(np.float32)            # NCHW patches
    with torch.no_grad():
        y = m(torch.from_numpy(x)).numpy()
    ref = tokens_reference(x.transpose(0, 2, 3, 1), m.pos.detach().numpy())
    np.testing.assert_array_equal(y, ref[:, 0])


def _graph():
    return ast(seed=3, input_shape=(13, 30), dim=65, depth=1, heads=1, mlp=64, patch=(6, 4))


@pytest.mark.parametrize("batch", [1, 3])
def test_graph_run_equals_reference(batch):
    layers, tensors, shape = _graph()
    g = Graph(layers, tensors, shape)
    assert g.value_info["tokens"].shape == (1, 14, 65)
    x = random_input(shape, batch=batch, seed=batch)
    _, v = g.run(x, return_values=True)
    _, vr = g.run_reference(x, return_values=True)
    np.testing.assert_array_equal(v["tokens"], vr["tokens"])


@pytest.mark.parametrize("mutate, match", [
    (lambda L, T: L[2]["attrs"].update(tokens=15), "tokens=15 but the input has 2x7 = 14"),
    (lambda L, T: L[2]["attrs"].update(channels=64), "channels=64 but the input has 65"),
    (lambda L, T: T.__setitem__("tokens.pos", np.zeros((14, 64), np.float32)), r"float32 \(14, 65\)"),
    (lambda L, T: T["tokens.pos"].__setitem__((0, 0), np.inf), "NaN or infinite"),
    (lambda L, T: L[2].update(inputs=["quant"]), "input is levels"),
])
def test_validation(mutate, match):
    layers, tensors, shape = _graph()
    layers, tensors = copy.deepcopy(layers), {k: v.copy() for k, v in tensors.items()}
    assert layers[2]["op"] == "tokens"
    mutate(layers, tensors)
    with pytest.raises(ParameterError, match=match):
        Graph(layers, tensors, shape)
