"""The command line: outputs, exit codes, bad audio."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import bitnet
from bitnet.testing.digits import digits_graph
from bitnet.cli import main
from bitnet.modelfile import save_model

import bitnet.features  # noqa: E402,F401  (real imports: an import bug fails, never skips)
import bitnet.graph  # noqa: E402,F401

SR = 8000


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    header, tensors = digits_graph(seed=2, channels=(8, 16, 16))
    path = tmp_path_factory.mktemp("cli") / "small.bnn"
    save_model(path, header, tensors)
    return path


def tone(seconds, sr=SR, freq=440.0, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    # a tone that swells and fades: a steady tone is what the speech gate calls "no speech"
    y = 0.3 * np.sin(2 * np.pi * freq * t) * np.hanning(t.size)
    if channels > 1:
        y = np.stack([y * (c + 1) / channels for c in range(channels)], axis=1)
    return y.astype(np.float32)


@pytest.fixture
def clips(tmp_path):
    d = tmp_path / "clips"
    (d / "sub" / "deeper").mkdir(parents=True)
    sf.write(str(d / "b.wav"), tone(0.8, freq=300), SR)
    sf.write(str(d / "a.wav"), tone(0.5, freq=600), SR)
    sf.write(str(d / "sub" / "c.flac"), tone(1.2, freq=900), SR)
    sf.write(str(d / "sub" / "deeper" / "d.wav"), tone(0.4, sr=16000), 16000)
    (d / "notes.txt").write_text("not audio")
    return d


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_output(capsys, clips, model_path):
    code, out, err = run(capsys, "infer", "--model", model_path, clips / "a.wav", clips / "b.wav")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["file", "label", "prob"]
    assert len(lines) == 3
    assert lines[1].startswith(str(clips / "a.wav")) and lines[2].startswith(str(clips / "b.wav"))
    for line in lines[1:]:
        label, prob = line.split()[1:3]
        assert label in [str(i) for i in range(10)] and 0 < float(prob) <= 1
    assert "untrained placeholder" in err  # warning for random-weight models
    assert "Traceback" not in err


def test_json_lines(capsys, clips, model_path):
    code, out, err = run(capsys, "infer", "-m", model_path, "--json", "--top-k", "4", clips / "a.wav", clips / "b.wav")
    assert code == 0
    rows = [json.loads(line) for line in out.strip().splitlines()]
    assert [r["source"] for r in rows] == [str(clips / "a.wav"), str(clips / "b.wav")]
    for r in rows:
        assert len(r["top_k"]) == 4 and r["top_k"][0][0] == r["label"]
        assert r["probability"] == r["top_k"][0][1]


def test_json_logits(capsys, clips, model_path):
    code, out, _ = run(capsys, "infer", "-m", model_path, "--json", "--logits", clips / "a.wav", clips / "sub" / "c.flac")
    assert code == 0
    rows = [json.loads(line) for line in out.strip().splitlines()]
    model = bitnet.load(model_path)
    for r in rows:
        logits = np.asarray(r["logits"], np.float64)
        assert logits.shape == (r["windows"], 10)
        # the printed values are float32 exactly (they survive the round trip)
        np.testing.assert_array_equal(logits.astype(np.float32).astype(np.float64), logits)
        # the same logits as the engine's, and they give the printed probability
        feats, _ = model.windows(model.read_audio(r["source"]))
        np.testing.assert_array_equal(logits.astype(np.float32), model.logits(feats))
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p = (p / p.sum(axis=1, keepdims=True)).mean(axis=0)
        assert abs(p.max() - r["probability"]) < 1e-5 and int(p.argmax()) == r["index"]
    code, out, err = run(capsys, "infer", "-m", model_path, "--logits", clips / "a.wav")
    assert code == 2 and out == "" and "--logits needs --json" in err


def test_directory_recursion_sorted(capsys, clips, model_path):
    code, out, err = run(capsys, "infer", "-m", model_path, "--json", clips)
    assert code == 0, err
    sources = [json.loads(line)["source"] for line in out.strip().splitlines()]
    assert sources == [str(clips / p) for p in ("a.wav", "b.wav", "sub/c.flac", "sub/deeper/d.wav")]
    assert "notes.txt" not in out + err


def test_bad_file_among_good(capsys, clips, model_path):
    bad = clips / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage")
    code, out, err = run(capsys, "infer", "-m", model_path, clips / "a.wav", bad, clips / "b.wav")
    assert code == 1
    assert str(clips / "a.wav") in out and str(clips / "b.wav") in out
    errors = [line for line in err.splitlines() if "error" in line and "failed" not in line]
    assert len(errors) == 1 and str(bad) in errors[0]
    assert "1 of 3 inputs failed" in err
    assert "Traceback" not in err


def test_missing_path(capsys, clips, model_path):
    code, out, err = run(capsys, "infer", "-m", model_path, clips / "nope.wav", clips / "a.wav")
    assert code == 1
    assert "nope.wav" in err and "no such file" in err.lower()
    assert str(clips / "a.wav") in out


def test_every_input_failing_prints_errors_only(capsys, clips, model_path):
    code, out, err = run(capsys, "infer", "-m", model_path, clips / "nope.wav", clips / "gone.wav")
    assert code == 1
    assert out == ""                      # no table header over an empty table
    assert "nope.wav" in err and "gone.wav" in err and "2 of 2 inputs failed" in err


def test_empty_directory(capsys, tmp_path, model_path):
    (tmp_path / "empty").mkdir()
    code, out, err = run(capsys, "infer", "-m", model_path, tmp_path / "empty")
    assert code == 1 and "no audio files" in err


def test_debug_shows_traceback(capsys, clips, model_path):
    bad = clips / "bad.wav"
    bad.write_text("hello")
    code, out, err = run(capsys, "infer", "-m", model_path, "--debug", bad)
    assert code == 1 and "Traceback" in err


def test_bad_model(capsys, tmp_path, clips):
    p = tmp_path / "junk.bnn"
    p.write_bytes(b"\x00" * 64)
    code, out, err = run(capsys, "infer", "-m", p, clips / "a.wav")
    assert code == 1 and str(p) in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [[], ["infer"], ["infer", "--top-k", "0", "x.wav"], ["infer", "--window", "-1", "x.wav"], ["frobnicate"], ["infer", "--bogus", "x"]],
)
def test_usage_errors_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_version(capsys):
    import bitnet

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and bitnet.__version__ in capsys.readouterr().out


def test_timeline_window(capsys, tmp_path, model_path):
    p = tmp_path / "long.wav"
    sf.write(str(p), tone(4.0), SR)
    code, out, err = run(capsys, "infer", "-m", model_path, "--window", "1", "--hop", "1", p)
    assert code == 0
    rows = [line.split() for line in out.strip().splitlines()]
    assert [float(r[1]) for r in rows] == [0.0, 1.0, 2.0, 3.0]
    code, out, err = run(capsys, "infer", "-m", model_path, "--json", "--window", "2", p)
    seg = json.loads(out)["segments"]
    assert [s[0] for s in seg] == [0.0, 1.0, 2.0]


def test_threads_option(capsys, clips, model_path):
    code, out1, _ = run(capsys, "infer", "-m", model_path, "--json", "--threads", "2", clips / "b.wav")
    code2, out2, _ = run(capsys, "infer", "-m", model_path, "--json", "--threads", "1", clips / "b.wav")
    assert code == code2 == 0 and out1 == out2


def test_summary_command(capsys, model_path):
    code, out, err = run(capsys, "summary", model_path)
    assert code == 0 and "conv1" in out and "binary MACs" in out and "provenance" in out
    code, out, err = run(capsys, "summary", "--json", model_path)
    d = json.loads(out)
    assert d["labels"] == [str(i) for i in range(10)] and d["layers"]


def test_bench_command(capsys, model_path):
    code, out, err = run(capsys, "bench", "--seconds", "0.01", "--json", model_path)
    assert code == 0
    d = json.loads(out)
    assert {(r["threads"], r["batch"]) for r in d["runs"]} >= {(1, 1), (1, 64)}
    assert d["peak_rss_mb"] > 0 and all(r["median_ms"] > 0 for r in d["runs"])


def test_python_dash_m(tmp_path, model_path):
    p = tmp_path / "x.wav"
    sf.write(str(p), tone(0.5), SR)
    r = subprocess.run([sys.executable, "-m", "bitnet", "infer", "-m", str(model_path), str(p)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert str(p) in r.stdout


# ----------------------------------------------------------------- bad audio through the CLI


def _write_bad(kind, d):
    p = d / f"{kind}.wav"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "zero_length":
        sf.write(str(p), np.zeros(0, np.float32), SR)
    elif kind == "nan":
        y = tone(0.5)
        y[100] = np.nan
        sf.write(str(p), y, SR, subtype="FLOAT")
    elif kind == "corrupt":
        sf.write(str(p), tone(0.5), SR)
        data = p.read_bytes()
        p.write_bytes(data[:30])  # cut inside the header
    elif kind == "not_audio":
        p.write_text("this is a text file\n" * 50)
    return p


@pytest.mark.parametrize("kind", ["empty", "zero_length", "nan", "corrupt", "not_audio"])
def test_bad_audio_one_clear_line(capsys, tmp_path, model_path, kind):
    p = _write_bad(kind, tmp_path)
    code, out, err = run(capsys, "infer", "-m", model_path, p)
    assert code == 1
    errs = [line for line in err.splitlines() if "error" in line]
    assert len(errs) == 1 and str(p) in errs[0], err
    assert "Traceback" not in err and "unexpected" not in err


@pytest.mark.parametrize(
    "subtype, channels, sr",
    [("PCM_U8", 1, SR), ("PCM_16", 2, SR), ("PCM_24", 1, 16000), ("PCM_32", 1, SR), ("FLOAT", 2, 22050)],
)
def test_good_audio_formats(capsys, tmp_path, model_path, subtype, channels, sr):
    p = tmp_path / f"ok_{subtype}.wav"
    sf.write(str(p), tone(0.6, sr=sr, channels=channels), sr, subtype=subtype)
    code, out, err = run(capsys, "infer", "-m", model_path, "--json", p)
    assert code == 0, err
    assert json.loads(out)["source"] == str(p)


def test_wrong_extension(capsys, tmp_path, model_path):
    """A WAV named .flac, and a FLAC named .wav: read by content, or one clear error."""
    a = tmp_path / "really_wav.flac"
    sf.write(str(a), tone(0.5), SR, format="WAV")
    b = tmp_path / "really_flac.wav"
    sf.write(str(b), tone(0.5), SR, format="FLAC")
    for p in (a, b):
        code, out, err = run(capsys, "infer", "-m", model_path, p)
        if code == 0:
            assert str(p) in out
        else:
            assert code == 1 and str(p) in err and "Traceback" not in err and "unexpected" not in err
