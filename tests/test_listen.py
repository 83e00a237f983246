"""The speech gate, ``bitnet listen`` (stdin through a real pipe, a fake microphone), ``record`` and ``show``."""

from __future__ import annotations

import importlib.abc
import io
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import bitnet
from bitnet import cli, listen as listen_mod
from bitnet.gate import NO_SPEECH, Gate, frame_levels

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("*.wav"))
ORDER = [3, 1, 4, 0, 5, 9, 2, 6, 8, 7]  # the digits in the piped recording, in this order


@pytest.fixture(scope="module")
def model():
    return bitnet.load()


def example(d: int) -> np.ndarray:
    path = next(p for p in EXAMPLES if p.name.startswith(f"{d}_"))
    y, sr = sf.read(path, dtype="float32")
    assert sr == 8000
    return y


def recording(rng, sr=16000, gap=0.7) -> np.ndarray:
    """The ten example digits in ORDER with ``gap`` s of quiet room noise (-80 dBFS) between, at ``sr``."""
    from scipy.signal import resample_poly

    parts = []
    for d in ORDER:
        parts.append(np.zeros(int(gap * 8000), np.float32))
        parts.append(example(d))
    parts.append(np.zeros(int(gap * 8000), np.float32))
    y = np.concatenate(parts)
    y = y + 1e-4 * rng.standard_normal(y.size).astype(np.float32)  # -80 dBFS: not digital silence
    return resample_poly(y, sr // 8000 if sr % 8000 == 0 else sr, 1 if sr % 8000 == 0 else 8000).astype(np.float32)


def s16(y) -> bytes:
    return (np.clip(y, -1, 1 - 1 / 32768) * 32768).round().astype("<i2").tobytes()


# ----------------------------------------------------------------- the gate in predict


@pytest.mark.parametrize(
    "what,y",
    [
        ("digital silence, 1 s", np.zeros(8000, np.float32)),
        ("low white noise, -60 dBFS", 1e-3 * np.random.default_rng(1).standard_normal(8000).astype(np.float32)),
        ("white noise, -30 dBFS", 0.0316 * np.random.default_rng(2).standard_normal(8000).astype(np.float32)),
        ("10 samples of a digit", example(6)[1500:1510]),
        ("100 samples of a digit", example(2)[1500:1600]),
    ],
)
def test_no_speech_gets_no_digit(model, what, y):
    p = model.predict(y, sample_rate=8000)
    assert p.speech is False and p.label == NO_SPEECH == "_silence_" and p.index == -1, what
    assert np.isnan(p.probability) and p.gate is not None and not p.gate.speech
    d = p.to_dict(3)
    assert d["speech"] is False and d["probability"] is None and d["label"] == "_silence_"
    json.dumps(d, allow_nan=False)
    # the gate can be turned off: then a digit comes out, as before
    q = model.predict(y, sample_rate=8000, gate=False)
    assert q.speech is True and q.label in model.labels and q.gate is None


def test_gate_reasons(model):
    assert model.predict(np.zeros(8000, np.float32), sample_rate=8000).gate.reason.startswith("silence")
    assert model.predict(example(6)[:10], sample_rate=8000).gate.reason.startswith("too short")
    noise = 0.01 * np.random.default_rng(3).standard_normal(8000).astype(np.float32)
    assert model.predict(noise, sample_rate=8000).gate.reason.startswith("steady noise")


def test_every_example_clip_is_still_classified(model):
    preds = model.predict(EXAMPLES)
    assert len(preds) == 10
    for path, p in zip(EXAMPLES, preds):
        assert p.speech, (path.name, p.gate.reason)
        assert p.label == path.name[0]
        assert p.gate.voiced_seconds >= Gate().min_speech


def test_gate_settings_are_explicit_and_checked(model):
    y = example(1)
    assert model.predict(y, sample_rate=8000, gate=Gate(min_level_db=0.0)).speech is False  # nothing is that loud
    assert model.predict(y, sample_rate=8000, gate=True).speech is True
    for bad in ("on", 1, Gate):
        with pytest.raises(bitnet.ParameterError):
            model.predict(y, sample_rate=8000, gate=bad)
    with pytest.raises(bitnet.ParameterError):
        Gate(min_speech=-1)


def test_frame_levels_are_dbfs():
    t = np.arange(8000) / 8000
    sine = np.sin(2 * np.pi * 440 * t)  # full-scale sine: -3.01 dBFS
    np.testing.assert_allclose(frame_levels(sine, 8000), -3.01, atol=0.05)
    assert frame_levels(np.full(800, 0.5), 8000).max() == -200.0  # DC is not sound
    assert frame_levels(np.zeros(3), 8000).shape == (1,)


def test_cli_infer_says_no_speech(tmp_path, capsys):
    sf.write(tmp_path / "silence.wav", np.zeros(8000, np.float32), 8000)
    assert cli.main(["infer", str(tmp_path / "silence.wav"), str(EXAMPLES[7])]) == 0
    out = capsys.readouterr().out
    assert "no speech (silence" in out and f"{EXAMPLES[7]}" in out
    assert cli.main(["infer", "--json", "--no-gate", str(tmp_path / "silence.wav")]) == 0
    assert json.loads(capsys.readouterr().out)["speech"] is True


# ----------------------------------------------------------------- listen -: a real pipe


def _labels(stdout: str) -> list[str]:
    events = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert all(e["event"] == "utterance" for e in events)
    times = [e["start"] for e in events]
    assert times == sorted(times)
    return [e["label"] for e in events]


def test_listen_stdin_raw_s16_through_a_pipe(rng):
    data = s16(recording(rng, sr=16000))
    out = subprocess.run(
        [sys.executable, "-m", "bitnet", "listen", "-", "--rate", "16000", "--json"],
        input=data, cwd=REPO, capture_output=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr.decode()
    assert _labels(out.stdout.decode()) == [str(d) for d in ORDER]


def test_listen_stdin_wav_through_a_shell_pipe(rng, tmp_path):
    path = tmp_path / "digits.wav"
    sf.write(path, recording(rng, sr=44100), 44100, subtype="PCM_16")
    out = subprocess.run(
        f"cat {path} | {sys.executable} -m bitnet listen - --json",
        shell=True, cwd=REPO, capture_output=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr.decode()
    assert _labels(out.stdout.decode()) == [str(d) for d in ORDER]


def test_listen_stdin_text_output_and_silence(tmp_path):
    silence = s16(np.zeros(16000 * 3, np.float32))
    out = subprocess.run(
        [sys.executable, "-m", "bitnet", "listen", "-"], input=silence, cwd=REPO, capture_output=True, timeout=300
    )
    assert out.returncode == 0 and out.stdout == b""
    assert b"0 utterances" in out.stderr


def test_segmenter_finds_each_digit_once(rng):
    y = recording(rng, sr=8000)
    seg = listen_mod.Segmenter(8000)
    utts = []
    for i in range(0, y.size, 333):  # awkward chunk sizes
        utts += seg.push(y[i : i + 333])
    utts += seg.flush()
    assert len(utts) == 10
    assert all(0.06 <= u.voiced_seconds <= 1.2 for u in utts)
    assert all(a.end <= b.start for a, b in zip(utts, utts[1:]))


def test_stdin_reader_wav_formats():
    y = (0.5 * np.sin(np.arange(1600) / 5)).astype(np.float32)
    for subtype, tol in (("PCM_16", 1e-4), ("PCM_24", 1e-6), ("FLOAT", 0), ("PCM_U8", 1e-2)):
        buf = io.BytesIO()
        sf.write(buf, np.stack([y, y], axis=1), 22050, format="WAV", subtype=subtype)
        buf.seek(0)
        rate, chunks = listen_mod.stdin_chunks(buf)
        got = np.concatenate(list(chunks))
        assert rate == 22050
        np.testing.assert_allclose(got, y, atol=tol + 1e-7)


# ----------------------------------------------------------------- the microphone, faked


class FakeStream:
    """Stands in for sounddevice.InputStream: plays a signal, then silence."""

    signal = np.zeros(0, np.float32)
    opened = []

    def __init__(self, samplerate, channels, dtype, device, blocksize):
        assert channels == 1 and dtype == "float32"
        self.rate, self.pos = samplerate, 0
        FakeStream.opened.append({"samplerate": samplerate, "device": device, "blocksize": blocksize})

    def start(self):
        pass

    def stop(self):
        pass

    def close(self):
        pass

    def read(self, n):
        out = np.zeros((n, 1), np.float32)
        part = FakeStream.signal[self.pos : self.pos + n]
        out[: part.size, 0] = part
        self.pos += n
        return out, False


@pytest.fixture
def fake_sd(monkeypatch):
    mod = types.ModuleType("sounddevice")
    mod.InputStream = FakeStream
    mod.query_devices = lambda device, kind: {"default_samplerate": 16000.0, "name": "fake"}
    FakeStream.opened = []
    monkeypatch.setitem(sys.modules, "sounddevice", mod)
    return mod


def test_listen_microphone_with_a_fake_stream(fake_sd, rng, capsys):
    FakeStream.signal = recording(rng, sr=16000)
    seconds = FakeStream.signal.size / 16000 + 1
    assert cli.main(["listen", "--json", "--seconds", f"{seconds:.2f}", "--device", "2"]) == 0
    assert _labels(capsys.readouterr().out) == [str(d) for d in ORDER]
    assert FakeStream.opened[0]["samplerate"] == 16000 and FakeStream.opened[0]["device"] == 2


def test_listen_microphone_text_lines_and_threshold(fake_sd, rng, capsys):
    FakeStream.signal = recording(rng, sr=16000)
    assert cli.main(["listen", "--seconds", "30", "--threshold", "0.9999"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10 and all("(unsure:" in ln and ln.split()[1] == "?" for ln in lines)


def test_record_with_a_fake_stream(fake_sd, tmp_path, capsys):
    FakeStream.signal = (0.25 * np.sin(np.arange(48000) / 7)).astype(np.float32)
    out = tmp_path / "clip.wav"
    assert cli.main(["record", "--seconds", "1.5", str(out)]) == 0
    y, sr = sf.read(out, dtype="float32")
    assert sr == 16000 and y.shape == (24000,)
    np.testing.assert_allclose(y, FakeStream.signal[:24000], atol=1 / 32768)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_missing_sounddevice_is_one_line_with_the_fix(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails as if not installed
    assert cli.main(["listen"]) == 1
    assert "pip install 'bitnet-audio[mic]'" in _one_line_error(capsys)
    assert cli.main(["record", "x.wav"]) == 1
    assert "sounddevice" in _one_line_error(capsys)


def test_missing_portaudio_names_the_debian_package(monkeypatch, capsys):
    class NoPortAudio(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "sounddevice":
                raise OSError("PortAudio library not found")
            return None

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [NoPortAudio(), *sys.meta_path])
    assert cli.main(["listen"]) == 1
    line = _one_line_error(capsys)
    assert "libportaudio2" in line and "PortAudio" in line


def test_bad_device_is_one_line(fake_sd, monkeypatch, capsys):
    def broken(**kw):
        raise ValueError("No input device matching 'usb'")

    monkeypatch.setattr(fake_sd, "InputStream", broken)
    assert cli.main(["listen", "--device", "usb", "--rate", "16000"]) == 1
    line = _one_line_error(capsys)
    assert "'usb'" in line and "--device" in line and "bitnet listen -" in line


# ----------------------------------------------------------------- show


def test_show_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "clip.png"
    assert cli.main(["show", str(EXAMPLES[3]), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20000
    assert "3 0." in capsys.readouterr().err


@pytest.mark.parametrize("offset", [0.0, 0.9, 2.2])
def test_long_clip_averages_only_the_windows_that_hold_speech(model, rng, offset):
    """A digit anywhere in a 3 s recording of faint noise: the clip's probabilities are the
    mean over the windows holding the digit, not diluted by the silent windows."""
    sr = model.sample_rate
    d = 4
    word = example(d)
    y = (rng.standard_normal(3 * sr) * 10 ** (-80 / 20)).astype(np.float32)
    start = int(offset * sr)
    y[start : start + len(word)] += word[: len(y) - start]
    p = model.predict(y, sample_rate=sr)
    assert p.window_speech is not None and p.window_speech.shape == (p.window_probabilities.shape[0],)
    assert 0 < p.window_speech.sum() < p.window_speech.size  # some windows are silent
    voiced_starts = p.window_starts[p.window_speech]
    end = offset + len(word) / sr
    # every speech window overlaps the word, and some window that overlaps it is kept
    assert np.all((voiced_starts < end) & (voiced_starts + p.window_seconds > offset))
    want = p.window_probabilities[p.window_speech].mean(axis=0)
    np.testing.assert_allclose(p.probabilities, want / want.sum(), rtol=1e-6)
    assert p.label == str(d)
    assert p.to_dict()["speech_windows"] == int(p.window_speech.sum())
    # without the gate every window counts
    off = model.predict(y, sample_rate=sr, gate=False)
    assert off.window_speech is None
    np.testing.assert_allclose(off.probabilities, off.window_probabilities.mean(axis=0)
                               / off.window_probabilities.mean(axis=0).sum(), rtol=1e-6)


def test_voiced_windows_need_min_speech_inside_the_window():
    sr = 8000
    y = np.zeros(3 * sr, np.float32)
    y[int(1.2 * sr):int(1.5 * sr)] = 0.3 * np.sin(np.arange(int(0.3 * sr)) * 0.4)
    starts = np.arange(0, 2.01, 0.25)
    got = Gate().voiced_windows(y, sr, starts, 1.0)
    # windows [s, s+1) that overlap 1.2..1.5 s by at least 30 ms
    want = (starts < 1.5 - 0.03) & (starts + 1.0 > 1.2 + 0.03)
    assert got.tolist() == want.tolist()
    assert Gate(enabled=False).voiced_windows(y, sr, starts, 1.0).all()
