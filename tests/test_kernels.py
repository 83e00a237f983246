"""Every kernel against its NumPy reference, and the binary ones against a float
convolution of the unpacked ±1 tensors (three-way oracle), over the awkward shapes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bitnet import ParameterError
from bitnet.parallel import get_num_threads, set_num_threads
from bitnet.kernels import reference as ref
from bitnet.kernels.bconv import BConv, BDense, bconv, bdense
from bitnet.kernels.geometry import conv_geometry
from bitnet.kernels.head import dense_bits
from bitnet.kernels.pool import avgpool, global_avgpool, global_avgpool_bits, maxpool_bits, maxpool_real
from bitnet.kernels.qconv import QConv
from bitnet.packing import n_words, pack_signs, unpack_signs

CHANNELS = [1, 63, 64, 65, 127, 128, 129]
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def signs(rng, shape, zeros=0.15):
    """Random float32 with a share of exact zeros (sign(0) = +1)."""
    x = rng.standard_normal(shape).astype(np.float32)
    x[rng.random(shape) < zeros] = 0.0
    return x


def out_tensors(rng, c_out, n):
    sd = max(1, int(np.sqrt(n)))
    t = rng.integers(-sd, sd + 1, c_out).astype(np.int32)
    s = rng.choice(np.array([-1, 1], np.int32), c_out)
    # a few constant channels and extreme thresholds
    k = min(4, c_out)
    t[:k] = np.array([INT32_MIN, INT32_MAX, INT32_MIN, INT32_MAX], np.int32)[:k]
    scale = rng.standard_normal(c_out).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32)
    return dict(thresh=t, thresh_sign=s, scale=scale, bias=bias)


def assert_pad_bits_zero(words, c):
    if c % 64:
        assert not (words[..., -1] >> np.uint64(c % 64)).any(), "pad bits past the last channel are set"


@pytest.fixture
def threads():
    old = get_num_threads()
    yield set_num_threads
    set_num_threads(old)


def float_conv(xv, wv, stride, padding, pad_value):
    """Plain float64 NumPy cross-correlation of NHWC ±1 data (the third oracle)."""
    kh, kw = wv.shape[1:3]
    n, h, w, c = xv.shape
    ho, wo, pt, pl = conv_geometry(h, w, (kh, kw), stride, padding)
    sh, sw = stride
    hp, wp = (ho - 1) * sh + kh, (wo - 1) * sw + kw
    xp = np.full((n, max(hp, h + pt), max(wp, w + pl), c), float(pad_value))
    xp[:, pt:pt + h, pl:pl + w] = xv
    out = np.zeros((n, ho, wo, wv.shape[0]))
    for ky, kx in itertools.product(range(kh), range(kw)):
        win = xp[:, ky:ky + (ho - 1) * sh + 1:sh, kx:kx + (wo - 1) * sw + 1:sw, :]
        out += win @ wv[:, ky, kx, :].T.astype(np.float64)
    return out


# ---------------------------------------------------------------- binary conv


@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_bconv_sweep(rng, c, stride, padding, threads):
    k = int(rng.choice([1, 2, 3])) if c in (63, 129) else 3
    h = int(rng.choice([1, 2, 3, 5, 7]))
    w = int(rng.choice([1, 2, 3, 4, 9]))
    if padding == "valid":
        h, w = h + k - 1, w + k - 1
    nb = int(rng.choice([1, 3]))
    c_out = int(rng.choice([1, 16, 64, 65, c]))
    x = pack_signs(signs(rng, (nb, h, w, c)))
    wts = pack_signs(signs(rng, (c_out, k, k, c)))
    tens = out_tensors(rng, c_out, k * k * c)
    dot = ref.bconv_dot_reference(x, wts, c, (k, k), (stride, stride), padding)
    np.testing.assert_array_equal(
        dot, float_conv(unpack_signs(x, c), unpack_signs(wts, c), (stride, stride), padding, 1))
    for output in ("int", "threshold", "affine"):
        conv = BConv(wts, c, (stride, stride), padding, output, **tens)
        expect = ref.apply_output(dot, output, **tens)
        got1 = conv(x)
        threads(2)
        got2 = conv(x)
        threads(1)
        assert got1.dtype == expect.dtype and got1.shape == expect.shape
        np.testing.assert_array_equal(got1, expect)
        np.testing.assert_array_equal(got2, got1)
        if output == "threshold":
            assert_pad_bits_zero(got1, c_out)


def _block_widths_and_channels():
    """Per block width L of this machine's kernel path (``isa.lanes()``), output channel
    counts that land in exactly that block: one past the narrower block, the middle, L."""
    from bitnet.kernels import isa

    lanes, prev, out = isa.lanes(), 0, []
    for L in lanes:
        out += [(L, c) for c in sorted({prev + 1, (prev + 1 + L) // 2, L})]
        prev = L
    return out


@pytest.mark.parametrize("c_in", [3, 65])
def test_every_block_width_with_threshold_output(rng, c_in, threads):
    """Every block width of the active path, with threshold output (on AVX-512 the L=32
    block is output channels 17-32), equals the reference with 1 and 2 threads."""
    from bitnet.kernels import isa
    from bitnet.kernels.layout import block_width

    cases = _block_widths_and_channels()
    assert {L for L, _ in cases} == set(isa.lanes())
    for L, c_out in cases:
        assert block_width(c_out, isa.lanes()) == L
        x = pack_signs(signs(rng, (2, 6, 7, c_in)))
        wts = pack_signs(signs(rng, (c_out, 3, 3, c_in)))
        tens = out_tensors(rng, c_out, 9 * c_in)
        tens = {k: tens[k] for k in ("thresh", "thresh_sign")}
        expect = ref.bconv_reference(x, wts, c_in, (3, 3), (1, 1), "same", "threshold", **tens)
        conv = BConv(wts, c_in, (1, 1), "same", "threshold", **tens)
        got1 = conv(x)
        threads(2)
        got2 = conv(x)
        threads(1)
        np.testing.assert_array_equal(got1, expect, err_msg=f"L={L} c_out={c_out}")
        np.testing.assert_array_equal(got2, expect, err_msg=f"L={L} c_out={c_out}")
        assert_pad_bits_zero(got1, c_out)


#: (kernel, C_in, group size G, padded words Kp): a window in each group size of
#: ``layout.GROUPS``, one group and several (1x1 with 256 / 1024 channels: the
#: transformer's linear layers; 3x3 with 56 channels: 8 patch-packed words)
GROUP_CASES = [((1, 1), 64, 3, 3), ((3, 3), 20, 3, 3), ((1, 1), 256, 4, 4), ((1, 1), 1024, 4, 16),
               ((3, 3), 56, 4, 8), ((1, 1), 448, 4, 8), ((3, 3), 64, 9, 9), ((1, 1), 1152, 9, 18)]


@pytest.mark.parametrize("kernel,c_in,g,kp", GROUP_CASES)
def test_every_group_size(rng, kernel, c_in, g, kp, threads):
    """Every group size of the binary kernels (``layout.GROUPS``) on every block width of
    the active path, every output mode, stride 1 and 2, 1 and 2 threads == reference."""
    from bitnet.kernels.bconv_layer import _GW
    from bitnet.kernels.layout import GROUPS

    assert {c[2] for c in GROUP_CASES} == set(GROUPS)
    for (_, c_out), stride in zip(_block_widths_and_channels(), [1, 2] * 9):
        nb = int(rng.choice([1, 2]))
        x = pack_signs(signs(rng, (nb, 5, 7, c_in)))
        wts = pack_signs(signs(rng, (c_out, *kernel, c_in)))
        tens = out_tensors(rng, c_out, kernel[0] * kernel[1] * c_in)
        for output in ("int", "threshold", "affine"):
            conv = BConv(wts, c_in, (stride, stride), "same", output, **tens)
            assert (conv._hdr[_GW], conv.wt.shape[1]) == (g, kp)
            expect = ref.bconv_reference(x, wts, c_in, kernel, (stride, stride), "same", output, **tens)
            got1 = conv(x)
            threads(2)
            got2 = conv(x)
            threads(1)
            msg = f"G={g} c_out={c_out} stride={stride} {output}"
            np.testing.assert_array_equal(got1, expect, err_msg=msg)
            np.testing.assert_array_equal(got2, expect, err_msg=msg)
            if output == "threshold":
                assert_pad_bits_zero(got1, c_out)


def test_bconv_torch_oracle(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for c, stride, padding in [(3, 1, "same"), (65, 2, "same"), (130, 2, "valid"), (64, 1, "valid")]:
        xv = np.where(signs(rng, (2, 7, 6, c)) < 0, -1.0, 1.0)
        wv = np.where(signs(rng, (5, 3, 3, c)) < 0, -1.0, 1.0)
        got = bconv(pack_signs(xv), pack_signs(wv), c, (stride, stride), padding, "int")
        xt = torch.from_numpy(xv).permute(0, 3, 1, 2).double()
        if padding == "same":
            ho, wo, pt, pl = conv_geometry(7, 6, (3, 3), (stride, stride), "same")
            pb = (ho - 1) * stride + 3 - 7 - pt
            pr = (wo - 1) * stride + 3 - 6 - pl
            xt = F.pad(xt, (pl, max(pr, 0), pt, max(pb, 0)), value=1.0)
        yt = F.conv2d(xt, torch.from_numpy(wv).permute(0, 3, 1, 2).double(), stride=stride)
        np.testing.assert_array_equal(got, yt.permute(0, 2, 3, 1).numpy().astype(np.int64))


def test_bconv_exact_zero_input_is_plus_one():
    # an all-zero input is all +1; with all −1 weights every dot is −n
    x = pack_signs(np.zeros((1, 3, 3, 70), np.float32))
    w = pack_signs(-np.ones((2, 3, 3, 70), np.float32))
    assert (bconv(x, w, 70, padding="same", output="int") == -9 * 70).all()


@pytest.mark.parametrize("sign_", [1, -1])
@pytest.mark.parametrize("t", [INT32_MIN, INT32_MAX, 0, -9, 9])
def test_threshold_constants(rng, sign_, t):
    c = 9
    x = pack_signs(signs(rng, (1, 4, 4, c)))
    w = pack_signs(signs(rng, (70, 1, 1, c)))
    tens = dict(thresh=np.full(70, t, np.int32), thresh_sign=np.full(70, sign_, np.int32))
    got = bconv(x, w, c, padding="valid", output="threshold", **tens)
    dot = ref.bconv_dot_reference(x, w, c, (1, 1), (1, 1), "valid")
    np.testing.assert_array_equal(got, ref.apply_output(dot, "threshold", **tens))
    assert_pad_bits_zero(got, 70)


@pytest.mark.parametrize("c", CHANNELS)
def test_bdense(rng, c):
    c_out = int(rng.choice([1, 10, 64, 100, 129]))
    x = pack_signs(signs(rng, (int(rng.choice([1, 4])), c)))
    w = pack_signs(signs(rng, (c_out, c)))
    tens = out_tensors(rng, c_out, c)
    dot = unpack_signs(x, c).astype(np.float64) @ unpack_signs(w, c).T.astype(np.float64)
    for output in ("int", "threshold", "affine"):
        got = bdense(x, w, c, output, **tens)
        expect = ref.bdense_reference(x, w, c, output, **tens)
        np.testing.assert_array_equal(got, expect)
        if output == "int":
            np.testing.assert_array_equal(got, dot)
        if output == "threshold":
            assert_pad_bits_zero(got, c_out)


# ---------------------------------------------------------------- first layer


@pytest.mark.parametrize("c", [1, 3, 65])
@pytest.mark.parametrize("stride,padding", [(1, "same"), (2, "same"), (1, "valid"), (2, "valid")])
def test_qconv(rng, c, stride, padding, threads):
    bits = int(rng.choice([1, 4, 8]))
    h, w = int(rng.choice([3, 5, 8])), int(rng.choice([3, 4, 7]))
    nb = int(rng.choice([1, 2]))
    c_out = int(rng.choice([16, 64, 70]))
    lv = rng.integers(0, 1 << bits, size=(nb, h, w, c)).astype(np.uint8)
    lv[0, 0, 0, 0] = (1 << bits) - 1
    wts = pack_signs(signs(rng, (c_out, 3, 3, c)))
    tens = out_tensors(rng, c_out, 9 * c * (1 << bits))
    dot = ref.qconv_dot_reference(lv, wts, c, bits, (3, 3), (stride, stride), padding)
    # third oracle: integer levels × ±1, level-0 padding
    np.testing.assert_array_equal(
        dot, float_conv(lv.astype(np.float64), unpack_signs(wts, c), (stride, stride), padding, 0))
    for output in ("int", "threshold", "affine"):
        conv = QConv(wts, c, bits, (stride, stride), padding, output, **tens)
        got = conv(lv)
        threads(2)
        got2 = conv(lv)
        threads(1)
        np.testing.assert_array_equal(got, ref.apply_output(dot, output, **tens))
        np.testing.assert_array_equal(got2, got)
        if output == "threshold":
            assert_pad_bits_zero(got, c_out)


# ---------------------------------------------------------------- pools and head


@pytest.mark.parametrize("c", [1, 64, 65, 129])
@pytest.mark.parametrize("kernel,stride", [((2, 2), None), ((3, 3), (2, 2)), ((1, 3), (1, 1)), ((4, 10), None)])
def test_pools(rng, c, kernel, stride):
    h, w = kernel[0] + int(rng.integers(0, 4)), kernel[1] + int(rng.integers(0, 4))
    xr = signs(rng, (2, h, w, c))
    xb = pack_signs(xr)
    got = maxpool_bits(xb, kernel, stride)
    np.testing.assert_array_equal(got, ref.maxpool_bits_reference(xb, c, kernel, stride))
    assert_pad_bits_zero(got, c)
    np.testing.assert_array_equal(maxpool_real(xr, kernel, stride), ref.maxpool_real_reference(xr, kernel, stride))
    np.testing.assert_array_equal(avgpool(xr, kernel, stride), ref.avgpool_reference(xr, kernel, stride))
    np.testing.assert_array_equal(global_avgpool(xr), ref.global_avgpool_reference(xr))
    np.testing.assert_array_equal(global_avgpool_bits(xb, c), ref.global_avgpool_bits_reference(xb, c))
    np.testing.assert_allclose(global_avgpool_bits(xb, c), np.where(xr < 0, -1.0, 1.0).mean(axis=(1, 2)), atol=1e-6)


def test_dense_bits(rng):
    c = 100
    x = pack_signs(signs(rng, (3, c)))
    w = rng.standard_normal((10, c)).astype(np.float32)
    b = rng.standard_normal(10).astype(np.float32)
    np.testing.assert_allclose(dense_bits(x, c, w, b), ref.dense_reference(x, w, b, c), rtol=1e-5, atol=1e-5)


def test_softmax():
    from bitnet.results import softmax

    z = np.array([[1.0, 3.0, 3.0], [1000.0, 0.0, -1000.0]], np.float32)
    p = softmax(z)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    assert p.argmax(axis=1).tolist() == [1, 0] and p[0, 1] == p[0, 2]


# ---------------------------------------------------------------- errors


def test_wrapper_errors():
    w = np.zeros((4, 3, 3, 1), np.uint64)
    with pytest.raises(ParameterError, match="in_channels"):
        BConv(w, 65)
    with pytest.raises(ParameterError, match="thresh"):
        BConv(w, 64, output="threshold")
    with pytest.raises(ParameterError, match="padding"):
        BConv(w, 64, padding="reflect")
    conv = BConv(w, 64, padding="valid")
    with pytest.raises(ParameterError, match="does not fit"):
        conv(np.zeros((1, 2, 2, 1), np.uint64))
    with pytest.raises(ParameterError, match="uint64"):
        conv(np.zeros((1, 4, 4, 1), np.int64))
    with pytest.raises(ParameterError):
        BDense(np.zeros((3, 2), np.uint64), 64)


# ---------------------------------------------------------------- bigger tier


@pytest.mark.slow
@pytest.mark.parametrize("c", CHANNELS + [2, 16, 32, 48, 256, 300])
def test_bconv_big(rng, c, threads):
    for _ in range(8):
        stride = int(rng.choice([1, 2]))
        padding = str(rng.choice(["same", "valid"]))
        kh, kw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        h, w = int(rng.integers(kh, 20)), int(rng.integers(kw, 20))
        nb = int(rng.integers(1, 5))
        c_out = int(rng.choice([1, 63, 64, 65, 128, 200]))
        x = pack_signs(signs(rng, (nb, h, w, c)))
        wts = pack_signs(signs(rng, (c_out, kh, kw, c)))
        tens = out_tensors(rng, c_out, kh * kw * c)
        dot = ref.bconv_dot_reference(x, wts, c, (kh, kw), (stride, stride), padding)
        np.testing.assert_array_equal(
            dot, float_conv(unpack_signs(x, c), unpack_signs(wts, c), (stride, stride), padding, 1))
        for output in ("int", "threshold", "affine"):
            conv = BConv(wts, c, (stride, stride), padding, output, **tens)
            got = conv(x)
            threads(2)
            np.testing.assert_array_equal(conv(x), got)
            threads(1)
            np.testing.assert_array_equal(got, ref.apply_output(dot, output, **tens))


@pytest.mark.slow
def test_workload_layers_against_reference(rng, threads):
    for c, h, w in [(64, 40, 101), (128, 20, 50), (256, 10, 25)]:
        x = pack_signs(signs(rng, (1, h, w, c)))
        wts = pack_signs(signs(rng, (c, 3, 3, c)))
        tens = out_tensors(rng, c, 9 * c)
        conv = BConv(wts, c, (1, 1), "same", "threshold", **tens)
        expect = ref.bconv_reference(x, wts, c, (3, 3), (1, 1), "same", "threshold", **tens)
        np.testing.assert_array_equal(conv(x), expect)
        threads(2)
        np.testing.assert_array_equal(conv(x), expect)
        threads(1)


@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("with_shift", [False, True])
def test_sign_kernel_matches_reference(rng, c, with_shift):
    """The vectorised sign (64 values → one word) against the NumPy spec, with exact
    zeros, -0.0, NaN and ±inf in the input and a shift that cancels some values."""
    from bitnet.kernels.sign import sign

    for shape in [(1, 1, 1, c), (3, 5, 7, c), (2, 3, c)]:
        x = signs(rng, shape)
        flat = x.reshape(-1)
        k = rng.random(flat.shape)
        flat[k < 0.05] = -0.0
        flat[(k >= 0.05) & (k < 0.08)] = np.nan
        flat[(k >= 0.08) & (k < 0.10)] = -np.inf
        flat[(k >= 0.10) & (k < 0.12)] = np.inf
        shift = None
        if with_shift:
            shift = rng.standard_normal(c).astype(np.float32)
            shift[rng.random(c) < 0.2] = 0.0
            shift[rng.random(c) < 0.1] = -0.0
            # x + shift == 0 exactly for a few values
            x[..., :1] = -shift[:1]
        got = sign(x, shift)
        # the reference rejects NaN (undefined sign); the kernels give NaN bit 0 (+1,
        # ``v < 0`` is false), as the scalar kernel always did
        s = x if shift is None else x + shift
        want = ref.sign_reference(np.where(np.isnan(s), np.float32(1), s))
        np.testing.assert_array_equal(got, want)
        assert_pad_bits_zero(got, c)
        finite = np.where(np.isnan(x), np.float32(0), x)
        if shift is not None:
            finite[np.isnan(finite + shift)] = 0
        np.testing.assert_array_equal(sign(finite, shift), ref.sign_reference(finite, shift))


@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("stride", [(2, 2), (1, 1), (1, 2), (2, 1)])
def test_maxpool_real_2x2(rng, c, stride):
    """The register path of the 2×2 real max-pool against the reference (values), with
    ties of 0.0 and -0.0 and ±inf; bit for bit (sign of zero included) and with NaN
    against the kernels' rule, that of the general path too: keep the running max
    unless ``v > max`` (np.maximum, in the reference, keeps the second zero of a tie
    and propagates NaN)."""
    for nb, h, w in [(1, 2, 2), (3, 5, 7), (2, 9, 4)]:
        x = signs(rng, (nb, h, w, c), zeros=0.3)
        k = rng.random(x.shape)
        x[k < 0.15] = -0.0
        x[(k >= 0.15) & (k < 0.17)] = np.inf
        x[(k >= 0.17) & (k < 0.19)] = -np.inf
        got = maxpool_real(x, (2, 2), stride)
        np.testing.assert_array_equal(got, ref.maxpool_real_reference(x, (2, 2), stride))
        for nan in (False, True):
            if nan:
                x[(k >= 0.19) & (k < 0.25)] = np.nan
            wins = list(ref._windows(x, (2, 2), stride))
            want = wins[0].copy()
            for win in wins[1:]:
                want = np.where(win > want, win, want)
            got = maxpool_real(x, (2, 2), stride)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


@pytest.mark.parametrize("c_out", [1, 16, 32, 48, 63, 64, 65, 128, 129])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_qconv_first_layer_affine_rows(rng, c_out, padding, threads):
    """3×3 stride-1 single-channel first layer with affine output: whole blocks read
    their taps from three padded rows (no gather), the rest go through the gather;
    both equal the reference bit for bit, serial and parallel."""
    from bitnet.kernels import isa
    from bitnet.kernels.layout import ROWS3X3, block_width
    from bitnet.kernels.qconv_layer import _GW as _QGW

    for nb, h, w, bits in [(1, 3, 3, 8), (3, 7, 11, 8), (2, 6, 5, 4), (1, 40, 101, 8)]:
        lv = rng.integers(0, 1 << bits, size=(nb, h, w, 1)).astype(np.uint8)
        lv[0, 0, 0, 0] = (1 << bits) - 1
        wts = pack_signs(signs(rng, (c_out, 3, 3, 1)))
        tens = out_tensors(rng, c_out, 9 * (1 << bits))
        tens["scale"][:1] = 0.0
        dot = ref.qconv_dot_reference(lv, wts, 1, bits, (3, 3), (1, 1), padding)
        conv = QConv(wts, 1, bits, (1, 1), padding, "affine", **tens)
        assert (conv._hdr[_QGW] == ROWS3X3) == (c_out % block_width(c_out, isa.qlanes()) == 0)
        got = conv(lv)
        threads(2)
        got2 = conv(lv)
        threads(1)
        want = ref.apply_output(dot, "affine", **tens)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got2, got)


@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("kernel,stride", [((2, 2), None), ((2, 2), (1, 1)), ((3, 3), (2, 2)), ((1, 3), (1, 2))])
def test_add_maxpool_real(rng, c, kernel, stride):
    """add → maxpool (real) in one pass equals the two references composed (values, and
    signs of zero against the kernels' max rule); NaN as the unfused kernels."""
    from bitnet.kernels.pool import add_maxpool_real

    for nb in (1, 3):
        h, w = kernel[0] + int(rng.integers(0, 4)), kernel[1] + int(rng.integers(0, 4))
        a = signs(rng, (nb, h, w, c), zeros=0.3)
        b = signs(rng, (nb, h, w, c), zeros=0.3)
        k = rng.random(a.shape)
        a[k < 0.15] = -0.0
        b[k < 0.1] = -0.0                   # -0.0 + -0.0 = -0.0
        a[(k > 0.5) & (k < 0.55)] = np.inf
        got = add_maxpool_real(a, b, kernel, stride)
        np.testing.assert_array_equal(got, ref.add_maxpool_real_reference(a, b, kernel, stride))
        unfused = maxpool_real(ref.add_reference(a, b), kernel, stride)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(unfused))
        a[(k > 0.6) & (k < 0.65)] = np.nan
        b[(k > 0.7) & (k < 0.72)] = -np.inf     # inf + -inf = NaN too
        got = add_maxpool_real(a, b, kernel, stride)
        unfused = maxpool_real(ref.add_reference(a, b), kernel, stride)
        np.testing.assert_array_equal(got, unfused)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(unfused))


@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("kernel,stride", [((2, 2), None), ((2, 2), (1, 1)), ((3, 3), (2, 2)), ((1, 3), (1, 2))])
@pytest.mark.parametrize("with_b", [False, True])
@pytest.mark.parametrize("with_shift", [False, True])
def test_pool_sign(rng, c, kernel, stride, with_b, with_shift):
    """[add →] maxpool (real) → sign in one pass: both outputs equal the separate
    kernels bit for bit (and the references, where they define the value)."""
    from bitnet.kernels.pool import pool_sign
    from bitnet.kernels.sign import sign

    for nb in (1, 3):
        h, w = kernel[0] + int(rng.integers(0, 4)), kernel[1] + int(rng.integers(0, 4))
        a = signs(rng, (nb, h, w, c), zeros=0.3)
        k = rng.random(a.shape)
        a[k < 0.15] = -0.0
        b = signs(rng, (nb, h, w, c), zeros=0.3) if with_b else None
        if with_b:
            b[k < 0.1] = -0.0
        shift = None
        if with_shift:
            shift = rng.standard_normal(c).astype(np.float32)
            shift[rng.random(c) < 0.3] = 0.0
        pooled, bits = pool_sign(a, kernel, stride, shift, b)
        s = a if b is None else ref.add_reference(a, b)
        want = maxpool_real(s, kernel, stride)
        np.testing.assert_array_equal(pooled, ref.maxpool_real_reference(s, kernel, stride))
        np.testing.assert_array_equal(np.signbit(pooled), np.signbit(want))
        np.testing.assert_array_equal(bits, sign(want, shift))
        np.testing.assert_array_equal(bits, ref.sign_reference(ref.maxpool_real_reference(s, kernel, stride), shift))
        assert_pad_bits_zero(bits, c)
        a[(k > 0.6) & (k < 0.65)] = np.nan
        pooled, bits = pool_sign(a, kernel, stride, shift, b)
        s = a if b is None else ref.add_reference(a, b)
        want = maxpool_real(s, kernel, stride)
        np.testing.assert_array_equal(pooled, want)
        np.testing.assert_array_equal(np.signbit(pooled), np.signbit(want))
        np.testing.assert_array_equal(bits, sign(want, shift))


@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("with_shift", [False, True])
def test_add_sign(rng, c, with_shift):
    """add → sign in one pass: the sum and the bits equal the separate ops bit for bit."""
    from bitnet.kernels.pool import add_sign
    from bitnet.kernels.sign import sign

    for shape in [(1, 1, 1, c), (3, 5, 7, c), (2, c)]:
        a = signs(rng, shape, zeros=0.3)
        b = signs(rng, shape, zeros=0.3)
        k = rng.random(shape)
        a[k < 0.15] = -0.0
        b[k < 0.1] = -0.0
        b[(k > 0.2) & (k < 0.3)] = -a[(k > 0.2) & (k < 0.3)]     # exact zero sums
        shift = None
        if with_shift:
            shift = rng.standard_normal(c).astype(np.float32)
            shift[rng.random(c) < 0.3] = 0.0
        s, bits = add_sign(a, b, shift)
        want = ref.add_reference(a, b)
        np.testing.assert_array_equal(s, want)
        np.testing.assert_array_equal(np.signbit(s), np.signbit(want))
        np.testing.assert_array_equal(bits, ref.sign_reference(want, shift))
        assert_pad_bits_zero(bits, c)
        a[(k > 0.6) & (k < 0.65)] = np.nan
        s, bits = add_sign(a, b, shift)
        want = ref.add_reference(a, b)
        np.testing.assert_array_equal(s, want)
        np.testing.assert_array_equal(bits, sign(want, shift))
