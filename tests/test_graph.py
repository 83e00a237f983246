"""The executor: reference workloads end to end, run == run_reference, validation errors."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest

from bitnet import ParameterError
from bitnet.parallel import get_num_threads, set_num_threads
from bitnet.graph import Graph
from bitnet.testing.workloads import WORKLOADS, kws_bnn_m, lc_bnn, random_input
from bitnet.testing import values_at_one_and_two_threads


def assert_values_equal(fast, ref):
    assert fast.keys() == ref.keys()
    for k in fast:
        a, b = fast[k], ref[k]
        assert a.dtype == b.dtype and a.shape == b.shape, k
        if a.dtype == np.float32:
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=k)
        else:
            np.testing.assert_array_equal(a, b, err_msg=k)


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_workloads_run_equals_reference(name):
    build, kind = WORKLOADS[name]
    layers, tensors, shape = build(seed=1)
    g = Graph(layers, tensors, shape, input_kind=kind)
    x = random_input(shape, kind, batch=2, seed=2)
    if kind == "real":
        x[0, 0, 0, 0] = 0.0
    y, vals = g.run(x, return_values=True)
    yr, vref = g.run_reference(x, return_values=True)
    assert_values_equal(vals, vref)
    assert y.dtype == g.value_info[g.output].dtype
    for k, v in vals.items():
        assert v.shape[1:] == g.value_info[k].shape, k
        if g.value_info[k].kind == "bits" and g.value_info[k].channels % 64:
            assert not (v[..., -1] >> np.uint64(g.value_info[k].channels % 64)).any(), k


def test_kws_shapes_and_info():
    g = Graph(*kws_bnn_m())
    assert g.value_info["conv1"].shape == (40, 101, 1)
    assert g.value_info["conv3"].shape == (20, 50, 2)
    assert g.value_info["conv5"].kind == "real"
    assert g.value_info["fc"].shape == (10,)
    assert 580e6 < g.macs < 600e6
    assert [li.name for li in g.layer_info][:2] == ["quant", "conv0"]
    assert "conv5" in g.summary()
    x = random_input((40, 101, 1))
    np.testing.assert_array_equal(g.run(x), g.run(x[..., 0]))   # (N, H, W) accepted


def test_two_threads_run_the_parallel_path(monkeypatch):
    """Asked for 2 threads, a graph with large convolutions runs them on the thread pool
    (its job counter moves), with the same result as one thread."""
    from bitnet import _threads, parallel

    monkeypatch.setattr(parallel, "_max_threads", lambda: 2)   # even on a one-CPU machine
    g = Graph(*kws_bnn_m(seed=3))
    x = random_input((40, 101, 1), batch=1, seed=4)
    old = get_num_threads()
    try:
        set_num_threads(1)
        pool = _threads.pool(2)
        jobs = pool.jobs
        y1 = g.run(x)
        assert pool.jobs == jobs            # one thread: the pool stays idle
        set_num_threads(2)
        y2 = g.run(x)
        assert pool.jobs > jobs, "2 threads asked for, but no row part ran on the pool"
    finally:
        set_num_threads(old)
    np.testing.assert_array_equal(y1, y2)


def test_counts_are_the_ops_own():
    """Graph.layer_info and bitnet summary read one definition: a qconv MAC on k-bit
    levels is one MAC and k binary MACs in both."""
    from bitnet.summary import summarize

    layers, tensors, shape = kws_bnn_m()
    g = Graph(layers, tensors, shape)
    rows = summarize(layers, tensors, shape)
    for li, r in zip(g.layer_info, rows):
        assert (li.params, li.macs, li.binary_macs, li.weight_bytes) == \
            (r["params"], r["macs"], r["binary_macs"], r["bytes"]), li.name
        assert r["output_shape"] == li.out_info.logical_shape
    q = next(li for li in g.layer_info if li.op == "qconv")
    assert q.binary_macs == q.macs * q.attrs["bits"] > 0
    b = next(li for li in g.layer_info if li.op == "bconv")
    assert b.binary_macs == b.macs > 0
    assert Graph(layers, tensors, shape, bind=False).binary_macs == g.binary_macs


def test_lc_bnn_batch_consistency():
    g = Graph(*lc_bnn())
    x = random_input((40, 51, 1), batch=3, seed=5)
    y = g.run(x)
    assert y.shape == (3, 10) and y.dtype == np.float32
    for i in range(3):
        np.testing.assert_array_equal(g.run(x[i:i + 1]), y[i:i + 1])


def test_threads_bit_identical():
    g = Graph(*kws_bnn_m(seed=3))
    x = random_input((40, 101, 1), batch=2, seed=4)
    v1, v2 = values_at_one_and_two_threads(g, x)
    for k in v1:
        np.testing.assert_array_equal(v1[k], v2[k], err_msg=k)


def test_python_threads_share_a_graph():
    g = Graph(*lc_bnn(seed=4))
    xs = [random_input((40, 51, 1), seed=s) for s in range(4)]
    expect = [g.run(x) for x in xs]
    got = [None] * 4

    def work(i):
        for _ in range(20):
            got[i] = g.run(xs[i])

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for a, b in zip(got, expect):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- validation


def broken(mutate, build=kws_bnn_m):
    layers, tensors, shape = build()
    layers = copy.deepcopy(layers)
    tensors = dict(tensors)
    mutate(layers, tensors)
    return layers, tensors, shape


def by_name(layers, name):
    return next(l for l in layers if l["name"] == name)


@pytest.mark.parametrize("mutate,match", [
    (lambda L, T: T.pop("conv2.weight"), r"'conv2'.*conv2\.weight.*missing"),
    (lambda L, T: T.__setitem__("conv2.weight", T["conv2.weight"][:, :, :, :0]), r"'conv2'.*must be uint64"),
    (lambda L, T: T.__setitem__("conv3.thresh", T["conv3.thresh"].astype(np.int64)), r"'conv3'.*thresh.*int32"),
    (lambda L, T: T.__setitem__("fc.weight", T["fc.weight"].astype(np.float64)), r"'fc'.*float32"),
    (lambda L, T: by_name(L, "conv1").__setitem__("op", "bconv3d"), r"'conv1'.*unknown op 'bconv3d'"),
    (lambda L, T: by_name(L, "conv2")["attrs"].__setitem__("in_channels", 32), r"'conv2'.*in_channels=32"),
    (lambda L, T: by_name(L, "conv2")["attrs"].__setitem__("strides", [1, 1]), r"'conv2'.*unknown attribute"),
    (lambda L, T: by_name(L, "conv2")["attrs"].__setitem__("padding", "reflect"), r"'conv2'.*padding"),
    (lambda L, T: by_name(L, "conv2")["attrs"].pop("output"), r"'conv2'.*missing attribute"),
    (lambda L, T: by_name(L, "conv2").__setitem__("inputs", ["nowhere"]), r"'conv2'.*'nowhere' is not produced"),
    (lambda L, T: by_name(L, "conv1").__setitem__("inputs", ["quant"]), r"'conv1'.*input is levels"),
    (lambda L, T: by_name(L, "gap").__setitem__("inputs", ["conv3"]), r"'gap'.*channels=256 but the input has 128"),
    (lambda L, T: by_name(L, "fc").__setitem__("inputs", ["conv5"]), r"'fc'.*must be 2-d"),
    (lambda L, T: by_name(L, "conv0")["attrs"].__setitem__("bits", 4), r"'conv0'.*bits=4"),
    (lambda L, T: by_name(L, "conv3").__setitem__("output", "conv2"), r"'conv3'.*already used"),
    (lambda L, T: T.__setitem__("conv1.thresh_sign", np.zeros(64, np.int32)), r"'conv1'.*thresh_sign"),
    (lambda L, T: by_name(L, "pool1")["attrs"].__setitem__("kernel", [0, 2]), r"'pool1'.*kernel"),
    (lambda L, T: by_name(L, "conv1")["tensors"].__setitem__("scale", "conv5.scale"), r"'conv1'.*unknown tensor role"),
    (lambda L, T: by_name(L, "quant")["attrs"].__setitem__("offset", 1e300), r"'quant'.*finite float32"),
    (lambda L, T: by_name(L, "quant")["attrs"].__setitem__("scale", 0.0), r"'quant'.*positive"),
])
def test_validation_errors(mutate, match):
    with pytest.raises(ParameterError, match=match):
        Graph(*broken(mutate))


def test_validation_window_too_big():
    def mutate(L, T):
        for l in L:
            if l["op"] == "bconv":
                l["attrs"]["padding"] = "valid"
        by_name(L, "pool2")["attrs"]["kernel"] = [16, 16]
    with pytest.raises(ParameterError, match=r"'pool2'.*does not fit"):
        Graph(*broken(mutate))


def test_bad_input():
    g = Graph(*lc_bnn())
    with pytest.raises(ParameterError, match="shape"):
        g.run(np.zeros((1, 40, 50), np.float32))
    with pytest.raises(ParameterError, match="unknown op"):
        Graph([{"name": "x", "op": "conv"}], {})
    with pytest.raises(ParameterError, match="output value"):
        Graph(*lc_bnn(), output="nope")


def _residual_graph(rng):
    """A Bi-Real-style graph exercising add, concat, real max-pool, bit pooling, dense on
    bits and on reals: every op of docs/graph.md."""
    from bitnet.packing import pack_signs

    def bw(*shape):
        return pack_signs(rng.standard_normal(shape))

    def f32(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    T = {
        "c0.weight": bw(8, 3, 3, 1), "c0.scale": f32(8), "c0.bias": f32(8),
        "s1.shift": f32(8),
        "c1.weight": bw(8, 3, 3, 8), "c1.scale": f32(8), "c1.bias": f32(8),
        "c2.weight": bw(70, 3, 3, 16), "c2.thresh": rng.integers(-20, 20, 70).astype(np.int32),
        "c2.thresh_sign": rng.choice(np.array([-1, 1], np.int32), 70),
        "fc.weight": f32(5, 16), "fc.bias": f32(5),
        "fcb.weight": f32(5, 70), "fcb.bias": f32(5),
        "bd.weight": bw(7, 70), "bd.scale": f32(7), "bd.bias": f32(7),
    }
    L = [
        {"name": "q", "op": "quantize", "inputs": ["input"], "attrs": {"bits": 4, "offset": -2.0, "scale": 3.5}},
        {"name": "c0", "op": "qconv", "inputs": ["q"], "attrs": {"in_channels": 1, "out_channels": 8, "kernel": [3, 3],
         "stride": [1, 1], "padding": "same", "bits": 4, "output": "affine"},
         "tensors": {"weight": "c0.weight", "scale": "c0.scale", "bias": "c0.bias"}},
        {"name": "s1", "op": "sign", "inputs": ["c0"], "attrs": {"channels": 8}, "tensors": {"shift": "s1.shift"}},
        {"name": "c1", "op": "bconv", "inputs": ["s1"], "attrs": {"in_channels": 8, "out_channels": 8, "kernel": [3, 3],
         "stride": [1, 1], "padding": "same", "output": "affine"},
         "tensors": {"weight": "c1.weight", "scale": "c1.scale", "bias": "c1.bias"}},
        {"name": "res", "op": "add", "inputs": ["c0", "c1"]},
        {"name": "cat", "op": "concat", "inputs": ["res", "c0"]},
        {"name": "mp", "op": "maxpool", "inputs": ["cat"], "attrs": {"kernel": [2, 2]}},
        {"name": "s2", "op": "sign", "inputs": ["mp"], "attrs": {"channels": 16}},
        {"name": "c2", "op": "bconv", "inputs": ["s2"], "attrs": {"in_channels": 16, "out_channels": 70, "kernel": [3, 3],
         "stride": [2, 2], "padding": "same", "output": "threshold"},
         "tensors": {"weight": "c2.weight", "thresh": "c2.thresh", "thresh_sign": "c2.thresh_sign"}},
        {"name": "mpb", "op": "maxpool", "inputs": ["c2"], "attrs": {"kernel": [2, 2], "stride": [1, 1]}},
        {"name": "gapb", "op": "global_avgpool", "inputs": ["mpb"], "attrs": {"channels": 70}},
        {"name": "fcb", "op": "dense", "inputs": ["gapb"], "attrs": {"in_features": 70, "out_features": 5},
         "tensors": {"weight": "fcb.weight", "bias": "fcb.bias"}},
        {"name": "gap", "op": "global_avgpool", "inputs": ["mp"], "attrs": {"channels": 16}},
        {"name": "fc", "op": "dense", "inputs": ["gap"], "attrs": {"in_features": 16, "out_features": 5},
         "tensors": {"weight": "fc.weight", "bias": "fc.bias"}},
        {"name": "gb", "op": "global_avgpool", "inputs": ["c2"], "attrs": {"channels": 70}},
        {"name": "sgb", "op": "sign", "inputs": ["gb"], "attrs": {"channels": 70}},
        {"name": "bd", "op": "bdense", "inputs": ["sgb"], "attrs": {"in_features": 70, "out_features": 7, "output": "affine"},
         "tensors": {"weight": "bd.weight", "scale": "bd.scale", "bias": "bd.bias"}},
    ]
    return L, T


def test_every_op_run_equals_reference(rng):
    layers, tensors = _residual_graph(rng)
    g = Graph(layers, tensors, (9, 11, 1), output="fc")
    x = (rng.standard_normal((3, 9, 11)) * 2).astype(np.float32)
    x[0, 0, :3] = 0.0
    y, vals = g.run(x, return_values=True)
    yr, vref = g.run_reference(x, return_values=True)
    assert_values_equal(vals, vref)
    assert y.shape == (3, 5)
    assert g.value_info["cat"].shape == (9, 11, 16) and g.value_info["c2"].shape == (2, 3, 2)
    assert g.value_info["gapb"].kind == "real" and g.value_info["bd"].shape == (7,)
    with pytest.raises(ParameterError, match="'res'.*different shapes"):
        bad = copy.deepcopy(layers)
        bad[4]["inputs"] = ["c0", "input"]
        Graph(bad, tensors, (9, 11, 1))
