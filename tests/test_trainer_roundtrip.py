"""A tiny train -> export -> engine round trip: the exported file reproduces PyTorch.

A few optimiser steps on a few FSDD clips (or synthetic audio when FSDD is absent), so
the accuracy is meaningless; what is checked is that the engine, reading the file, gives
the same predictions and logits within 1e-4 as the PyTorch model in eval mode, and that
the exporter refuses a graph the engine disagrees with.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from trainer import data as D  # noqa: E402
from trainer import export as E  # noqa: E402
from trainer import models as M  # noqa: E402
from trainer.train import TrainConfig, evaluate, load_run, recompute_bn_stats, train  # noqa: E402

pytestmark = pytest.mark.train

FRONTEND = dict(sample_rate=8000, n_fft=256, hop_length=80, n_mels=40, top_db=80.0,
                ref="max", frames=31)


def _clips(rng, fsdd_dir=None, n=24):
    """(waves, labels): FSDD clips if available, else noisy tones per class."""
    if fsdd_dir is not None:
        feat = D.Featurizer(D.frontend_config(**FRONTEND))
        files = sorted(fsdd_dir.glob("*_jackson_*.wav"))[: n * 5 : 5]
        return [feat.load(f) for f in files], np.array([int(f.name[0]) for f in files])
    t = np.arange(2400) / 8000.0
    labels = rng.integers(0, 4, size=n)
    waves = [(np.sin(2 * np.pi * (300 + 400 * c) * t) + 0.1 * rng.standard_normal(len(t)))
             .astype(np.float32) for c in labels]
    return waves, labels


def _tiny_model(n_classes):
    return M.build("digits", n_classes=n_classes, stages=((64, 1), (128, 1)))


def _steps(model, x, y, n=4):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    model.train()
    for _ in range(n):
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    recompute_bn_stats(model, x)


@pytest.fixture
def maybe_fsdd():
    try:
        return D.fsdd_root()
    except FileNotFoundError:
        return None


def test_export_roundtrip_engine_reproduces(tmp_path, rng, maybe_fsdd):
    from bitnet.graph import Graph
    from bitnet.modelfile import read_model

    torch.manual_seed(0)
    waves, labels = _clips(rng, maybe_fsdd)
    feat = D.Featurizer(D.frontend_config(**FRONTEND))
    x = np.stack([feat(w) for w in waves])
    n_classes = 10
    model = _tiny_model(n_classes)
    _steps(model, x, labels)
    info = {"labels": [str(i) for i in range(n_classes)], "frontend": feat.cfg.to_dict()}
    out = tmp_path / "tiny.bnn"
    r = E.export_model(model, info, out, x, labels, tol=1e-4,
                       provenance={"dataset": "test", "command": "pytest"}, log=lambda *a: None)
    assert r["agree"] and r["max_abs_diff"] <= 1e-4

    header, tensors = read_model(out)
    assert header["labels"] == info["labels"]
    assert header["frontend"] == feat.cfg.to_dict()
    g = Graph(header["layers"], tensors, input_shape=header["input"]["shape"], output=header["output"])
    eng = g.run(x)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(eng.argmax(1), ref.argmax(1))
    assert np.max(np.abs(eng - ref)) <= 1e-4
    # the NumPy reference path of the engine agrees too
    np.testing.assert_allclose(g.run_reference(x[:2]), eng[:2], atol=1e-4)
    # packed binary weights: (C_out, kh, kw, ceil(C_in/64)) uint64
    w = tensors[[L for L in header["layers"] if L["op"] == "qconv"][0]["tensors"]["weight"]]
    assert w.dtype == np.uint64 and w.shape == (64, 3, 3, 1)


def test_export_refuses_disagreement(tmp_path, rng, monkeypatch):
    torch.manual_seed(1)
    waves, labels = _clips(rng, None, n=12)
    feat = D.Featurizer(D.frontend_config(**FRONTEND))
    x = np.stack([feat(w) for w in waves])
    model = _tiny_model(4)
    _steps(model, x, labels, n=2)
    from trainer import engine

    real_pack = engine.pack
    monkeypatch.setattr(engine, "pack", lambda w: ~real_pack(w) & real_pack(np.ones_like(w)))
    out = tmp_path / "bad.bnn"
    with pytest.raises(E.ExportError, match="refusing"):
        E.export_model(model, {"labels": list("abcd"), "frontend": feat.cfg.to_dict()}, out, x,
                       log=lambda *a: None)
    assert not out.exists()


def test_float_twin_not_exportable():
    with pytest.raises(E.ExportError, match="float twin"):
        E.to_graph(M.build("lc-bnn", float_twin=True))


@pytest.mark.parametrize("name", ["lc-bnn", "kws-bnn-m", "resnet-esc"])
def test_reference_workloads_export_to_valid_graphs(name):
    from bitnet.graph import Graph

    model = M.build(name).eval()
    layers, tensors, out = E.to_graph(model)
    h, w = model.input_shape
    g = Graph(layers, tensors, input_shape=(h, w, 1), output=out)
    x = (np.random.default_rng(0).random((2, h, w)) * -80).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(g.run(x), ref, atol=1e-4)


def _manifest(tmp_path, rng, maybe_fsdd):
    """16 clips written as WAV files and a CSV manifest ``path,label,fold`` (two folds)."""
    import soundfile as sf

    waves, labels = _clips(rng, maybe_fsdd, n=16)
    rows = []
    for i, (wv, lab) in enumerate(zip(waves, labels)):
        p = tmp_path / f"clip{i}.wav"
        sf.write(p, wv, 8000)
        rows.append([p.name, f"c{lab}", str(1 + i % 2)])
    man = tmp_path / "manifest.csv"
    with open(man, "w", newline="") as fh:
        csv.writer(fh).writerows([["path", "label", "fold"], *rows])
    return man, rows


def test_train_api_manifest_and_export_run(tmp_path, rng, maybe_fsdd):
    """The Python API on a CSV manifest (fold column), then export_run from the run dir."""
    man, rows = _manifest(tmp_path, rng, maybe_fsdd)
    run = tmp_path / "run"
    cfg = TrainConfig(data=str(man), split="fold:1", model="digits",
                      model_kwargs={"stages": [[64, 1]]}, frontend={"frames": 31},
                      out=str(run), epochs=1, batch_size=8, cache_dir=str(tmp_path / "cache"),
                      progress=False, command="pytest")
    res = train(cfg, log=lambda *a: None)
    for f in ("metrics.csv", "model.pt", "last.pt", "result.json", "curves.png", "confusion.png"):
        assert (run / f).exists(), f
    assert 0.0 <= res["test_accuracy"] <= 1.0
    model, info = load_run(run)
    assert info["labels"] == sorted({r[1] for r in rows})
    r = E.export_run(run, tmp_path / "m.bnn", log=lambda *a: None)
    assert r["agree"] and r["max_abs_diff"] <= 1e-4
    # resuming a finished run trains no further epochs and gives the same result
    res2 = train(cfg, log=lambda *a: None)
    assert res2["test_accuracy"] == res["test_accuracy"]


def test_exporter_warns_about_float_layers():
    model = M.build("lc-bnn").eval()
    layers, tensors, _ = E.to_graph(model)
    rows = E.layer_table(layers, tensors, model.input_shape)
    assert E._float_warnings(model, rows) == []
    # a float dense that should have been binary (two float denses, the first large)
    model.layers[9] = M.Dense(64, 100)
    layers, tensors, _ = E.to_graph(model)
    rows = E.layer_table(layers, tensors, model.input_shape)
    msgs = E._float_warnings(model, rows)
    assert any("before the last layer" in m for m in msgs)
    # a float conv inside a binarized model has no engine op at all
    model.layers[2] = torch.nn.Conv2d(16, 16, 3, padding=1)
    assert any("FLOAT layer" in m for m in E._float_warnings(model, rows))
    with pytest.raises(E.ExportError, match="no engine op"):
        E.to_graph(model)


def test_manifest_esc50_layout(tmp_path):
    """ESC-50's meta/esc50.csv (filename,fold,target,category,...) with audio in ../audio."""
    (tmp_path / "meta").mkdir()
    (tmp_path / "audio").mkdir()
    rows = [["filename", "fold", "target", "category", "esc10", "src_file", "take"]]
    for i in range(6):
        name = f"{1 + i % 3}-{i}-A-{i % 2}.wav"
        (tmp_path / "audio" / name).write_bytes(b"")
        rows.append([name, str(1 + i % 3), str(i % 2), ["dog", "rain"][i % 2], "True", "x", "A"])
    man = tmp_path / "meta" / "esc50.csv"
    with open(man, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    tr, te, desc = D.load_dataset(str(man), "fold:2")
    assert len(te) == 2 and len(tr) == 4 and "fold 2" in desc
    assert tr.label_names == ["dog", "rain"]
    assert all(p.parent.name == "audio" and p.exists() for p in tr.paths + te.paths)
    with pytest.raises(ValueError, match="fold"):
        D.load_dataset(str(man), "fold:9")


def test_levers_channel_norm_and_evidence_export(tmp_path, rng, maybe_fsdd):
    """A run with the leave-one-speaker-out levers and per-band mean normalisation exports;
    the file carries the frontend setting and the evidence, and the engine agrees with PyTorch."""
    import json

    import bitnet

    man, _ = _manifest(tmp_path, rng, maybe_fsdd)
    run = tmp_path / "run"
    cfg = TrainConfig(data=str(man), split="fold:1", model="digits",
                      model_kwargs={"stages": [[64, 1]]},
                      frontend={"frames": 31, "channel_norm": "mean"},
                      out=str(run), epochs=1, batch_size=8, cache_dir=str(tmp_path / "cache"),
                      vtlp=0.1, noise="mixed", snr=(0.0, 20.0), noise_prob=0.5, gain=(-35.0, 6.0),
                      progress=False, command="pytest")
    train(cfg, log=lambda *a: None)
    ev = tmp_path / "ev.json"
    ev.write_text(json.dumps({"bnn_mean": 0.5}))
    out = tmp_path / "m.bnn"
    r = E.export_run(run, out, log=lambda *a: None, evidence={"loso": str(ev)})
    assert r["agree"] and r["max_abs_diff"] <= 1e-4
    m = bitnet.load(out)
    assert m.frontend.channel_norm == "mean"
    assert m.header["provenance"]["evidence"] == {"loso": {"bnn_mean": 0.5}}
    with pytest.raises(E.ExportError, match="evidence"):
        E.export_run(run, tmp_path / "x.bnn", log=lambda *a: None, evidence={"loso": str(tmp_path / "none.json")})


def test_licence_names_the_pretraining_data(tmp_path):
    """Weights that started from another dataset's run carry both datasets' terms."""
    fsdd = "FSDD official split (takes 0-4 test)"
    assert "CC BY-SA 4.0" in E.run_license(fsdd) and "initialised" not in E.run_license(fsdd)
    torch.save({"model": {}, "info": {"dataset": "Speech Commands v0.02 test set, 12 classes"}}, tmp_path / "kw.pt")
    lic = E.run_license(fsdd, str(tmp_path / "kw.pt"))
    assert lic.startswith(E.run_license(fsdd)) and "pretrained on Speech Commands v0.02 (Warden 2018), CC BY 4.0" in lic
    assert "its terms apply too" in E.run_license(fsdd, str(tmp_path / "missing.pt"))
    assert E.run_license("a folder of clips") == ""
    torch.save({"model": {}, "info": {"dataset": "Speech Commands v0.02 test set, 12 classes",
                                      "config": {"command": "python -m trainer train --data speech_commands"},
                                      "result": {"test_accuracy": 0.69}}}, tmp_path / "kw2.pt")
    assert E.pretraining(str(tmp_path / "kw2.pt")) == {
        "checkpoint": str(tmp_path / "kw2.pt"), "dataset": "Speech Commands v0.02 test set, 12 classes",
        "command": "python -m trainer train --data speech_commands", "test_accuracy": 0.69}
    assert E.pretraining(str(tmp_path / "missing.pt")) == {"checkpoint": str(tmp_path / "missing.pt")}
    assert E.pretraining(None) == {}
