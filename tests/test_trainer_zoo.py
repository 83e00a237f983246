"""Tiny end-to-end runs of the zoo's trainer features: --folds, pruning, an ensemble file.

A few clips of synthetic tones (not speech) and one or two epochs, so accuracies are
meaningless; what is checked is the machinery: every fold trains and is summarised, the
feature cache is shared by the folds, pruning exports a file with fewer channels that
the engine runs exactly like PyTorch, and an ensemble file of exported members runs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sf = pytest.importorskip("soundfile")

import bitnet  # noqa: E402
from trainer import data as D  # noqa: E402
from trainer.__main__ import main as trainer_main  # noqa: E402
from trainer.export import export_run  # noqa: E402
from trainer.prune import prune_model, similar_filters  # noqa: E402
from trainer import models as M  # noqa: E402

pytestmark = pytest.mark.train


@pytest.fixture
def manifest(tmp_path):
    """A CSV manifest of 24 one-second tone clips, 3 classes, 2 folds."""
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 8000.0
    rows = ["path,label,fold"]
    for i in range(24):
        c = i % 3
        y = 0.3 * np.sin(2 * np.pi * (300 + 500 * c) * t) + 0.02 * rng.standard_normal(len(t))
        sf.write(tmp_path / f"c{i}.wav", y.astype(np.float32), 8000)
        rows.append(f"c{i}.wav,k{c},{1 + (i // 3) % 2}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "m.csv"


def _train_args(manifest, out, *extra):
    return ["train", "--data", str(manifest), "--model", "lc-bnn", "--epochs", "1", "--batch-size", "8",
            "--no-progress", "--cache-dir", str(out.parent / "cache"), "--out", str(out), *extra]


def test_folds_runner_trains_every_fold_and_shares_the_cache(manifest, tmp_path, capsys, monkeypatch):
    calls = []
    real = D.Featurizer.__call__
    monkeypatch.setattr(D.Featurizer, "__call__", lambda self, y: calls.append(1) or real(self, y))
    assert trainer_main(_train_args(manifest, tmp_path / "cv", "--folds", "1-2", "--no-wave-aug",
                                    "--bn", "clean")) == 0
    summary = json.loads((tmp_path / "cv" / "folds.json").read_text())
    assert [f["fold"] for f in summary["folds"]] == ["1", "2"]
    accs = [f["accuracy"] for f in summary["folds"]]
    assert summary["mean"] == pytest.approx(np.mean(accs)) and summary["std"] == pytest.approx(np.std(accs))
    for k in (1, 2):
        assert (tmp_path / "cv" / f"fold{k}" / "confusion.png").exists()
        assert (tmp_path / "cv" / f"fold{k}" / "curves.png").exists()
    assert (tmp_path / "cv" / "folds.png").exists()
    assert "mean" in capsys.readouterr().out
    # without waveform augmentation the only features computed are the clean ones: each
    # of the 24 clips once, although 2 folds each read all 24 (train + test)
    assert len(calls) == 24


def test_folds_distil_from_each_folds_own_teacher_and_reuse_finished_folds(manifest, tmp_path):
    from trainer.folds import fold_config
    from trainer.train import TrainConfig

    cfg, run = fold_config(TrainConfig(out="runs/kw", teacher="runs/kwf/{fold}", init="p/{fold}.pt"), 3)
    assert (cfg.split, cfg.teacher, cfg.init, run.name) == ("fold:3", "runs/kwf/fold3", "p/fold3.pt", "fold3")
    cfg, run = fold_config(TrainConfig(out="runs/l", teacher="runs/lf/{fold}"), "theo")
    assert (cfg.split, cfg.teacher, run.name) == ("speaker:theo", "runs/lf/theo", "theo")

    common = ("--no-wave-aug", "--bn", "clean")
    assert trainer_main(_train_args(manifest, tmp_path / "tw", "--folds", "1-2", "--float-twin", *common)) == 0
    args = _train_args(manifest, tmp_path / "st", "--folds", "1-2", "--teacher", str(tmp_path / "tw" / "{fold}"),
                       *common)
    assert trainer_main(args) == 0
    for k in (1, 2):
        done = json.loads((tmp_path / "st" / f"fold{k}" / "config.json").read_text())
        assert done["teacher"] == str(tmp_path / "tw" / f"fold{k}")
    first = json.loads((tmp_path / "st" / "folds.json").read_text())
    # a second call finds both folds finished with the same recipe and trains nothing
    stamp = (tmp_path / "st" / "fold1" / "model.pt").stat().st_mtime_ns
    assert trainer_main(args) == 0
    assert (tmp_path / "st" / "fold1" / "model.pt").stat().st_mtime_ns == stamp
    assert json.loads((tmp_path / "st" / "folds.json").read_text())["folds"] == first["folds"]
    # another recipe in the same directory is not mistaken for a finished fold
    assert trainer_main(args[:args.index("--epochs") + 1] + ["2"] + args[args.index("--epochs") + 2:]) == 0
    assert (tmp_path / "st" / "fold1" / "model.pt").stat().st_mtime_ns != stamp


def test_similar_filters_removes_a_duplicate_first():
    w = torch.tensor([[1.0, 1, 1, -1], [-1, 1, -1, 1], [0.9, 0.8, 0.7, -0.2], [1, -1, -1, -1]])
    assert similar_filters(w, 1) == [2]  # filter 2 has filter 0's signs and smaller weights


def test_pruned_model_is_smaller_and_exports_exactly(manifest, tmp_path):
    base = tmp_path / "base"
    assert trainer_main(_train_args(manifest, base, "--split", "fold:1")) == 0
    out = tmp_path / "pruned"
    assert trainer_main(["prune", str(base), "--amount", "0.4", "--epochs", "1", "--out", str(out)]) == 0
    rep = json.loads((out / "prune.json").read_text())
    assert rep["widths_before"] == [16, 16, 32, 100]
    assert rep["widths_after"] == [10, 10, 19, 60]
    assert rep["filters_after"] <= 0.6 * rep["filters_before"] + 1
    r_base = export_run(base, tmp_path / "base.bnn", log=lambda *a: None)
    r_pruned = export_run(out, tmp_path / "pruned.bnn", log=lambda *a: None)
    assert r_pruned["agree"] and r_pruned["max_abs_diff"] <= 1e-4  # engine == PyTorch
    small, big = bitnet.load(tmp_path / "pruned.bnn"), bitnet.load(tmp_path / "base.bnn")
    t_small, t_big = small.summary(as_dict=True)["totals"], big.summary(as_dict=True)["totals"]
    assert t_small["binary_macs"] < 0.5 * t_big["binary_macs"]
    assert t_small["params"] < t_big["params"]
    assert r_pruned["bytes"] < r_base["bytes"]
    shapes = {r["name"]: r["output_shape"] for r in small.summary(as_dict=True)["layers"]}
    assert shapes["qconv0"][-1] == 10  # fewer channels, not masked zeros
    # an ensemble file of the two exported members runs like the in-memory ensemble
    ens = bitnet.save_ensemble([tmp_path / "pruned.bnn", tmp_path / "base.bnn"], tmp_path / "ens.bnn")
    y = sf.read(manifest.parent / "c0.wav", dtype="float32")[0]
    a = bitnet.load(ens).predict(y, sample_rate=8000, gate=False)
    b = bitnet.load([tmp_path / "pruned.bnn", tmp_path / "base.bnn"]).predict(y, sample_rate=8000, gate=False)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)


def test_prune_distils_from_the_named_teacher(manifest, tmp_path):
    base = tmp_path / "base"
    assert trainer_main(_train_args(manifest, base, "--split", "fold:1")) == 0
    out = tmp_path / "pruned-kd"
    assert trainer_main(["prune", str(base), "--amount", "0.3", "--epochs", "1", "--teacher", str(base),
                         "--out", str(out)]) == 0
    ft = json.loads((out / "prune.json").read_text())["finetune"]
    assert ft["teacher"] == str(base) and f"--teacher {base}" in ft["command"]
    assert json.loads((out / "result.json").read_text())["command"] == ft["command"]
    # without --teacher the base run's own (here: none) is kept
    out2 = tmp_path / "pruned"
    assert trainer_main(["prune", str(base), "--amount", "0.3", "--epochs", "1", "--out", str(out2)]) == 0
    assert json.loads((out2 / "prune.json").read_text())["finetune"]["teacher"] == ""
    # the per-layer sensitivity scan: one row per layer and fraction, no run written
    from trainer.prune import sensitivity

    rows = sensitivity(base, fractions=(0.5,), log=lambda *a: None)
    assert [r["layer"] for r in rows] == [None, 0, 1, 2, 3]
    assert rows[4]["widths"] == [16, 16, 32, 50] and all(0 <= r["accuracy"] <= 1 for r in rows)


def test_prune_takes_one_fraction_per_binary_layer():
    from trainer.prune import parse_amount

    net = M.build("lc-bnn", n_classes=12)
    _, rep = prune_model(net, parse_amount("0,0,0.25,0.5"))
    assert rep["widths_before"] == [16, 16, 32, 100] and rep["widths_after"] == [16, 16, 24, 50]
    assert net(torch.zeros(2, 1, 40, 51)).shape == (2, 12)      # still wired consistently
    with pytest.raises(ValueError, match="4 binary layers"):
        prune_model(M.build("lc-bnn", n_classes=12), [0.1, 0.2])
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        prune_model(M.build("lc-bnn", n_classes=12), [0, 0, 0, 1.0])


def test_prune_refuses_residual_models():
    with pytest.raises(ValueError, match="pruning supports"):
        prune_model(M.build("digits", n_classes=3), 0.3)


def test_speech_commands_split_is_speaker_disjoint(tmp_path):
    for cls in ("_silence_", "_unknown_", "yes"):
        (tmp_path / cls).mkdir()
    y = np.zeros(1600, np.float32)
    for i in range(40):
        spk = f"{i:08x}"
        sf.write(tmp_path / "yes" / f"{spk}_nohash_0.wav", y, 16000)
        sf.write(tmp_path / "yes" / f"{spk}_nohash_1.wav", y, 16000)
        sf.write(tmp_path / "_unknown_" / f"bed_{spk}_nohash_0.wav", y, 16000)
        sf.write(tmp_path / "_silence_" / f"{i}.wav", y, 16000)
    seen = []
    for split in ("test", "fold:1", "fold:2", "fold:3", "fold:4"):
        tr, te, _ = D.load_dataset(str(tmp_path), split)
        assert not set(tr.groups) & set(te.groups)
        seen.append(set(te.groups))
        assert len(tr) + len(te) <= 160
    assert set().union(*seen) == {D.speaker_of(p) for p in D.load_dataset(str(tmp_path), "test")[0].paths} \
        | seen[0]
    assert D.speaker_of(tmp_path / "_unknown_" / "bed_0000000a_nohash_0.wav") == "0000000a"
    with pytest.raises(ValueError, match="fold:K"):
        D.load_dataset(str(tmp_path), "fold:9")
