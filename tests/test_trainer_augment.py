"""The augmentation levers of the leave-one-speaker-out ablation (``trainer.data.WaveAug``)
and the speaker folds of ``--folds``."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from trainer import data as D  # noqa: E402
from trainer import models as M  # noqa: E402
from trainer.folds import SPEAKERS, parse_folds  # noqa: E402

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def feat():
    return D.Featurizer(D.frontend_config(**M.SPECS["digits"].frontend))


def _tone(n=5000, sr=8000, f=440.0):
    t = np.arange(n) / sr
    return (0.3 * np.sin(2 * np.pi * f * t) * np.hanning(n)).astype(np.float32)


def test_resample_linear_changes_length_and_pitch():
    sr = 8000
    y = _tone(8000, sr, 500.0)
    fast = D.resample_linear(y, 1.25)
    assert fast.dtype == np.float32 and len(fast) == 6400
    spec = np.abs(np.fft.rfft(fast * np.hanning(len(fast))))
    peak_hz = np.argmax(spec) * sr / len(fast)
    assert abs(peak_hz - 625.0) < 5.0  # 500 Hz played 1.25x faster
    np.testing.assert_allclose(D.resample_linear(y, 1.0), y)


def test_stretch_axis_identity_and_direction():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 101)).astype(np.float32) - 40
    np.testing.assert_allclose(D.stretch_axis(x, 1.0, axis=1), x, rtol=0, atol=1e-5)
    np.testing.assert_allclose(D.stretch_axis(x, 1.0, axis=0, anchor="low"), x, rtol=0, atol=1e-5)
    # a band at mel 10 moves to mel 12 when warped by 1.2 (anchored at band 0)
    b = np.full((40, 5), -80.0, np.float32)
    b[10] = 0.0
    w = D.stretch_axis(b, 1.2, axis=0, anchor="low")
    assert int(np.argmax(w[:, 0])) == 12
    # a frame at 60 moves away from the centre (50) to 60 when stretched by 2 around 50 -> 70
    f = np.full((3, 101), -80.0, np.float32)
    f[:, 60] = 0.0
    s = D.stretch_axis(f, 2.0, axis=1)
    assert int(np.argmax(s[0])) == 70
    assert s.min() >= -80.0 and s.shape == f.shape  # outside the source: the clip's floor


def test_reverberate_keeps_the_peak_and_adds_a_tail():
    rng = np.random.default_rng(1)
    y = _tone(4000)
    r = D.reverberate(y, 8000, 0.5, rng)
    assert len(r) == len(y) + int(0.3 * 8000)
    assert abs(np.max(np.abs(r)) - np.max(np.abs(y))) < 1e-5
    assert np.mean(r[len(y):] ** 2) > 1e-6  # energy after the dry signal ended


@pytest.mark.parametrize("kw", [{}, {"speed": 0.1}, {"pitch": 0.1}, {"tempo": 0.15}, {"vtlp": 0.1},
                                {"reverb_prob": 1.0}, {"dc": 0.1}])
def test_every_lever_gives_model_inputs_and_is_seeded(feat, kw):
    y = _tone()
    aug = D.WaveAug(**kw)
    a = aug(y, feat, np.random.default_rng(3))
    b = aug(y, feat, np.random.default_rng(3))
    assert a.shape == feat.cfg_shape and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)


def test_levers_change_the_input(feat):
    y = _tone()
    base = D.WaveAug(noise_prob=0.0, gain_db=0.0, shift=False)
    x0 = base(y, feat, np.random.default_rng(5))
    for kw in ({"speed": 0.2}, {"pitch": 0.2}, {"tempo": 0.2}, {"vtlp": 0.2}, {"reverb_prob": 1.0}):
        aug = D.WaveAug(noise_prob=0.0, gain_db=0.0, shift=False, **kw)
        assert np.abs(aug(y, feat, np.random.default_rng(5)) - x0).max() > 1.0, kw


def test_speaker_folds():
    assert parse_folds("speakers") == SPEAKERS and len(SPEAKERS) == 6
    assert parse_folds("george,theo") == ["george", "theo"]
    assert parse_folds("1-3") == ["1", "2", "3"]
    with pytest.raises(ValueError, match="neither a fold number nor an FSDD speaker"):
        parse_folds("georg")


@pytest.mark.parametrize("kind", ["white", "pink", "babble"])
def test_add_noise_hits_the_snr(kind):
    rng = np.random.default_rng(2)
    y = _tone(6000)
    pool = [_tone(3000, f=f) for f in (200.0, 300.0, 700.0, 900.0, 1200.0)]
    for snr in (0.0, 10.0, 20.0):
        z = D.add_noise(y, kind, snr, rng, pool)
        n = z.astype(np.float64) - y
        got = 10 * np.log10(np.mean(y.astype(np.float64) ** 2) / np.mean(n ** 2))
        assert abs(got - snr) < 0.01 and len(z) == len(y) and z.dtype == np.float32


def test_mixed_noise_lever(feat):
    y = _tone()
    aug = D.WaveAug(noise="mixed", noise_prob=1.0, snr_db=(0.0, 0.0), gain_db=0.0, shift=False,
                    pool=[_tone(3000, f=300.0)] * 4)
    clean = D.WaveAug(noise_prob=0.0, gain_db=0.0, shift=False)(y, feat, np.random.default_rng(0))
    noisy = aug(y, feat, np.random.default_rng(0))
    assert noisy.shape == clean.shape and np.abs(noisy - clean).max() > 10.0  # 0 dB SNR is loud
