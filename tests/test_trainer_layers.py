"""Trainer layers against float oracles and the engine's references (docs/design.md §2)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from trainer import layers as L  # noqa: E402
from trainer import models as M  # noqa: E402

pytestmark = pytest.mark.train


def _signs(rng, shape, zeros=0.2):
    """Random floats with a fraction of exact zeros (sign(0) = +1)."""
    x = rng.standard_normal(shape).astype(np.float32)
    x[rng.random(shape) < zeros] = 0.0
    return x


def test_sign_zero_is_plus_one():
    x = torch.tensor([-1.5, -0.0, 0.0, 1e-30, -1e-30, 2.0])
    assert L.sign(x).tolist() == [-1, 1, 1, 1, -1, 1]
    for grad in ("ste", "approx"):
        assert L.SignSTE(x, grad).tolist() == [-1, 1, 1, 1, -1, 1]


def test_sign_gradients():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    L.SignSTE(x, "ste").sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 1, 1, 1, 0]  # clipped identity
    x.grad = None
    L.SignSTE(x, "approx").sum().backward()
    assert x.grad.tolist() == [0, 0, 1, 2, 1, 0, 0]  # Bi-Real ApproxSign: 2 - 2|x|
    with pytest.raises(ValueError, match="grad"):
        L.SignSTE(x, "nope")


def test_sign_module_shift_matches_engine(rng):
    from bitnet.packing import sign_bits, unpack_signs

    s = L.Sign(5)
    with torch.no_grad():
        s.shift.copy_(torch.tensor([0.0, 0.5, -0.5, 1.0, -1.0]))
    x = _signs(rng, (7, 3, 4, 5))
    x[0, 0, 0] = -s.shift.detach().numpy()  # x + shift == 0 exactly -> +1
    got = s(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).detach().numpy()
    want = unpack_signs(sign_bits(x, s.shift.detach().numpy()), 5)
    np.testing.assert_array_equal(got, want)
    assert (got[0, 0, 0] == 1).all()


def _conv_oracle(x, w, pad_value, stride=1):
    """Plain loops: x (C_in, H, W), w (C_out, C_in, kh, kw), 'same' padding with pad_value
    (the engine's rule: (k-1)//2 before, the rest after)."""
    cin, h, wd = x.shape
    cout, _, kh, kw = w.shape
    ho, wo = -(-h // stride), -(-wd // stride)
    pt, pl = (kh - 1) // 2, (kw - 1) // 2
    ph = max((ho - 1) * stride + kh - h - pt, 0)
    pw = max((wo - 1) * stride + kw - wd - pl, 0)
    xp = np.full((cin, h + pt + ph, wd + pl + pw), pad_value, dtype=np.float64)
    xp[:, pt:pt + h, pl:pl + wd] = x
    out = np.zeros((cout, ho, wo))
    for o in range(cout):
        for i in range(ho):
            for j in range(wo):
                patch = xp[:, i * stride:i * stride + kh, j * stride:j * stride + kw]
                out[o, i, j] = np.sum(patch * w[o])
    return out


@pytest.mark.parametrize("cin,cout,h,w,stride", [(1, 3, 4, 5, 1), (3, 2, 5, 4, 2), (65, 4, 3, 3, 1),
                                                 (2, 2, 1, 1, 1), (4, 3, 6, 6, 2)])
def test_binary_conv_equals_float_conv_with_plus_one_padding(rng, cin, cout, h, w, stride):
    conv = L.BinaryConv2d(cin, cout, 3, stride=stride)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(_signs(rng, (cout, cin, 3, 3))))
    xs = np.where(_signs(rng, (2, cin, h, w)) >= 0, 1.0, -1.0).astype(np.float32)
    got = conv.dot(torch.from_numpy(xs)).detach().numpy()
    wb = np.where(conv.weight.detach().numpy() >= 0, 1.0, -1.0)
    for n in range(2):
        np.testing.assert_array_equal(got[n], _conv_oracle(xs[n], wb, 1.0, stride))
    # and the float conv of torch with zero padding differs exactly by the border term
    zero = F.conv2d(torch.from_numpy(xs), torch.from_numpy(wb.astype(np.float32)),
                    stride=stride, padding=1).numpy()
    border = F.conv2d(torch.ones(1, cin, h, w), torch.from_numpy(wb.astype(np.float32)),
                      stride=stride, padding=1).numpy()
    inner = F.conv2d(F.pad(torch.ones(1, cin, h, w), (1, 1, 1, 1), value=1.0),
                     torch.from_numpy(wb.astype(np.float32)), stride=stride).numpy()
    np.testing.assert_array_equal(got, zero + (inner - border))


def test_binary_conv_against_engine_reference(rng):
    from bitnet.kernels.reference import bconv_dot_reference
    from bitnet.packing import pack_signs

    cin, cout = 70, 5
    conv = L.BinaryConv2d(cin, cout, 3)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(_signs(rng, (cout, cin, 3, 3))))
    x = _signs(rng, (2, 4, 6, cin))  # NHWC, with exact zeros
    xs = np.where(x >= 0, 1.0, -1.0).astype(np.float32)
    got = conv.dot(torch.from_numpy(xs).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).detach().numpy()
    wpack = pack_signs(np.where(conv.weight.detach().numpy() >= 0, 1.0, -1.0)
                       .transpose(0, 2, 3, 1).astype(np.float32))
    want = bconv_dot_reference(pack_signs(x), wpack, cin, (3, 3), (1, 1), "same")
    np.testing.assert_array_equal(got, want)


def test_qconv_pads_with_level_zero(rng):
    from bitnet.kernels.reference import qconv_dot_reference
    from bitnet.packing import pack_signs

    q = L.QConv2d(1, 4, 3, bits=8)
    with torch.no_grad():
        q.weight.copy_(torch.from_numpy(_signs(rng, (4, 1, 3, 3))))
    levels = rng.integers(0, 256, size=(2, 5, 7, 1)).astype(np.uint8)
    got = q.dot(torch.from_numpy(levels.astype(np.float32)).permute(0, 3, 1, 2))
    got = got.permute(0, 2, 3, 1).detach().numpy()
    wb = np.where(q.weight.detach().numpy() >= 0, 1.0, -1.0)
    for n in range(2):
        np.testing.assert_array_equal(got[n].transpose(2, 0, 1),
                                      _conv_oracle(levels[n, :, :, 0][None].astype(float), wb, 0.0))
    wpack = pack_signs(wb.transpose(0, 2, 3, 1).astype(np.float32))
    want = qconv_dot_reference(levels, wpack, 1, 8, (3, 3), (1, 1), "same")
    np.testing.assert_array_equal(got, want)


def test_binary_linear(rng):
    lin = L.BinaryLinear(70, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(_signs(rng, (3, 70))))
    x = np.where(_signs(rng, (4, 70)) >= 0, 1.0, -1.0).astype(np.float32)
    wb = np.where(lin.weight.detach().numpy() >= 0, 1.0, -1.0)
    np.testing.assert_array_equal(lin.dot(torch.from_numpy(x)).detach().numpy(), x @ wb.T)


def test_quantizer_matches_engine(rng):
    from bitnet.packing import quantize

    qz = L.Quantizer(8, offset=-80.0)
    x = rng.uniform(-90, 5, size=5000).astype(np.float32)
    # exact level boundaries and the ends
    x[:256] = (np.arange(256, dtype=np.float32) - np.float32(0.5)) / np.float32(qz.scale) \
        + np.float32(qz.offset)
    x[256:260] = [-80.0, 0.0, -1e9, 1e9]
    got = qz(torch.from_numpy(x)).numpy()
    want = quantize(x, 8, qz.offset, qz.scale)
    np.testing.assert_array_equal(got, want.astype(np.float32))
    xt = torch.linspace(-70, -10, 9).requires_grad_()
    qz(xt).sum().backward()
    assert torch.all(xt.grad == torch.tensor(qz.scale))  # straight through floor


def test_threshold_derivation_exact(rng):
    dots = np.arange(-600, 601, dtype=np.int64)
    a = np.concatenate([rng.standard_normal(40), [0.0, 0.0, 1e-9, -1e-9, 0.5, -0.5]])
    b = np.concatenate([rng.standard_normal(40) * 50, [1.0, -1.0, 3.0, 3.0, -10.0, -10.0]])
    b[5] = -a[5] * 17  # -b/a integral: dot = 17 must give +1 (y == 0 -> +1)
    b[6] = -a[6] * -3
    th, ts = L.thresholds_from_affine(a, b)
    for c in range(len(a)):
        y = a[c] * dots + b[c]
        want = y >= 0
        got = ts[c].astype(np.int64) * dots >= th[c]
        np.testing.assert_array_equal(got, want, err_msg=f"channel {c}: a={a[c]} b={b[c]}")
    assert ts.dtype == np.int32 and th.dtype == np.int32
    assert th[40] == -(2**31) and th[41] == 2**31 - 1


def test_latent_clipping():
    m = M.build("lc-bnn")
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(0).add_(5.0)
    L.clip_latent_weights(m)
    latent, other = L.latent_parameters(m)
    assert latent and all(float(p.detach().abs().max()) <= 1.0 for p in latent)
    assert any(float(p.detach().max()) == 5.0 for p in other)


@pytest.mark.parametrize("name", ["lc-bnn", "kws-bnn-m", "digits", "resnet-esc"])
def test_factory_shapes(name):
    for ft in (False, True):
        m = M.build(name, n_classes=7, float_twin=ft).eval()
        x = torch.rand(2, *m.input_shape) * -80
        with torch.no_grad():
            assert m(x).shape == (2, 7)


def test_eval_mode_is_the_folded_engine_arithmetic(rng):
    """Eval mode of BinaryConvBN equals sign/affine of BN(conv) away from exact ties."""
    torch.manual_seed(0)
    m = L.BinaryConvBN(L.BinaryConv2d(8, 6, 3), output="threshold")
    m.train()
    x = torch.from_numpy(np.where(_signs(rng, (16, 8, 5, 5)) >= 0, 1.0, -1.0).astype(np.float32))
    with torch.no_grad():
        m.bn.weight.copy_(torch.tensor([1.0, -1.0, 0.5, 2.0, -0.3, 0.0]))
        m.bn.bias.copy_(torch.tensor([0.1, 0.2, -0.3, 0.05, 0.4, -0.5]))
        for _ in range(3):
            m(x)
    m.eval()
    with torch.no_grad():
        got = m(x)
        y = m.bn(m.conv(x))
    want = torch.where(y >= 0, 1.0, -1.0)
    near = y.abs() < 1e-4
    assert torch.equal(got[~near], want[~near])
    assert torch.all(got[:, 5] == -1)  # gamma = 0, beta < 0: constant -1


def test_init_weights_keeps_a_head_of_another_size(tmp_path):
    """Pretraining on another label set: ``--init`` takes every tensor but the classifier."""
    from trainer.train import init_weights

    src = M.build("digits", n_classes=12, input_shape=(40, 101))
    torch.save({"model": src.state_dict()}, tmp_path / "kw.pt")
    dst = M.build("digits", n_classes=10, input_shape=(40, 101))
    head_before = {k: v.clone() for k, v in dst.state_dict().items()}
    skipped = init_weights(dst, tmp_path / "kw.pt")
    assert skipped and all(k.startswith(skipped[0].rsplit(".", 1)[0]) for k in skipped)
    for k, v in dst.state_dict().items():
        want = head_before[k] if k in skipped else src.state_dict()[k]
        assert torch.equal(v, want), k
    wide = M.build("digits", n_classes=10, input_shape=(40, 101), stem=32)
    with pytest.raises(ValueError, match="only the classifier may differ"):
        init_weights(wide, tmp_path / "kw.pt")
