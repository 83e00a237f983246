"""bitnet.load_audio: formats, bit depths, channels, resampling, and every failure."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from bitnet import AudioError, BitnetError, ParameterError, load_audio

SR = 8000


def sine(freq=440.0, n=SR, sr=SR, amp=0.5):
    t = np.arange(n) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_freq(y, sr):
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return np.fft.rfftfreq(len(y), 1 / sr)[int(np.argmax(spec))]


def raises_naming(path_or_name, match=None, exc=AudioError):
    """pytest.raises that also checks the message names the file."""

    class _Ctx:
        def __enter__(self):
            self._cm = pytest.raises(exc, match=match)
            self._info = self._cm.__enter__()
            return self._info

        def __exit__(self, *a):
            out = self._cm.__exit__(*a)
            msg = str(self._info.value)
            assert str(path_or_name) in msg, msg
            assert "\n" not in msg
            assert isinstance(self._info.value, BitnetError)
            return out

    return _Ctx()


# --- formats and bit depths ---------------------------------------------------------

# (format, subtype, tolerance against the float original)
FORMATS = [
    ("WAV", "PCM_U8", 1 / 128),
    ("WAV", "PCM_16", 1 / 32768),
    ("WAV", "PCM_24", 2**-23),
    ("WAV", "PCM_32", 2**-31 + 1e-7),
    ("WAV", "FLOAT", 0.0),
    ("WAV", "DOUBLE", 1e-7),
    ("FLAC", "PCM_S8", 1 / 128),
    ("FLAC", "PCM_16", 1 / 32768),
    ("FLAC", "PCM_24", 2**-23),
]


@pytest.mark.parametrize("fmt,subtype,tol", FORMATS)
def test_formats_and_bit_depths(tmp_path, fmt, subtype, tol):
    x = sine()
    path = tmp_path / f"x_{subtype}.{fmt.lower()}"
    sf.write(path, x, SR, format=fmt, subtype=subtype)
    y, sr = load_audio(path)
    assert sr == SR and y.dtype == np.float32 and y.shape == x.shape and y.flags.c_contiguous
    assert np.abs(y - x).max() <= tol + 1e-9


def test_unsigned_8bit_is_centred(tmp_path):
    path = tmp_path / "u8.wav"
    x = np.concatenate([np.zeros(100), np.full(100, -0.5), np.full(100, 0.5)]).astype(np.float32)
    sf.write(path, x, SR, subtype="PCM_U8")
    raw = path.read_bytes()[44:]  # the stored bytes: 128 is silence
    assert raw[0] == 128
    y, _ = load_audio(path)
    np.testing.assert_array_equal(y[:100], 0.0)
    np.testing.assert_allclose(y[100:200], -0.5, atol=1 / 128)
    np.testing.assert_allclose(y[200:], 0.5, atol=1 / 128)


def test_ogg_vorbis(tmp_path):
    path = tmp_path / "x.ogg"
    x = sine(n=2 * SR)
    sf.write(path, x, SR, format="OGG", subtype="VORBIS")
    y, sr = load_audio(path)
    assert sr == SR and y.dtype == np.float32
    assert abs(len(y) - len(x)) <= 1024
    assert abs(peak_freq(y, sr) - 440.0) < 5.0  # lossy, but the tone survives


def test_stereo_is_mixed_to_mono(tmp_path):
    left, right = sine(440.0), sine(1000.0, amp=0.25)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), SR, subtype="FLOAT")
    y, _ = load_audio(path)
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-7)


def test_file_object_and_bytesio(tmp_path):
    x = sine()
    path = tmp_path / "x.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    with open(path, "rb") as fh:
        y, sr = load_audio(fh)
    np.testing.assert_array_equal(y, x)
    buf = io.BytesIO(path.read_bytes())
    buf.seek(0)
    y2, _ = load_audio(buf)
    np.testing.assert_array_equal(y2, x)


def test_fsdd_clip(fsdd_dir):
    y, sr = load_audio(fsdd_dir / "3_theo_0.wav")
    assert sr == 8000 and y.dtype == np.float32 and y.ndim == 1 and len(y) > 1000
    assert np.abs(y).max() <= 1.0
    y16, sr16 = load_audio(str(fsdd_dir / "3_theo_0.wav"), sr=16000)
    assert sr16 == 16000 and abs(len(y16) - 2 * len(y)) <= 1


# --- resampling ---------------------------------------------------------------------


@pytest.mark.parametrize("orig,target", [(8000, 16000), (44100, 16000), (22050, 8000), (16000, 8000)])
def test_resampling_matches_scipy(tmp_path, orig, target):
    import scipy.signal
    from math import gcd

    x = sine(440.0, n=orig, sr=orig)
    path = tmp_path / "x.wav"
    sf.write(path, x, orig, subtype="FLOAT")
    y, sr = load_audio(path, sr=target)
    g = gcd(orig, target)
    ref = scipy.signal.resample_poly(x, target // g, orig // g)
    assert sr == target and y.dtype == np.float32
    np.testing.assert_allclose(y, ref, atol=1e-6)
    assert abs(peak_freq(y, target) - 440.0) < 2.0


def test_same_rate_is_not_resampled(tmp_path):
    x = sine()
    path = tmp_path / "x.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    y, sr = load_audio(path, sr=SR)
    np.testing.assert_array_equal(y, x)


# --- arrays -------------------------------------------------------------------------


def test_array_1d_and_2d():
    x = sine()
    y, sr = load_audio(x, orig_sr=SR)
    np.testing.assert_array_equal(y, x)
    assert sr == SR and y is not x
    y2, _ = load_audio(np.stack([x, 0 * x]), orig_sr=SR)  # (channels, samples)
    np.testing.assert_allclose(y2, x / 2)
    y3, sr3 = load_audio(x, sr=16000, orig_sr=SR)
    assert sr3 == 16000 and len(y3) == 2 * len(x)
    y4, sr4 = load_audio(x.astype(np.float64), sr=SR)  # no orig_sr: taken to be at sr
    assert sr4 == SR and y4.dtype == np.float32


def test_integer_arrays_are_scaled():
    y, _ = load_audio(np.array([0, 16384, -32768], np.int16), orig_sr=SR)
    np.testing.assert_array_equal(y, [0.0, 0.5, -1.0])
    y, _ = load_audio(np.array([128, 192, 0], np.uint8), orig_sr=SR)
    np.testing.assert_array_equal(y, [0.0, 0.5, -1.0])


@pytest.mark.parametrize(
    "arr,match",
    [
        (np.zeros(0, np.float32), "zero samples"),
        (np.zeros((2, 0), np.float32), "zero samples"),
        (np.zeros((2, 3, 4), np.float32), "3-D"),
        (np.zeros(()), "0-D"),
        (np.array([0.0, np.nan, 1.0], np.float32), "NaN/Inf"),
        (np.array([0.0, np.inf], np.float64), "NaN/Inf"),
        (np.array([0.0, 1e300]), "NaN/Inf"),
        (np.zeros((16000, 2), np.float32), r"pass y\.T"),
        (np.zeros(10, np.complex64), "real numbers"),
        (np.zeros(10, bool), "real numbers"),
        (np.array(["a", "b"]), "real numbers"),
    ],
)
def test_bad_arrays(arr, match):
    with raises_naming("array", match=match):
        load_audio(arr, orig_sr=SR)


@pytest.mark.parametrize("rate", [0, -8000, 8000.5, 2e6, float("nan"), "8000", True])
def test_bad_array_rate(rate):
    with raises_naming("array", match="sample rate"):
        load_audio(sine(), orig_sr=rate)


def test_array_without_any_rate():
    with raises_naming("array", match="orig_sr"):
        load_audio(sine())


@pytest.mark.parametrize("rate", [0, -1, 44100.5, 5_000_000])
def test_bad_target_rate_is_a_parameter_error(rate):
    with pytest.raises(ParameterError, match="sample rate"):
        load_audio(sine(), sr=rate, orig_sr=SR)


def test_float_rate_that_is_whole_is_fine():
    y, sr = load_audio(sine(), sr=16000.0, orig_sr=8000.0)
    assert sr == 16000 and isinstance(sr, int)


# --- bad files ----------------------------------------------------------------------


def write_wav(tmp_path, name="good.wav", n=SR, subtype="PCM_16"):
    path = tmp_path / name
    sf.write(path, sine(n=n), SR, subtype=subtype)
    return path


def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with raises_naming(path, match="no such file"):
        load_audio(path)
    with raises_naming(path, match="no such file"):
        load_audio(str(path))


def test_directory(tmp_path):
    with raises_naming(tmp_path, match="directory"):
        load_audio(tmp_path)


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 20)
    with raises_naming(path, match="not a recognised audio file"):
        load_audio(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with raises_naming(path, match="0 bytes"):
        load_audio(path)


def test_corrupt_header(tmp_path):
    good = write_wav(tmp_path).read_bytes()
    path = tmp_path / "badhdr.wav"
    path.write_bytes(good[:20] + b"\xff" * 16 + good[36:])  # garbage in the fmt chunk
    with raises_naming(path, match="corrupt"):
        load_audio(path)


def test_header_only(tmp_path):
    good = write_wav(tmp_path).read_bytes()
    path = tmp_path / "headonly.wav"
    path.write_bytes(good[:30])
    with raises_naming(path):
        load_audio(path)


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_wav(tmp_path, keep):
    good = write_wav(tmp_path).read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(good[: int(len(good) * keep)])
    with raises_naming(path, match="truncated"):
        load_audio(path)
    with open(path, "rb") as fh, raises_naming(path, match="truncated"):
        load_audio(fh)


def test_truncated_flac(tmp_path):
    path = tmp_path / "x.flac"
    sf.write(path, sine(n=4 * SR), SR, format="FLAC")
    cut = tmp_path / "cut.flac"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with raises_naming(cut, match="truncated|corrupt"):
        load_audio(cut)


def test_unfinished_recording_header_reads_what_is_there(tmp_path):
    # a recorder that died before writing the sizes leaves data size 0: not "truncated"
    good = bytearray(write_wav(tmp_path, subtype="FLOAT").read_bytes())
    i = good.index(b"data")
    good[i + 4 : i + 8] = b"\x00\x00\x00\x00"
    path = tmp_path / "unfinished.wav"
    path.write_bytes(bytes(good))
    try:
        y, _ = load_audio(path)
    except AudioError as exc:  # libsndfile may refuse it; then the message must be clear
        assert str(path) in str(exc)
    else:
        np.testing.assert_array_equal(y, sine()[: len(y)])


def test_zero_samples_file(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, np.float32), SR)
    with raises_naming(path, match="zero samples"):
        load_audio(path)


def test_nan_in_float_wav(tmp_path):
    x = sine()
    x[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    with raises_naming(path, match="NaN/Inf"):
        load_audio(path)


def test_orig_sr_with_a_file_is_refused(tmp_path):
    with pytest.raises(ParameterError, match="orig_sr"):
        load_audio(write_wav(tmp_path), orig_sr=8000)


def test_bytes_are_refused_with_a_hint():
    with pytest.raises(AudioError, match="BytesIO"):
        load_audio(b"RIFF....")


def test_garbage_file_object():
    with raises_naming("<file object>", match="not a recognised"):
        load_audio(io.BytesIO(b"\x00\x01" * 500))


@pytest.mark.parametrize(
    "arr,where",
    [
        (np.array([0.0, 0.1, np.nan, np.nan], np.float32), "2 NaN/Inf samples (the first is sample 2)"),
        (np.array([[0.0, 0.1, 0.2], [0.3, np.inf, 0.0]], np.float32), "1 NaN/Inf sample (the first is sample 1 of channel 1)"),
        (np.array([[np.nan, 0.0], [0.0, 0.0]], np.float64), "1 NaN/Inf sample (the first is sample 0 of channel 0)"),
    ],
)
def test_nan_message_is_plain_words(arr, where):
    with pytest.raises(AudioError) as e:
        load_audio(arr, sr=SR)
    msg = str(e.value)
    assert msg == f"array: {where}"
    assert "np." not in msg and "(" + "0, 0)" not in msg


def test_nan_message_in_a_stereo_file_names_sample_and_channel(tmp_path):
    x = np.zeros((1000, 2), np.float32)
    x[700, 1] = np.inf
    path = tmp_path / "inf.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert str(e.value).endswith("1 NaN/Inf sample (the first is sample 700 of channel 1)")
    assert "np.int64" not in str(e.value)
