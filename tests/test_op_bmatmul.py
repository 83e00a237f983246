"""The ``bmatmul`` op (binary Q·Kᵀ per head): kernel == NumPy reference bit for bit on
awkward shapes (heads sharing a word, heads across words, channels not a multiple of
64, batch 1 and many), == a float matmul of the ±1 values, validation, a graph."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from bitnet.compile import registry
from bitnet.errors import ParameterError
from bitnet.graph import Graph
from bitnet.kernels.bmatmul import bmatmul_reference, head_masks
from bitnet.packing import pack_signs
from bitnet.testing.workloads import ast, random_input
from bitnet.testing import values_at_one_and_two_threads


def _signs(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0).astype(np.float32)


@pytest.mark.parametrize("c, heads", [(1, 1), (32, 2), (63, 3), (64, 4), (65, 5), (96, 3), (130, 2), (192, 6)])
@pytest.mark.parametrize("batch, t, s", [(1, 1, 1), (1, 17, 17), (3, 50, 9)])
def test_kernel_equals_reference(rng, batch, t, s, c, heads):
    kern = registry.jit_kernel("bmatmul")
    av, bv = _signs(rng, (batch, 1, t, c)), _signs(rng, (batch, 1, s, c))
    a, b = pack_signs(av), pack_signs(bv)
    scale = rng.uniform(0.05, 1, heads).astype(np.float32)
    masks, lo, hi = head_masks(c, heads)
    out = np.empty((batch, heads, t, s), np.float32)
    kern(a.reshape(batch, t, -1), b.reshape(batch, s, -1), masks, lo, hi, c // heads, scale, out)
    ref = bmatmul_reference(a, b, c, heads, scale)
    np.testing.assert_array_equal(out, ref)
    d = c // heads                                     # == the float product of the ±1 values
    for h in range(heads):
        dot = av[:, 0, :, h * d:(h + 1) * d] @ bv[:, 0, :, h * d:(h + 1) * d].transpose(0, 2, 1)
        np.testing.assert_array_equal(ref[:, h], dot * scale[h])


def test_head_masks_cover_each_channel_once():
    masks, lo, hi = head_masks(130, 5)
    assert masks.shape == (5, 3)
    total = np.zeros(3, np.uint64)
    for h in range(5):
        assert not (total & masks[h]).any()
        total |= masks[h]
        assert masks[h, :lo[h]].sum() == 0 and masks[h, hi[h]:].sum() == 0
    assert [bin(int(w)).count("1") for w in total] == [64, 64, 2]


def _graph():
    return ast(seed=4, input_shape=(12, 27), dim=96, depth=1, heads=3, mlp=70, patch=(4, 3))


@pytest.mark.parametrize("batch", [1, 4])
def test_graph_run_equals_reference_any_threads(batch):
    layers, tensors, shape = _graph()
    g = Graph(layers, tensors, shape)
    assert g.value_info["b0.scores"].shape == (3, 27, 27)
    li = next(li for li in g.layer_info if li.name == "b0.scores")
    assert li.binary_macs == 27 * 27 * 96 and li.kind == "binary"
    x = random_input(shape, batch=batch, seed=batch)
    v1, v2 = values_at_one_and_two_threads(g, x)
    _, vr = g.run_reference(x, return_values=True)
    for k in ("b0.q", "b0.k", "b0.scores"):
        np.testing.assert_array_equal(v1[k], v2[k])
        np.testing.assert_array_equal(v1[k], vr[k])


@pytest.mark.parametrize("scale_sign", [1, -1, 0])
def test_fused_softmax_equals_the_two_kernels(scale_sign):
    """bmatmul → softmax runs as one kernel (exponentials from a table) with the same
    bits as bmatmul then softmax, for positive, negative and zero scales."""
    layers, tensors, shape = _graph()
    tensors = dict(tensors)
    tensors["b0.scores.scale"] = np.abs(tensors["b0.scores.scale"]) * np.float32(scale_sign)
    g = Graph(layers, tensors, shape)
    assert ("b0.scores", "b0.softmax") in g.fused
    for batch in (1, 3):
        x = random_input(shape, batch=batch, seed=10 + batch)
        y_unfused, vals = g.run(x, return_values=True)
        np.testing.assert_array_equal(g.run(x), y_unfused)
        probs = np.empty_like(vals["b0.softmax"])
        n = batch
        from bitnet.kernels.bmatmul import _bmatmul_softmax_kernel, _exp_table_kernel

        table = np.empty((3, 33, 33))
        _exp_table_kernel(32, tensors["b0.scores.scale"], table)
        masks, lo, hi = head_masks(96, 3)
        _bmatmul_softmax_kernel(vals["b0.q"].reshape(n, 27, -1), vals["b0.k"].reshape(n, 27, -1), masks, lo, hi,
                                32, tensors["b0.scores.scale"], table, probs)
        np.testing.assert_array_equal(probs, vals["b0.softmax"])


@pytest.mark.parametrize("mutate, match", [
    (lambda L, T: L[8]["attrs"].update(heads=5), "channels=96 is not a multiple of heads=5"),
    (lambda L, T: L[8]["attrs"].update(channels=63), "must be 63-channel tokens"),
    (lambda L, T: L[8].update(inputs=["b0.q"]), "needs 2 input"),
    (lambda L, T: L[8].update(inputs=["b0.q", "tokens"]), "input is real"),
    (lambda L, T: T.__setitem__("b0.scores.scale", np.ones(2, np.float32)), r"float32 \(3,\)"),
    (lambda L, T: T["b0.scores.scale"].__setitem__(0, np.nan), "NaN or infinite"),
])
def test_validation(mutate, match):
    layers, tensors, shape = _graph()
    layers, tensors = copy.deepcopy(layers), {k: v.copy() for k, v in tensors.items()}
    assert layers[8]["op"] == "bmatmul"
    mutate(layers, tensors)
    with pytest.raises(ParameterError, match=match):
        Graph(layers, tensors, shape)
