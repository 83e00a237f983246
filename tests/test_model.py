"""The Python API: bitnet.load / infer / Model / Prediction."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading

import numpy as np
import pytest
import soundfile as sf

import bitnet
from bitnet import AudioError, ModelFileError, ParameterError
from bitnet.testing.digits import digits_graph
from bitnet.modelfile import save_model
from bitnet.results import softmax

import bitnet.features  # noqa: E402,F401  (real imports: an import bug fails, never skips)
import bitnet.graph  # noqa: E402,F401

from bitnet import model as model_mod  # noqa: E402
from bitnet.features import clip_features, sliding_windows  # noqa: E402

from test_modelfile import reseal, split_file  # noqa: E402

SR = 8000


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small random-weight digits model (fast to run)."""
    header, tensors = digits_graph(seed=1, channels=(8, 16, 16))
    path = tmp_path_factory.mktemp("m") / "small.bnn"
    save_model(path, header, tensors)
    return bitnet.load(path)


def tone(seconds, sr=SR, freq=440.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * freq * t) * np.hanning(t.size) + 0.02 * rng.standard_normal(t.size)
    return y.astype(np.float32)


def wav(path, y, sr=SR, subtype="PCM_16"):
    sf.write(str(path), y, sr, subtype=subtype)
    return path


# ----------------------------------------------------------------- loading


def test_load_default():
    m = bitnet.load()
    assert m.path == model_mod.DEFAULT_MODEL and m.path.is_file()
    assert m.labels == tuple(str(i) for i in range(10))
    assert m.sample_rate == 8000 and m.frontend.n_mels == 40 and m.frontend.frames == 101
    assert abs(m.window_seconds - 1.0) < 0.02
    assert isinstance(m.provenance, dict)
    assert "default.bnn" in repr(m)


def test_load_errors_name_the_file(tmp_path, small):
    with pytest.raises(ModelFileError, match="nope.bnn"):
        bitnet.load(tmp_path / "nope.bnn")
    bad = tmp_path / "bad.bnn"
    data = bytearray(small.path.read_bytes())
    data[-3] ^= 0x10
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="altered or corrupt"):
        bitnet.load(bad)


def _forge(tmp_path, small, edit):
    index, payload = split_file(small.path.read_bytes())
    header = json.loads(index["__metadata__"]["bitnet"])
    edit(header)
    p = tmp_path / "forged.bnn"
    p.write_bytes(reseal(index, payload, header))
    return p


@pytest.mark.parametrize(
    "edit",
    [
        lambda h: h["layers"][3]["attrs"].update(in_channels=9),  # weight shape no longer fits
        lambda h: h["layers"][3]["attrs"].update(out_channels=17),
        lambda h: h["layers"][1]["attrs"].update(output="affine"),  # tensors for another mode
        lambda h: h["layers"][5].update(inputs=["nowhere"]),
        lambda h: h["layers"][2].update(op="teleport"),
        lambda h: h.update(labels=h["labels"][:9]),  # 10 logits, 9 labels
        lambda h: h["frontend"].update(n_mels=64),  # frontend does not match the input
        lambda h: h["frontend"].update(sample_rate=-5),
    ],
)
def test_inconsistent_graph_is_a_model_file_error(tmp_path, small, edit):
    p = _forge(tmp_path, small, edit)
    with pytest.raises(ModelFileError) as e:
        bitnet.load(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_stray_tensor_rejected(tmp_path):
    header, tensors = digits_graph(seed=1, channels=(8, 16, 16))
    tensors["stray"] = np.zeros(2, np.float32)
    p = save_model(tmp_path / "s.bnn", header, tensors)
    with pytest.raises(ModelFileError, match="stray"):
        bitnet.load(p)


# ----------------------------------------------------------------- input forms


def test_every_input_form_agrees(tmp_path, small):
    y = tone(0.8)
    path = wav(tmp_path / "a.wav", y)
    y16 = sf.read(str(path), dtype="float32")[0]  # what the file holds (16-bit rounding)
    by_path = small.predict(str(path))
    by_pathlib = small.predict(path)
    with open(path, "rb") as f:
        by_file = small.predict(f)
    by_bytes = small.predict(io.BytesIO(path.read_bytes()))
    by_array = small.predict(y16, sample_rate=SR)
    for p in (by_pathlib, by_file, by_bytes, by_array):
        np.testing.assert_array_equal(p.probabilities, by_path.probabilities)
    assert by_path.source == str(path)
    assert isinstance(by_path, bitnet.Prediction)
    assert by_path.probabilities.dtype == np.float32 and by_path.probabilities.shape == (10,)
    assert abs(float(by_path.probabilities.sum()) - 1) < 1e-5
    assert by_path.label == by_path.labels[by_path.index]
    assert by_path.probability == pytest.approx(float(by_path.probabilities.max()))


def test_int_array_input(small):
    y = tone(0.5)
    yi = np.round(y * 32767).astype(np.int16)
    a = small.predict(yi, sample_rate=SR)
    b = small.predict(yi.astype(np.float32) / 32768, sample_rate=SR)
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)


def test_array_needs_sample_rate(small):
    with pytest.raises(ParameterError, match="sample_rate"):
        small.predict(tone(0.5))


def test_bad_inputs(small, tmp_path):
    with pytest.raises(ParameterError):
        small.predict(42)
    with pytest.raises(AudioError, match="missing.wav"):
        small.predict(tmp_path / "missing.wav")
    with pytest.raises(AudioError):
        small.predict(np.array([np.nan, 1.0] * 1000, np.float32), sample_rate=SR)
    with pytest.raises(AudioError):
        small.predict(np.zeros(0, np.float32), sample_rate=SR)
    with pytest.raises(ParameterError):
        small.predict(tone(2.0), sample_rate=SR, hop=0)


def test_batch_equals_single(small, tmp_path):
    clips = [tone(0.4, seed=1), tone(1.0, freq=900, seed=2), tone(2.7, freq=200, seed=3)]
    path = wav(tmp_path / "b.wav", tone(1.3, seed=4))
    batch = small.predict([*clips, path], sample_rate=SR)
    assert isinstance(batch, list) and len(batch) == 4
    singles = [small.predict(c, sample_rate=SR) for c in clips] + [small.predict(path)]
    for b, s in zip(batch, singles):
        np.testing.assert_allclose(b.probabilities, s.probabilities, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b.window_probabilities, s.window_probabilities, rtol=1e-5, atol=1e-6)
        assert b.label == s.label
    assert small.predict([]) == []
    assert len(small.predict((clips[0],), sample_rate=SR)) == 1


# ----------------------------------------------------------------- clip policy


def test_resampling(small, tmp_path):
    from scipy.signal import resample_poly

    y44 = tone(1.5, sr=44100, freq=500)
    p_file = small.predict(wav(tmp_path / "r.wav", y44, sr=44100, subtype="FLOAT"))
    p_arr = small.predict(y44, sample_rate=44100)
    np.testing.assert_array_equal(p_file.probabilities, p_arr.probabilities)
    y8 = resample_poly(y44.astype(np.float64), 80, 441).astype(np.float32)
    p_8k = small.predict(y8, sample_rate=SR)
    np.testing.assert_allclose(p_arr.probabilities, p_8k.probabilities, atol=1e-5)


def test_short_clip_is_padded_to_one_window(small):
    y = tone(0.3)
    p = small.predict(y, sample_rate=SR)
    assert p.window_probabilities.shape == (1, 10)
    np.testing.assert_array_equal(p.window_starts, [0.0])
    logits = small.logits(clip_features(y, small.frontend)[None])
    np.testing.assert_allclose(p.probabilities, softmax(logits)[0], atol=1e-6)
    # exactly one window long: still one window
    assert small.predict(tone(small.window_seconds), sample_rate=SR).window_probabilities.shape[0] == 1


def test_long_clip_sliding_windows_mean_of_probabilities(small):
    y = tone(3.2, freq=300)
    p = small.predict(y, sample_rate=SR)
    hop_frames = small.frontend.frames // 2
    feats = sliding_windows(y, small.frontend, hop_frames)
    n = feats.shape[0]
    assert n > 1 and p.window_probabilities.shape == (n, 10)
    probs = softmax(small.logits(feats))
    np.testing.assert_allclose(p.window_probabilities, probs, atol=1e-6)
    np.testing.assert_allclose(p.probabilities, probs.mean(axis=0), atol=1e-6)
    step = hop_frames * small.frontend.hop_length / SR
    # regular starts every hop, plus one window aligned to the end of the clip
    np.testing.assert_allclose(p.window_starts[:-1], np.arange(n - 1) * step)
    last_frame = 1 + y.size // small.frontend.hop_length  # frames of the whole clip
    assert p.window_starts[-1] == pytest.approx((last_frame - small.frontend.frames) * small.frontend.hop_length / SR)
    assert p.end == pytest.approx(p.window_starts[-1] + small.window_seconds)
    # a custom hop gives more windows
    q = small.predict(y, sample_rate=SR, hop=0.1)
    assert q.window_probabilities.shape[0] > n


def test_top_k(small):
    p = small.predict(tone(0.5), sample_rate=SR)
    top = p.top_k(3)
    assert len(top) == 3 and top[0] == (p.label, p.probability)
    assert [v for _, v in top] == sorted((v for _, v in top), reverse=True)
    assert len(p.top_k(100)) == 10
    assert sorted(lab for lab, _ in p.top_k(10)) == sorted(p.labels)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ParameterError):
            p.top_k(bad)
    d = p.to_dict(2)
    assert d["label"] == p.label and len(d["top_k"]) == 2
    json.dumps(d)


# ----------------------------------------------------------------- stream and timeline


def _chunks(y, rng):
    i = 0
    while i < y.size:
        n = int(rng.integers(1, 2500))
        yield y[i : i + n]
        i += n


def test_stream_equals_whole_file_windows(small, rng):
    y = tone(4.1, freq=350)
    whole = small.predict(y, sample_rate=SR)
    preds = list(small.stream(_chunks(y, rng), SR))
    assert len(preds) == whole.window_probabilities.shape[0]
    got = np.stack([p.probabilities for p in preds])
    np.testing.assert_array_equal(got, whole.window_probabilities)
    np.testing.assert_allclose([p.start for p in preds], whole.window_starts)
    assert all(isinstance(p, bitnet.Prediction) and p.window_probabilities.shape == (1, 10) for p in preds)


def test_stream_resamples(small, rng):
    y = tone(3.0, sr=16000, freq=350)
    whole = small.predict(y, sample_rate=16000)
    preds = list(small.stream(_chunks(y, rng), 16000))
    assert len(preds) == whole.window_probabilities.shape[0]
    got = np.stack([p.probabilities for p in preds])
    # the streaming resampler equals resample_poly up to float rounding
    np.testing.assert_allclose(got, whole.window_probabilities, atol=0.05)


def test_stream_int16_chunks_and_errors(small):
    y = np.round(tone(2.0) * 32767).astype(np.int16)
    a = list(small.stream([y[:5000], y[5000:]], SR))
    b = list(small.stream([y.astype(np.float32) / 32768], SR))
    np.testing.assert_allclose(np.stack([p.probabilities for p in a]), np.stack([p.probabilities for p in b]), atol=1e-6)
    with pytest.raises(AudioError):
        list(small.stream([np.zeros((2, 100), np.float32)], SR))
    with pytest.raises(AudioError):
        list(small.stream([np.full(100, np.inf, np.float32)], SR))
    with pytest.raises(ParameterError):
        list(small.stream([y], 0))


def test_timeline(small, tmp_path):
    y = tone(5.0, freq=250)
    path = wav(tmp_path / "long.wav", y)
    segs = small.timeline(path)
    assert segs[0].start == 0 and segs[-1].end == pytest.approx(5.0, abs=1e-3)
    steps = np.diff([s.start for s in segs])
    np.testing.assert_allclose(steps, small.window_seconds / 2, atol=1e-3)
    assert all(s.label in small.labels and 0 < s.probability <= 1 for s in segs)
    segs2 = small.timeline(path, window=2.0, hop=1.5)
    assert [(round(s.start, 3), round(s.end, 3)) for s in segs2] == [(0.0, 2.0), (1.5, 3.5), (3.0, 5.0)]
    segs3 = small.timeline(path, window=2.0, hop=2.0)  # a tail segment covers the end
    assert [(round(s.start, 3), round(s.end, 3)) for s in segs3] == [(0.0, 2.0), (2.0, 4.0), (4.0, 5.0)]
    with pytest.raises(ParameterError):
        small.timeline(path, window=-1)


# ----------------------------------------------------------------- threads, infer, summary


def test_thread_safety(small):
    clips = [tone(0.5 + 0.4 * i, freq=200 + 90 * i, seed=i) for i in range(6)]
    serial = [small.predict(c, sample_rate=SR).probabilities for c in clips]
    results = {}
    errors = []

    def work(t):
        try:
            for rep in range(4):
                for i, c in enumerate(clips):
                    results[(t, rep, i)] = small.predict(c, sample_rate=SR).probabilities
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for (t, rep, i), probs in results.items():
        np.testing.assert_array_equal(probs, serial[i])


def test_infer_caches_default_and_accepts_models(small, tmp_path):
    y = tone(0.6)
    a = bitnet.infer(y, sample_rate=SR)
    m1 = model_mod._cached(None)
    assert model_mod._cached(None) is m1
    b = bitnet.infer(y, model=small, sample_rate=SR)
    c = bitnet.infer(y, model=small.path, sample_rate=SR)
    np.testing.assert_array_equal(b.probabilities, c.probabilities)
    assert a.labels == small.labels
    assert isinstance(bitnet.infer([y, y], sample_rate=SR), list)


def test_summary(small):
    text = small.summary()
    for needle in ("conv0", "qconv", "bconv", "global_avgpool", "binary", "labels (10)", "provenance", "untrained"):
        assert needle in text, needle
    d = small.summary(as_dict=True)
    assert [r["name"] for r in d["layers"]] == [layer["name"] for layer in small.header["layers"]]
    conv1 = next(r for r in d["layers"] if r["name"] == "conv1")
    h, w = conv1["output_shape"][:2]
    assert conv1["binary_macs"] == h * w * 16 * 9 * 8
    assert conv1["bytes"] * 8 < conv1["float32_bytes"] * 8
    assert d["totals"]["binary_macs"] > 0
    json.dumps(d, default=str)


def test_summary_shapes_match_graph(small):
    """The summary's shape inference agrees with the graph's own."""
    d = small.summary(as_dict=True)
    for row, layer in zip(d["layers"], small.header["layers"]):
        info = small.graph.value_info[layer["output"]]
        assert tuple(info.logical_shape) == tuple(row["output_shape"]), layer["name"]


def test_untrained_flag(small):
    assert small.untrained  # the placeholder provenance says so


# ----------------------------------------------------------------- first-run notice, imports


def test_compile_notice_once_when_cache_cold(small, tmp_path, monkeypatch, capsys):
    from bitnet.compile import notice

    monkeypatch.setenv("BITNET_CACHE_DIR", str(tmp_path / "cache"))   # the one cache resolver
    monkeypatch.setattr(notice, "_warm", False)
    # the JIT kernels' notice (the ahead-of-time build's own notice: tests/test_aot.py)
    monkeypatch.setattr(notice, "_jit_in_use", lambda: True)
    x = small.windows(tone(0.5))[0]
    small.logits(x)
    assert "compiling kernels" in capsys.readouterr().err
    small.logits(x)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(notice, "_warm", False)  # a new process with a warm cache
    small.logits(x)
    assert capsys.readouterr().err == ""
    assert list((tmp_path / "cache").iterdir())


def test_infer_path_imports_no_torch_nor_scipy(tmp_path):
    path = wav(tmp_path / "c.wav", tone(0.7))
    code = (
        "import sys, bitnet; p = bitnet.infer(sys.argv[1]); "
        "assert p.label in p.labels; "
        "bad = [m for m in ('torch', 'scipy.signal', 'librosa') if m in sys.modules]; "
        "assert not bad, bad"
    )
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr


# ----------------------------------------------------------------- tensor values at load


@pytest.mark.parametrize("op,role,bad", [("bconv", "scale", np.nan), ("bconv", "bias", np.inf),
                                         ("bconv", "bias", -np.inf), ("dense", "weight", np.nan),
                                         ("dense", "bias", np.nan)])
def test_non_finite_float_tensor_is_refused(tmp_path, op, role, bad):
    """A file that passes its checksum (written by save_model) but holds NaN or Inf in a
    float tensor would answer NaN probabilities: the loader refuses it, naming the
    layer and the tensor."""
    header, tensors = digits_graph(seed=1, channels=(8, 16, 16))
    layer = next(la for la in header["layers"] if la["op"] == op and role in la.get("tensors", {}))
    tname = layer["tensors"][role]
    t = tensors[tname].copy()
    t.flat[t.size // 2] = bad
    tensors[tname] = t
    path = save_model(tmp_path / "forged.bnn", header, tensors)
    with pytest.raises(ModelFileError) as e:
        bitnet.load(path)
    msg = str(e.value)
    assert str(path) in msg and repr(layer["name"]) in msg and repr(tname) in msg, msg
    assert "1 NaN or infinite value" in msg and "\n" not in msg, msg


def test_stream_and_load_audio_share_one_pcm_rule(small):
    """One PCM-to-float rule (bitnet.audio.pcm_to_float): unsigned integers are offset
    binary, so uint16 PCM (once refused by stream) means the same in both."""
    from bitnet.audio import pcm_to_float

    y = np.round(tone(2.0) * 20000).astype(np.int16)
    u16 = (y.astype(np.int32) + 32768).astype(np.uint16)
    np.testing.assert_array_equal(pcm_to_float(u16), pcm_to_float(y))
    np.testing.assert_array_equal(bitnet.load_audio(u16, sr=SR)[0], bitnet.load_audio(y, sr=SR)[0])
    a = [p.probabilities for p in small.stream([u16[:5000], u16[5000:]], sample_rate=SR)]
    b = [p.probabilities for p in small.stream([y[:5000], y[5000:]], sample_rate=SR)]
    assert len(a) == len(b) > 1
    np.testing.assert_array_equal(np.stack(a), np.stack(b))
    for bad in (np.zeros(100, bool), np.zeros(100, complex)):
        with pytest.raises(AudioError, match="real numbers"):
            list(small.stream([bad], sample_rate=SR))
        with pytest.raises(AudioError, match="real numbers"):
            bitnet.load_audio(bad, sr=SR)
