"""bitnet.frontend: librosa parity, the filterbank, streaming == batch, parameter errors."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from bitnet import ParameterError
from bitnet.frontend import LogMelStream, hz_to_mel, log_mel, mel_filterbank, mel_to_hz, n_frames

try:  # the parity tests need librosa; the rest of the file does not
    import librosa
except ImportError:
    librosa = None
needs_librosa = pytest.mark.skipif(librosa is None, reason="librosa is not installed")

TOL_DB = 1e-3


def librosa_log_mel(y, *, top_db=80.0, amin=1e-10, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_fft too large / empty filters: same in both
        S = librosa.feature.melspectrogram(y=y, window="hann", **kw)
        return librosa.power_to_db(S, ref=1.0, amin=amin, top_db=top_db)


def ours(y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return log_mel(y, **kw)


def signal(rng, n, kind="noise"):
    if kind == "silence":
        return np.zeros(n, np.float32)
    if kind == "speechlike":  # harmonics plus a little noise, strongly non-flat spectrum
        t = np.arange(n) / 8000.0
        y = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 12)) + 0.01 * rng.standard_normal(n)
        return (0.3 * y).astype(np.float32)
    return (0.1 * rng.standard_normal(n)).astype(np.float32)


def check_parity(y, **kw):
    ref = librosa_log_mel(y, **kw)
    got = ours(y, **kw)
    assert got.dtype == np.float32
    assert got.shape == ref.shape
    err = float(np.abs(got.astype(np.float64) - ref).max())
    assert err <= TOL_DB, f"max abs error {err} dB for {kw}"
    return err


# --- parity: the quick tier ---------------------------------------------------------

QUICK = [
    # sr, n_fft, hop, win_length, n_mels, htk, norm, power, top_db
    (8000, 256, 80, None, 40, False, "slaney", 2.0, 80.0),
    (8000, 256, 80, None, 40, False, "slaney", 2.0, None),
    (16000, 400, 160, None, 40, False, "slaney", 2.0, 80.0),
    (16000, 512, 160, 400, 64, True, None, 2.0, None),
    (22050, 2048, 512, None, 128, False, "slaney", 1.0, 80.0),
    (44100, 1024, 441, 882, 80, True, "slaney", 2.0, None),
    (8000, 255, 77, None, 20, True, None, 1.0, 80.0),
    (16000, 400, 160, 256, 40, False, None, 2.0, 80.0),
]


@needs_librosa
@pytest.mark.parametrize("sr,n_fft,hop,win,n_mels,htk,norm,power,top_db", QUICK)
@pytest.mark.parametrize("length", ["odd", "short", "tiny"])
def test_parity_quick(rng, sr, n_fft, hop, win, n_mels, htk, norm, power, top_db, length):
    n = {"odd": sr // 4 + 7, "short": n_fft - 3, "tiny": 1}[length]
    y = signal(rng, n)
    check_parity(
        y, sr=sr, n_fft=n_fft, hop_length=hop, win_length=win, n_mels=n_mels, htk=htk, norm=norm,
        power=power, top_db=top_db,
    )


@needs_librosa
@pytest.mark.parametrize("top_db", [None, 80.0])
def test_parity_silence(top_db):
    y = np.zeros(4001, np.float32)
    got = ours(y, sr=8000, n_fft=256, hop_length=80, n_mels=40, top_db=top_db)
    assert np.all(got == got[0, 0]) and got[0, 0] == pytest.approx(-100.0, abs=1e-4)  # 10 log10(amin)
    check_parity(y, sr=8000, n_fft=256, hop_length=80, n_mels=40, top_db=top_db)


@needs_librosa
def test_parity_speechlike_and_fmin_fmax(rng):
    y = signal(rng, 8000, "speechlike")
    check_parity(y, sr=8000, n_fft=256, hop_length=80, n_mels=40, top_db=80.0)
    check_parity(y, sr=8000, n_fft=256, hop_length=80, n_mels=32, fmin=50.0, fmax=3800.0, top_db=None)
    check_parity(y, sr=8000, n_fft=256, hop_length=80, n_mels=40, power=3.0, top_db=80.0)


@needs_librosa
@pytest.mark.parametrize("pad_mode", ["reflect", "edge", "symmetric"])
def test_parity_pad_modes(rng, pad_mode):
    check_parity(signal(rng, 3001), sr=8000, n_fft=256, hop_length=80, n_mels=40, pad_mode=pad_mode, top_db=None)


@needs_librosa
def test_parity_center_false(rng):
    y = signal(rng, 3001)
    check_parity(y, sr=8000, n_fft=256, hop_length=80, n_mels=40, center=False, top_db=None)
    check_parity(y[:256], sr=8000, n_fft=256, hop_length=80, n_mels=40, center=False, top_db=None)


@needs_librosa
def test_parity_fsdd_clip(fsdd_dir):
    import soundfile as sf

    y, sr = sf.read(fsdd_dir / "7_jackson_0.wav", dtype="float32")
    check_parity(y, sr=sr, n_fft=256, hop_length=80, n_mels=40)


def test_float64_input_is_accepted(rng):
    y = rng.standard_normal(4000) * 0.1
    a = log_mel(y, sr=8000, n_fft=256, hop_length=80, n_mels=40)
    b = log_mel(y.astype(np.float32), sr=8000, n_fft=256, hop_length=80, n_mels=40)
    np.testing.assert_array_equal(a, b)


# --- parity: the big sweep ----------------------------------------------------------

SWEEP = list(
    itertools.product(
        [8000, 16000, 22050, 44100],
        [(256, 80, None), (400, 160, None), (512, 128, 300), (255, 100, None), (2048, 512, 1024)],
        [False, True],
        ["slaney", None],
        [1.0, 2.0],
        [None, 80.0],
    )
)


@needs_librosa
@pytest.mark.slow
@pytest.mark.parametrize("sr,fft,htk,norm,power,top_db", SWEEP)
def test_parity_sweep(rng, sr, fft, htk, norm, power, top_db):
    n_fft, hop, win = fft
    for n, kind in ((1, "noise"), (n_fft - 1, "noise"), (n_fft, "silence"), (sr // 3 + 7, "speechlike")):
        check_parity(
            signal(rng, n, kind), sr=sr, n_fft=n_fft, hop_length=hop, win_length=win, n_mels=40,
            htk=htk, norm=norm, power=power, top_db=top_db,
        )


# --- building blocks ----------------------------------------------------------------


@needs_librosa
@pytest.mark.parametrize("htk", [False, True])
def test_mel_scale_matches_librosa(htk):
    f = np.array([0.0, 20.0, 440.0, 999.0, 1000.0, 1001.0, 4000.0, 22050.0])
    np.testing.assert_allclose(hz_to_mel(f, htk=htk), librosa.hz_to_mel(f, htk=htk), rtol=1e-12, atol=1e-12)
    m = hz_to_mel(f, htk=htk)
    np.testing.assert_allclose(mel_to_hz(m, htk=htk), f, rtol=1e-10, atol=1e-9)
    assert hz_to_mel(1000.0) == pytest.approx(15.0)


@needs_librosa
@pytest.mark.parametrize(
    "sr,n_fft,n_mels,fmin,fmax,htk,norm",
    [(8000, 256, 40, 0.0, None, False, "slaney"), (16000, 400, 40, 20.0, 7600.0, True, None),
     (22050, 2048, 128, 0.0, None, False, None), (44100, 1024, 64, 100.0, 16000.0, True, "slaney")],
)
def test_filterbank_matches_librosa(sr, n_fft, n_mels, fmin, fmax, htk, norm):
    fb = mel_filterbank(sr, n_fft, n_mels, fmin, fmax, htk, norm)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)
    assert fb.dtype == np.float32 and fb.shape == (n_mels, 1 + n_fft // 2)
    np.testing.assert_allclose(fb, ref, rtol=1e-6, atol=1e-9)


def test_filterbank_is_cached_and_read_only():
    a = mel_filterbank(8000, 256, 40)
    assert a is mel_filterbank(8000, 256, 40)
    with pytest.raises(ValueError):
        a[0, 0] = 1.0


def test_empty_filters_warn():
    with pytest.warns(UserWarning, match="empty mel filters"):
        mel_filterbank(8000, 64, 60, 0.0, None, False, "slaney")


def test_frame_count_formula():
    for n in (1, 2, 79, 80, 81, 255, 256, 257, 8000):
        for n_fft in (255, 256):
            for center in (True, False):
                if not center and n < n_fft:
                    assert n_frames(n, n_fft, 80, center) == 0
                    continue
                got = log_mel(np.zeros(n, np.float32), sr=8000, n_fft=n_fft, hop_length=80, n_mels=8, center=center)
                assert got.shape[1] == n_frames(n, n_fft, 80, center)
                if center:
                    assert got.shape[1] == 1 + (n - n_fft % 2) // 80


def test_output_is_fresh_float32_and_input_untouched(rng):
    y = signal(rng, 4000)
    y0 = y.copy()
    out = log_mel(y, sr=8000, n_fft=256, hop_length=80, n_mels=40)
    np.testing.assert_array_equal(y, y0)
    assert out.dtype == np.float32 and out.flags.c_contiguous and out.flags.owndata


# --- streaming ----------------------------------------------------------------------

STREAM_CASES = [
    dict(sr=8000, n_fft=256, hop_length=80, n_mels=40),
    dict(sr=16000, n_fft=400, hop_length=160, n_mels=40),
    dict(sr=16000, n_fft=512, hop_length=160, win_length=400, n_mels=64, htk=True, norm=None),
    dict(sr=8000, n_fft=255, hop_length=77, n_mels=20, power=1.0),
    dict(sr=8000, n_fft=256, hop_length=300, n_mels=16),  # hop > n_fft: samples skipped
    dict(sr=8000, n_fft=256, hop_length=80, n_mels=40, pad_mode="reflect"),
    dict(sr=8000, n_fft=256, hop_length=80, n_mels=40, pad_mode="edge"),
    dict(sr=8000, n_fft=256, hop_length=80, n_mels=40, center=False),
]


def stream_all(stream, y, sizes):
    parts, i = [], 0
    for k in sizes:
        parts.append(stream.push(y[i : i + k]))
        i += k
    assert i >= y.shape[0]
    parts.append(stream.flush())
    for p in parts:
        assert p.dtype == np.float32 and p.ndim == 2 and p.shape[0] == stream.n_mels
    return np.concatenate(parts, axis=1)


def random_sizes(rng, n, high):
    sizes = []
    while sum(sizes) < n:
        sizes.append(int(rng.integers(0, high)))
    return sizes


@pytest.mark.parametrize("kw", STREAM_CASES)
@pytest.mark.parametrize("n", [1, 100, 129, 255, 256, 257, 5003])
def test_stream_equals_batch(rng, kw, n):
    y = signal(rng, n)
    stream = LogMelStream(**kw)
    if kw.get("center", True) is False and n < kw["n_fft"]:
        expected = np.zeros((kw["n_mels"], 0), np.float32)
    else:
        expected = log_mel(y, top_db=None, **kw)
    for sizes in (random_sizes(rng, n, 700), random_sizes(rng, n, 3), [n], [1] * n if n < 300 else [7] * (n // 7 + 1)):
        got = stream_all(stream, y, sizes)  # flush resets, so the stream is reused
        np.testing.assert_array_equal(got, expected)


def test_stream_emits_frames_early_and_keeps_little(rng):
    kw = dict(sr=8000, n_fft=256, hop_length=80, n_mels=40)
    s = LogMelStream(**kw)
    y = signal(rng, 80000)
    emitted = 0
    for i in range(0, y.shape[0], 800):
        emitted += s.push(y[i : i + 800]).shape[1]
        assert s._buf.shape[0] < 256 + 800  # bounded memory
        # every frame whose samples are all in is out (the right padding adds 2 more)
        assert emitted == n_frames(i + 800, 256, 80) - 2 or i + 800 < 256
    assert emitted + s.flush().shape[1] == n_frames(80000, 256, 80)
    assert s.frames_emitted == 0 and s.samples_seen == 0  # flush resets


def test_stream_does_not_alias_the_callers_buffer(rng):
    kw = dict(sr=8000, n_fft=256, hop_length=80, n_mels=40)
    y = signal(rng, 1000)
    s = LogMelStream(**kw)
    buf = y[:150].copy()
    parts = [s.push(buf)]
    buf[:] = 0.0  # the caller reuses its buffer
    parts += [s.push(y[150:]), s.flush()]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), log_mel(y, top_db=None, **kw))


def test_stream_empty_signal():
    s = LogMelStream(sr=8000, n_fft=256, hop_length=80, n_mels=40)
    assert s.push(np.zeros(0, np.float32)).shape == (40, 0)
    assert s.flush().shape == (40, 0)


def test_stream_rejects_top_db():
    with pytest.raises(TypeError):
        LogMelStream(sr=8000, n_fft=256, hop_length=80, n_mels=40, top_db=80.0)


# --- errors -------------------------------------------------------------------------

BASE = dict(sr=8000, n_fft=256, hop_length=80, n_mels=40)


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(n_fft=0), "n_fft"),
        (dict(n_fft=256.0), "n_fft"),
        (dict(hop_length=0), "hop_length"),
        (dict(win_length=300), "win_length=300"),
        (dict(n_mels=0), "n_mels"),
        (dict(sr=-8000), "sr"),
        (dict(sr=float("nan")), "sr"),
        (dict(fmin=-1.0), "fmin"),
        (dict(fmax=5000.0), "Nyquist"),
        (dict(fmin=3000.0, fmax=2000.0), "fmax"),
        (dict(norm="l2"), "norm"),
        (dict(pad_mode="wrap"), "pad_mode"),
        (dict(power=0.0), "power"),
        (dict(amin=0.0), "amin"),
        (dict(top_db=-1.0), "top_db"),
        (dict(center="yes"), "center"),
        (dict(htk=1), "htk"),
        (dict(n_mels=[40]), "plain numbers"),
    ],
)
def test_bad_parameters(change, match):
    with pytest.raises(ParameterError, match=match):
        log_mel(np.zeros(1000, np.float32), **{**BASE, **change})


@pytest.mark.parametrize(
    "y,match",
    [
        (np.zeros(0, np.float32), "empty"),
        (np.zeros((2, 100), np.float32), "1-D"),
        (np.zeros(100, np.int16), "floating"),
        (np.array([0.0, np.nan] * 50, np.float32), "NaN"),
        (np.array([0.0, np.inf] * 50, np.float32), "NaN or Inf"),
    ],
)
def test_bad_signals(y, match):
    with pytest.raises(ParameterError, match=match):
        log_mel(y, **BASE)


def test_center_false_too_short():
    with pytest.raises(ParameterError, match="center=False"):
        log_mel(np.zeros(100, np.float32), center=False, **BASE)


def test_stream_bad_chunk():
    s = LogMelStream(**BASE)
    with pytest.raises(ParameterError, match="chunk"):
        s.push(np.zeros((2, 3), np.float32))
