"""The ``layernorm`` op: kernel == NumPy reference (within float32 rounding) on awkward
shapes, the trainer's module == the reference, validation, and a graph through it."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from bitnet.compile import registry
from bitnet.errors import ParameterError
from bitnet.graph import Graph
from bitnet.kernels.layernorm import layernorm_reference
from bitnet.testing import values_at_one_and_two_threads
from bitnet.testing.workloads import ast, random_input

# one float32 rounding of values of order one (float64 inside, rounded once)
TOL = dict(rtol=2e-7, atol=2e-7)


def _case(rng, rows, c):
    x = (rng.standard_normal((rows, c)) * rng.uniform(0.1, 30)).astype(np.float32)
    x[0] = 0.0                                  # a constant row: var = 0, y = bias
    if rows > 2:
        x[1, ::2] = 0.0                         # exact zeros
    w = rng.uniform(-2, 2, c).astype(np.float32)
    b = rng.normal(0, 1, c).astype(np.float32)
    return x, w, b


@pytest.mark.parametrize("c", [1, 2, 15, 16, 17, 63, 64, 65, 127, 130, 256, 1030])
@pytest.mark.parametrize("rows", [1, 3, 51])
def test_kernel_equals_reference(rng, rows, c):
    """Bit for bit: the kernel and the reference sum in one documented order."""
    kern = registry.jit_kernel("layernorm")
    x, w, b = _case(rng, rows, c)
    out = np.empty_like(x)
    kern(x, w, b, 1e-5, out)
    ref = layernorm_reference(x, w, b, 1e-5)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(out[0], b)    # constant row
    # and within one float32 rounding of a plainly written float64 layer norm
    xd = x.astype(np.float64)
    mu = xd.mean(-1, keepdims=True)
    plain = (xd - mu) / np.sqrt(((xd - mu) ** 2).mean(-1, keepdims=True) + 1e-5) * w + b
    np.testing.assert_allclose(out, plain, **TOL)


def test_trainer_module_equals_reference(rng):
    torch = pytest.importorskip("torch")
    from trainer.transformer import TokenLayerNorm

    m = TokenLayerNorm(70).eval()
    with torch.no_grad():
        m.weight.uniform_(-2, 2)
        m.bias.normal_()
    x = (rng.standard_normal((3, 17, 70)) * 5).astype(np.float32)
    with torch.no_grad():
        y = m(torch.from_numpy(x)).numpy()
    ref = layernorm_reference(x, m.weight.detach().numpy(), m.bias.detach().numpy(), m.eps)
    np.testing.assert_allclose(y, ref, **TOL)
    m.train()                                   # training mode: PyTorch's float32 layer norm
    with torch.no_grad():
        np.testing.assert_allclose(m(torch.from_numpy(x)).numpy(), ref, rtol=1e-5, atol=1e-5)


def _graph(**kw):
    return ast(seed=1, input_shape=(12, 23), dim=70, depth=1, heads=2, mlp=65, patch=(4, 4), **kw)


@pytest.mark.parametrize("batch", [1, 5])
def test_graph_run_equals_reference_any_threads(batch):
    layers, tensors, shape = _graph()
    g = Graph(layers, tensors, shape)
    x = random_input(shape, batch=batch, seed=batch)
    y1, v1, y2, v2 = values_at_one_and_two_threads(g, x, outputs=True)
    _, vr = g.run_reference(x, return_values=True)
    for k in ("b0.ln1", "b0.ln2", "ln"):
        np.testing.assert_array_equal(v1[k], v2[k])
        np.testing.assert_allclose(v1[k], vr[k], **TOL)
    np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("batch", [1, 4])
def test_fused_sign_equals_the_two_kernels(batch):
    """layernorm → sign runs as one kernel writing bits, with the same bits."""
    layers, tensors, shape = _graph()
    g = Graph(layers, tensors, shape)
    assert ("b0.ln1", "b0.ln1.sign") in g.fused and ("b0.ln2", "b0.ln2.sign") in g.fused
    x = random_input(shape, batch=batch, seed=20 + batch)
    y_unfused, vals = g.run(x, return_values=True)
    np.testing.assert_array_equal(g.run(x), y_unfused)
    from bitnet.kernels.layernorm import _layernorm_sign_kernel
    from bitnet.ops.sign import NO_SHIFT

    bits = np.empty_like(vals["b0.ln1.sign"])
    _layernorm_sign_kernel(vals["tokens"].reshape(-1, 70), tensors["b0.ln1.weight"], tensors["b0.ln1.bias"],
                           1e-5, NO_SHIFT, False, bits.reshape(-1, 2))
    np.testing.assert_array_equal(bits, vals["b0.ln1.sign"])
    assert not (bits[..., -1] >> np.uint64(6)).any()          # pad bits past channel 70 stay 0


@pytest.mark.parametrize("mutate, match", [
    (lambda L, T: L[3]["attrs"].update(channels=7), "channels=7 but the input has 70"),
    (lambda L, T: L[3]["attrs"].update(eps=0.0), "'eps' must be a positive"),
    (lambda L, T: L[3]["attrs"].pop("eps"), "missing attribute"),
    (lambda L, T: T["b0.ln1.weight"].__setitem__(3, np.nan), "NaN or infinite"),
    (lambda L, T: T.__setitem__("b0.ln1.bias", np.zeros(69, np.float32)), r"must be float32 \(70,\)"),
    (lambda L, T: L[3].update(inputs=["quant"]), "input is levels"),
])
def test_validation(mutate, match):
    layers, tensors, shape = _graph()
    layers, tensors = copy.deepcopy(layers), {k: v.copy() for k, v in tensors.items()}
    assert layers[3]["name"] == "b0.ln1"
    mutate(layers, tensors)
    with pytest.raises(ParameterError, match=match):
        Graph(layers, tensors, shape)
