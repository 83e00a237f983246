"""bitnet.features: the config, clip windows, sliding windows and the window stream."""

from __future__ import annotations

import numpy as np
import pytest

from bitnet import ParameterError, log_mel
from bitnet.features import (
    FrontendConfig,
    WindowStream,
    clip_features,
    fit_length,
    normalize_window,
    sliding_windows,
)


def test_config_defaults_round_trip_and_window():
    cfg = FrontendConfig()
    d = cfg.to_dict()
    assert d["sample_rate"] == 8000 and d["frames"] == 101 and d["ref"] == "max"
    assert FrontendConfig.from_dict(d) == cfg
    assert FrontendConfig.from_dict({}) == cfg
    assert cfg.window_samples == 100 * 80
    kw = cfg.log_mel_kwargs()
    assert kw["top_db"] is None and kw["sr"] == 8000
    assert log_mel(np.zeros(cfg.window_samples, np.float32), **kw).shape == (40, 101)


@pytest.mark.parametrize("n_fft,center", [(256, True), (255, True), (256, False), (201, False)])
def test_window_samples_gives_exactly_frames(n_fft, center):
    cfg = FrontendConfig(n_fft=n_fft, center=center, frames=51)
    feats = log_mel(np.zeros(cfg.window_samples, np.float32), **cfg.log_mel_kwargs())
    assert feats.shape == (40, 51)


@pytest.mark.parametrize(
    "d,match",
    [
        ({"bogus": 1}, "unknown"),
        ({"sample_rate": 0}, "sample_rate"),
        ({"frames": 0}, "frames"),
        ({"ref": "mean"}, "ref"),
        ({"top_db": -3.0}, "top_db"),
        ({"n_fft": 0}, "n_fft"),
        ({"fmax": 6000.0}, "Nyquist"),
        ({"norm": "l1"}, "norm"),
        ({"channel_norm": "var"}, "channel_norm"),
    ],
)
def test_config_validation(d, match):
    with pytest.raises(ParameterError, match=match):
        FrontendConfig.from_dict(d)


def test_from_dict_rejects_non_dict():
    with pytest.raises(ParameterError):
        FrontendConfig.from_dict([("n_fft", 256)])


def test_fit_length():
    y = np.arange(10, dtype=np.float64)
    out = fit_length(y, 14)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [0, 0, *range(10), 0, 0])
    np.testing.assert_array_equal(fit_length(y, 4), [3, 4, 5, 6])
    np.testing.assert_array_equal(fit_length(y, 4, offset=6), [6, 7, 8, 9])
    np.testing.assert_array_equal(fit_length(y, 10), y)
    with pytest.raises(ParameterError, match="offset"):
        fit_length(y, 4, offset=7)
    with pytest.raises(ParameterError):
        fit_length(y, 0)


def test_normalize_window():
    feats = np.array([[-10.0, -200.0], [0.0, 5.0]], np.float32)
    out = normalize_window(feats, FrontendConfig())
    np.testing.assert_array_equal(out, [[-15.0, -80.0], [-5.0, 0.0]])
    out = normalize_window(feats, FrontendConfig(ref="one"))
    np.testing.assert_array_equal(out, [[-10.0, -75.0], [0.0, 5.0]])
    out = normalize_window(feats, FrontendConfig(top_db=None))
    np.testing.assert_array_equal(out, feats - 5.0)
    stack = normalize_window(np.stack([feats, feats + 7]), FrontendConfig())
    np.testing.assert_array_equal(stack[0], stack[1])  # each window on its own


def test_channel_norm_mean_removes_a_fixed_colouring():
    feats = np.array([[-10.0, -30.0, -20.0], [0.0, 4.0, 2.0]], np.float32)
    out = normalize_window(feats, FrontendConfig(channel_norm="mean"))
    # band means -20 and 2 removed, then the window's max (10) subtracted
    np.testing.assert_allclose(out, [[0.0, -20.0, -10.0], [-12.0, -8.0, -10.0]])
    tilt = np.array([[6.0], [-9.0]], np.float32)  # a microphone's fixed response per band, dB
    np.testing.assert_allclose(normalize_window(feats + tilt, FrontendConfig(channel_norm="mean")), out, atol=1e-5)
    assert "channel_norm" not in FrontendConfig().to_dict()  # old headers and cache keys unchanged
    assert FrontendConfig.from_dict({"channel_norm": "mean"}).to_dict()["channel_norm"] == "mean"


def test_clip_features_is_gain_invariant(rng):
    cfg = FrontendConfig()
    y = (0.1 * rng.standard_normal(6000)).astype(np.float32)
    a = clip_features(y, cfg)
    b = clip_features(4 * y, cfg)  # +12 dB everywhere, removed by ref="max"
    assert a.shape == (40, 101) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-3)
    assert a.max() == 0.0 and a.min() >= -80.0


def test_clip_features_fsdd(fsdd_dir):
    from bitnet import load_audio

    y, sr = load_audio(fsdd_dir / "5_nicolas_2.wav", sr=8000)
    feats = clip_features(y, FrontendConfig())
    assert feats.shape == (40, 101) and np.isfinite(feats).all()


def test_sliding_windows(rng):
    cfg = FrontendConfig(frames=51)
    short = (0.1 * rng.standard_normal(3000)).astype(np.float32)
    np.testing.assert_array_equal(sliding_windows(short, cfg, 10), clip_features(short, cfg)[None])
    y = (0.1 * rng.standard_normal(20000)).astype(np.float32)
    wins = sliding_windows(y, cfg, 20)
    feats = log_mel(y, **cfg.log_mel_kwargs())
    total = feats.shape[1]  # 251 frames
    starts = list(range(0, total - 51 + 1, 20))
    if starts[-1] + 51 < total:
        starts.append(total - 51)
    assert wins.shape == (len(starts), 40, 51)
    for w, s in zip(wins, starts):
        np.testing.assert_array_equal(w, normalize_window(feats[:, s : s + 51], cfg))
    np.testing.assert_array_equal(wins[-1], normalize_window(feats[:, -51:], cfg))  # the tail is covered


def stream_windows(cfg, hop, y, sizes):
    s = WindowStream(cfg, hop)
    parts, i = [], 0
    for k in sizes:
        parts.append(s.push(y[i : i + k]))
        i += k
    parts.append(s.flush())
    for p in parts:
        assert p.dtype == np.float32 and p.ndim == 3 and p.shape[1:] == (cfg.n_mels, cfg.frames)
    return np.concatenate(parts)


@pytest.mark.parametrize(
    "cfg,hop",
    [
        (FrontendConfig(), 50),
        (FrontendConfig(frames=51), 1),
        (FrontendConfig(frames=51, n_fft=255, hop_length=64), 100),  # hop > frames
        (FrontendConfig(frames=5, ref="one", top_db=None), 3),
        (FrontendConfig(frames=1, center=False), 2),
        (FrontendConfig(channel_norm="mean"), 37),
    ],
)
def test_window_stream_equals_sliding_windows(rng, cfg, hop):
    for n in (1, cfg.window_samples - 1, cfg.window_samples, cfg.window_samples + 1, 3 * cfg.window_samples + 777):
        y = (0.1 * rng.standard_normal(n)).astype(np.float32)
        expected = sliding_windows(y, cfg, hop)
        for high in (5000, 400):
            sizes = []
            while sum(sizes) < n:
                sizes.append(int(rng.integers(0, high)))
            np.testing.assert_array_equal(stream_windows(cfg, hop, y, sizes), expected)


def test_window_stream_emits_before_flush(rng):
    cfg = FrontendConfig()
    s = WindowStream(cfg, 25)
    y = (0.1 * rng.standard_normal(5 * cfg.window_samples)).astype(np.float32)
    early = sum(s.push(y[i : i + 800]).shape[0] for i in range(0, len(y), 800))
    assert early >= 15  # windows come out while the audio is still arriving
    assert early + s.flush().shape[0] == sliding_windows(y, cfg, 25).shape[0]


def test_window_stream_empty_and_bad_args():
    s = WindowStream(FrontendConfig(), 10)
    assert s.flush().shape == (0, 40, 101)
    with pytest.raises(ParameterError):
        WindowStream(FrontendConfig(), 0)
    with pytest.raises(ParameterError):
        WindowStream({"n_fft": 256}, 10)


@pytest.mark.parametrize("field, value", [("n_fft", 1 << 30), ("n_mels", 10**6), ("hop_length", 1 << 40),
                                          ("sample_rate", 10**9), ("frames", 1 << 40), ("win_length", 1 << 30)])
def test_absurd_sizes_are_refused_before_allocating(field, value):
    # an edited model file must fail with a clear error, not a MemoryError
    with pytest.raises(ParameterError, match=field.replace("sample_rate", "sr")):
        FrontendConfig.from_dict({field: value})
