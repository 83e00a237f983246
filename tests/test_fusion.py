"""Fused layer chains (bitnet.kernels.fused, Graph._fuse): fused == unfused == reference.

The fused kernels promise bit-identical results (same float operations in the same
order), so floats are compared bit for bit against the unfused kernels, and against the
NumPy references (which do the same operations) as well.
"""

from __future__ import annotations

import numpy as np
import pytest

from bitnet.parallel import get_num_threads, set_num_threads
from bitnet.graph import Graph
from bitnet.kernels.bconv import BConv
from bitnet.kernels.fused import bconv_pool_sign
from bitnet.kernels.reference import bconv_pool_sign_reference
from bitnet.packing import pack_signs
from bitnet.testing.workloads import _Builder, kws_bnn_m, lc_bnn, random_input


def _same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    if a.dtype == np.float32:
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
    else:
        np.testing.assert_array_equal(a, b)


# (H, W, C_in, C_out, kernel, stride, padding, pool kernel, pool stride, flatten, shift)
KERNEL_CASES = [
    (40, 51, 16, 16, (3, 3), (1, 1), "same", (5, 5), None, False, False),    # LC-BNN conv1
    (8, 10, 16, 32, (3, 3), (1, 1), "same", (4, 10), None, True, False),     # LC-BNN conv2
    (13, 17, 5, 20, (3, 3), (1, 1), "same", (3, 4), (2, 3), False, True),    # odd, overlapping
    (9, 9, 70, 33, (3, 3), (1, 1), "same", (2, 2), (1, 1), True, True),      # 2 words in
    (7, 11, 16, 130, (3, 3), (1, 1), "same", (3, 3), None, False, True),     # 3 words out
    (11, 12, 3, 7, (3, 3), (2, 2), "same", (2, 3), None, True, False),       # strided conv
    (10, 9, 24, 16, (3, 2), (1, 1), "valid", (2, 2), (3, 1), False, True),   # valid, pool skips rows
    (6, 6, 1, 64, (1, 1), (1, 1), "same", (6, 6), None, False, False),       # 1x1, whole image
    (5, 7, 200, 5, (3, 3), (1, 2), "same", (1, 1), None, True, True),        # identity pool
]


@pytest.mark.parametrize("case", KERNEL_CASES)
@pytest.mark.parametrize("nb", [1, 3])
def test_bconv_pool_sign_kernel_matches_reference(case, nb):
    h, w, ci, co, k, s, pad, pk, ps, flat, has_shift = case
    rng = np.random.default_rng([KERNEL_CASES.index(case), nb])   # the same draw in every process
    x = pack_signs(rng.standard_normal((nb, h, w, ci)))
    wt = pack_signs(rng.standard_normal((co,) + k + (ci,)))
    sc = (rng.uniform(0.5, 1.5, co) / np.sqrt(k[0] * k[1] * ci)).astype(np.float32)
    sc[rng.random(co) < 0.2] *= -1
    sc[0] = 0.0                                   # a constant channel: exact zeros ...
    bi = rng.normal(0, 0.1, co).astype(np.float32)
    bi[0] = 0.0                                   # ... which sign maps to +1
    conv = BConv(wt, ci, s, pad, "affine", scale=sc, bias=bi)
    ho, wo = conv.out_hw(h, w)
    st = ps or pk
    pho, pwo = (ho - pk[0]) // st[0] + 1, (wo - pk[1]) // st[1] + 1
    ch = pho * pwo * co if flat else co
    shift = rng.normal(0, 0.05, ch).astype(np.float32) if has_shift else None
    got = bconv_pool_sign(x, conv, wt, pk, ps, flat, shift)
    want = bconv_pool_sign_reference(x, wt, ci, k, s, pad, sc, bi, pk, ps, flat, shift)
    _same_bits(got, want)
    # pad bits past the last channel stay clear
    if ch % 64:
        assert not (got[..., -1] >> np.uint64(ch % 64)).any()


def _check_graph(layers, tensors, shape, x, expect_fused=None):
    g = Graph(layers, tensors, shape)
    gu = Graph(layers, tensors, shape, fuse=False)
    if expect_fused is not None:
        assert g.fused == expect_fused
    y = g.run(x)
    yu, vals = gu.run(x, return_values=True)
    _same_bits(y, yu)
    yv, vals2 = g.run(x, return_values=True)          # return_values: the unfused plan
    _same_bits(yv, yu)
    yr, vref = g.run_reference(x, return_values=True)
    for k in vals:
        a, b = vals[k], vref[k]
        if a.dtype == np.float32:
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=k)
        else:
            np.testing.assert_array_equal(a, b, err_msg=k)
    return g


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("nb", [1, 3])
def test_lc_bnn_fused(seed, nb):
    layers, tensors, shape = lc_bnn(seed)
    x = random_input(shape, batch=nb, seed=seed + 10)
    x[0, :3, :4, 0] = -80.0                    # level 0 exactly
    _check_graph(layers, tensors, shape, x,
                 [("quant", "conv0"), ("conv1", "pool1", "sign1"), ("conv2", "pool2", "flat", "sign2")])


@pytest.mark.parametrize("seed", [0, 5])
def test_kws_bnn_m_fused(seed):
    layers, tensors, shape = kws_bnn_m(seed)
    x = random_input(shape, batch=2, seed=seed)
    _check_graph(layers, tensors, shape, x)


def _awkward(seed, c1=20, c2=70, pool1=((3, 2), (2, 2)), pool2=((2, 3), (1, 2)), shift=True,
             extra_reader=False, pool_is_output=False):
    """quantize → qconv → bconv c1 (affine) → avgpool → sign [shift] → bconv c2 (affine)
    → avgpool → flatten → sign → bdense → dense, input 13×19 (odd sizes)."""
    b = _Builder(seed)
    rng = b.rng
    b.quantize()
    b.conv("conv0", "qconv", 1, 9, "threshold")
    b.tensors["conv0.thresh_sign"][:] = np.where(np.arange(9) % 2, 1, -1)
    b.conv("conv1", "bconv", 9, c1, "affine")
    b.tensors["conv1.scale"][:2] = 0.0          # exact zeros after the affine map
    b.tensors["conv1.bias"][:2] = 0.0
    b.tensors["conv1.scale"][2::3] *= -1
    b._add("pool1", "avgpool", {"kernel": list(pool1[0]), "stride": list(pool1[1])})
    sh = {"shift": rng.normal(0, 0.05, c1).astype(np.float32)} if shift else None
    b._add("sign1", "sign", {"channels": c1}, sh)
    b.conv("conv2", "bconv", c1, c2, "affine")
    b._add("pool2", "avgpool", {"kernel": list(pool2[0]), "stride": list(pool2[1])})
    b._add("flat", "flatten")
    layers, tensors = b.layers, b.tensors
    g0 = Graph(layers, tensors, (13, 19, 1))
    n = g0.value_info["flat"].channels
    b._add("sign2", "sign", {"channels": n})
    b.bdense("fc1", n, 33, "threshold")
    if extra_reader:          # conv1's float map read twice: no fusion of that chain
        b._add("pool1b", "avgpool", {"kernel": [2, 2]}, inputs=["conv1"])
    b.dense("fc", 33, 10)
    b.layers[-1]["inputs"] = ["fc1"]
    out = "pool1" if pool_is_output else None
    return b.layers, b.tensors, (13, 19, 1), out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("nb", [1, 2])
def test_awkward_graph_fused(seed, nb):
    layers, tensors, shape, _ = _awkward(seed)
    x = random_input(shape, batch=nb, seed=seed)
    x[..., :2, 0] = -80.0
    _check_graph(layers, tensors, shape, x,
                 [("quant", "conv0"), ("conv1", "pool1", "sign1"), ("conv2", "pool2", "flat", "sign2")])


def test_awkward_graph_no_shift_other_pools():
    layers, tensors, shape, _ = _awkward(7, c1=64, c2=5, pool1=((4, 4), (3, 5)),
                                         pool2=((1, 1), (1, 1)), shift=False)
    x = random_input(shape, batch=2, seed=3)
    _check_graph(layers, tensors, shape, x,
                 [("quant", "conv0"), ("conv1", "pool1", "sign1"), ("conv2", "pool2", "flat", "sign2")])


def test_no_fusion_when_a_value_is_read_elsewhere():
    layers, tensors, shape, _ = _awkward(1, extra_reader=True)
    x = random_input(shape, batch=2, seed=4)
    _check_graph(layers, tensors, shape, x, [("quant", "conv0"), ("conv2", "pool2", "flat", "sign2")])


def test_no_fusion_when_an_intermediate_is_the_output():
    layers, tensors, shape, _ = _awkward(2)
    g = Graph(layers, tensors, shape, output="pool1")
    assert ("conv1", "pool1", "sign1") not in g.fused
    x = random_input(shape, batch=1, seed=5)
    _same_bits(g.run(x), Graph(layers, tensors, shape, output="pool1", fuse=False).run(x))


def test_fused_threads_identical():
    layers, tensors, shape = lc_bnn(3)
    g = Graph(layers, tensors, shape)
    x = random_input(shape, batch=3, seed=1)
    old = get_num_threads()
    try:
        set_num_threads(1)
        y1 = g.run(x)
        set_num_threads(2)
        y2 = g.run(x)
    finally:
        set_num_threads(old)
    _same_bits(y1, y2)


@pytest.mark.parametrize("shape", [(40, 51), (13, 19), (3, 3), (5, 64)])
@pytest.mark.parametrize("c_out", [16, 9, 64, 100])
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("nb", [1, 2])
def test_quantize_qconv_kernel_matches_reference(shape, c_out, padding, nb):
    from bitnet.kernels.fused import quantize_qconv
    from bitnet.kernels.qconv import QConv
    from bitnet.kernels.reference import quantize_qconv_reference

    h, w = shape
    rng = np.random.default_rng(h * 1000 + w + c_out)
    x = rng.uniform(-90.0, 10.0, (nb, h, w, 1)).astype(np.float32)   # clipped both ways
    x[0, 0, :2, 0] = [-80.0, np.nan]                                  # level 0, NaN -> 0
    bits, offset, scale = 8, -80.0, 255.0 / 80.0
    wt = pack_signs(rng.standard_normal((c_out, 3, 3, 1)))
    t = np.round(rng.normal(0, 0.5 * np.sqrt(9 * 128), c_out)).astype(np.int32)
    s = rng.choice(np.array([-1, 1], np.int32), c_out)
    t[0], s[0] = 0, 1                      # dot >= 0: exact zeros decide
    conv = QConv(wt, 1, bits, (1, 1), padding, "threshold", thresh=t, thresh_sign=s)
    got = quantize_qconv(x, bits, offset, scale, conv)
    want = quantize_qconv_reference(x, bits, offset, scale, wt, 1, (3, 3), (1, 1), padding,
                                    "threshold", thresh=t, thresh_sign=s)
    _same_bits(got, want)


def _residual(seed, c=65, pool=((2, 2), (2, 2)), extra_reader=False, sign_after=False):
    """quantize → qconv c (affine) → maxpool → sign → bconv c (affine) → add → maxpool
    [→ sign → bconv → add reading the pool] [→ add reading the first add too] →
    global_avgpool → dense, input 13×19."""
    b = _Builder(seed)
    b.quantize()
    b.conv("conv0", "qconv", 1, c, "affine")
    b._add("pool0", "maxpool", {"kernel": [2, 2], "stride": [2, 2]})
    b._add("sign0", "sign", {"channels": c}, {"shift": b.rng.normal(0, 0.1, c).astype(np.float32)})
    b.conv("conv1", "bconv", c, c, "affine")
    b._add("add0", "add", inputs=["pool0", "conv1"])
    (k, s) = pool
    b._add("pool1", "maxpool", {"kernel": list(k), "stride": list(s)})
    if sign_after:
        b._add("sign1", "sign", {"channels": c})
        b.conv("conv2", "bconv", c, c, "affine")
        b._add("add1", "add", inputs=["pool1", "conv2"])
        b._add("sign2", "sign", {"channels": c}, {"shift": b.rng.normal(0, 0.1, c).astype(np.float32)})
        b.conv("conv3", "bconv", c, c, "affine")
        b._add("add2", "add", inputs=["add1", "conv3"])
    if extra_reader:
        b._add("add1", "add", inputs=["pool1", "pool1"])
        b._add("add2", "add", inputs=["add0", "add0"])
        b._add("pool2", "maxpool", {"kernel": list(k), "stride": list(s)})
        b._add("cat", "concat", inputs=["add1", "pool2"])
        c = 2 * c
    b._add("gap", "global_avgpool", {"channels": c})
    b.dense("fc", c, 10)
    return b.layers, b.tensors, (13, 19, 1)


@pytest.mark.parametrize("c", [1, 63, 64, 65, 128])
@pytest.mark.parametrize("pool", [((2, 2), (2, 2)), ((2, 2), (1, 1)), ((3, 2), (1, 2))])
@pytest.mark.parametrize("nb", [1, 3])
@pytest.mark.parametrize("sign_after", [False, True])
def test_add_maxpool_fused(c, pool, nb, sign_after):
    layers, tensors, shape = _residual(c, c, pool, sign_after=sign_after)
    x = random_input(shape, batch=nb, seed=c)
    g = _check_graph(layers, tensors, shape, x)
    assert ("pool0", "sign0") in g.fused
    chain = ("add0", "pool1", "sign1") if sign_after else ("add0", "pool1")
    assert chain in g.fused
    if sign_after:
        assert ("add1", "sign2") in g.fused
    gu = Graph(layers, tensors, shape, fuse=False)
    _, vals = gu.run(x, return_values=True)
    _, vref = g.run_reference(x, return_values=True)
    for k in ("pool0", "sign0", "conv1", "add0", "pool1", "gap") + (("sign1", "add1", "sign2", "add2") if sign_after else ()):
        np.testing.assert_array_equal(vals[k], vref[k], err_msg=k)
    # the fused plan's pool1 is the unfused one bit for bit
    gp = Graph(layers, tensors, shape, output="gap")
    assert chain in gp.fused
    _same_bits(gp.run(x), gu.run(x, return_values=True)[1]["gap"])


def test_add_maxpool_not_fused_when_the_sum_is_read_elsewhere():
    layers, tensors, shape = _residual(4, 64, extra_reader=True)
    g = Graph(layers, tensors, shape)
    assert ("add0", "pool1") not in g.fused and ("add2", "pool2") in g.fused
    x = random_input(shape, batch=2, seed=1)
    _check_graph(layers, tensors, shape, x)
