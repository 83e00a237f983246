"""Packing conventions: set bit = −1, sign(0) = +1, LSB = lowest channel, pad bits zero."""

from __future__ import annotations

import numpy as np
import pytest

from bitnet import ParameterError
from bitnet.packing import n_words, pack_bitplanes, pack_signs, quantize, unpack_signs

CHANNELS = [1, 63, 64, 65, 127, 128, 129]


def test_bit_order_and_sign_of_zero():
    x = np.array([1.0, -2.0, 0.0, -0.0, -1e-30, 3.0], dtype=np.float32)
    w = pack_signs(x)
    assert w.dtype == np.uint64 and w.shape == (1,)
    assert int(w[0]) == 0b010010          # channels 1 and 4 are negative; 0 and -0.0 are +1


def test_word_boundary():
    x = np.ones(130)
    x[64] = -1
    x[129] = -1
    w = pack_signs(x)
    assert w.tolist() == [0, 1, 2]


@pytest.mark.parametrize("c", CHANNELS)
def test_roundtrip_and_pad_bits(rng, c):
    x = rng.standard_normal((3, 2, c)).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = 0.0
    w = pack_signs(x)
    assert w.shape == (3, 2, n_words(c))
    v = unpack_signs(w, c)
    assert v.dtype == np.int8
    np.testing.assert_array_equal(v, np.where(x < 0, -1, 1))
    if c % 64:
        assert not (w[..., -1] >> np.uint64(c % 64)).any()


def test_axis_argument(rng):
    x = rng.standard_normal((5, 70, 2))
    np.testing.assert_array_equal(pack_signs(x, axis=1), pack_signs(np.moveaxis(x, 1, -1)))


def test_integer_input():
    np.testing.assert_array_equal(pack_signs(np.array([0, -1, 5, -7], np.int32)), [0b1010])


def test_bitplanes(rng):
    lv = rng.integers(0, 256, size=(2, 3, 70)).astype(np.uint8)
    p = pack_bitplanes(lv, 8)
    assert p.shape == (2, 3, 8, 2)
    for b in range(8):
        neg = unpack_signs(p[:, :, b, :], 70) < 0
        np.testing.assert_array_equal(neg, (lv >> b) & 1 == 1)
    with pytest.raises(ParameterError):
        pack_bitplanes(lv, 4)


def test_quantize_float32_rule():
    x = np.array([-5.0, -1.0, -0.76, 0.0, 0.25, 1.0, 100.0, np.nan], np.float32)
    q = quantize(x, 3, -1.0, 2.0)
    ref = np.clip(np.floor((x + np.float32(1)) * np.float32(2) + np.float32(0.5)), 0, 7)
    ref = np.nan_to_num(ref, nan=0)
    np.testing.assert_array_equal(q, ref.astype(np.uint8))
    assert q.dtype == np.uint8


def test_quantize_numba_twin(rng):
    from bitnet.kernels.sign import quantize as qn

    x = (rng.standard_normal((4, 40, 7)) * 30 - 40).astype(np.float32)
    x[0, 0, 0] = np.nan
    np.testing.assert_array_equal(qn(x, 8, -80.0, 255 / 80), quantize(x, 8, -80.0, 255 / 80))


@pytest.mark.parametrize("c", [1, 64, 65, 129])
def test_sign_kernel_matches_numpy(rng, c):
    from bitnet.kernels.sign import sign

    x = rng.standard_normal((3, 4, c)).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = 0.0
    shift = rng.standard_normal(c).astype(np.float32)
    np.testing.assert_array_equal(sign(x), pack_signs(x))
    np.testing.assert_array_equal(sign(x, shift), pack_signs(x + shift))


def test_errors():
    with pytest.raises(ParameterError):
        unpack_signs(np.zeros(2, np.uint64), 64)
    with pytest.raises(ParameterError):
        unpack_signs(np.zeros(1, np.int64), 64)
    with pytest.raises(ParameterError):
        pack_signs(np.float32(1.0))
    with pytest.raises(ParameterError):
        quantize(np.zeros(3, np.float32), 9, 0.0, 1.0)
