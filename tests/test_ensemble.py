"""Ensembles (bitnet/ensemble.py), bundled names and `bitnet summary --compare`."""

import json

import numpy as np
import pytest

import bitnet
from bitnet.cli import main
from bitnet.modelfile import read_model, save_model
from bitnet.results import softmax
from bitnet.testing.digits import FRONTEND, digits_graph


def _model(tmp_path, seed, **kw):
    header, tensors = digits_graph(seed=seed, channels=(8, 16, 16), **kw)
    return save_model(tmp_path / f"m{seed}.bnn", header, tensors)


@pytest.fixture
def members(tmp_path):
    return [_model(tmp_path, s) for s in (1, 2, 3)]


@pytest.fixture
def clip():
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal(FRONTEND["sample_rate"])).astype(np.float32)


def test_ensemble_probabilities_are_the_mean_of_the_members(members, clip):
    models = [bitnet.load(p) for p in members]
    ens = bitnet.load(members)
    assert isinstance(ens, bitnet.Ensemble) and len(ens.members) == 3
    feats, _ = ens.windows(clip)
    want = np.mean([softmax(m.logits(feats)) for m in models], axis=0)
    np.testing.assert_allclose(softmax(ens.logits(feats)), want, rtol=1e-5, atol=1e-7)
    p = ens.predict(clip, sample_rate=FRONTEND["sample_rate"], gate=False)
    np.testing.assert_allclose(p.probabilities, want.mean(0) / want.mean(0).sum(), rtol=1e-5, atol=1e-7)
    # the same API as one model: stream and timeline run on the averaged probabilities
    long = np.concatenate([clip, clip, clip])
    streamed = list(ens.stream([long[:5000], long[5000:]], sample_rate=FRONTEND["sample_rate"]))
    whole = ens.predict(long, sample_rate=FRONTEND["sample_rate"], gate=False)
    np.testing.assert_allclose(np.stack([s.probabilities for s in streamed]),
                               whole.window_probabilities, rtol=1e-5, atol=1e-6)
    assert len(ens.timeline(long, sample_rate=FRONTEND["sample_rate"])) >= 2


def test_ensemble_file_round_trip(members, clip, tmp_path):
    out = bitnet.save_ensemble(members, tmp_path / "ens.bnn", provenance={"accuracy": {"test": 0.5}})
    header, tensors = read_model(out)
    assert len(header["members"]) == 3 and header["layers"] == []
    assert all(name.startswith(("m0.", "m1.", "m2.")) for name in tensors)
    from_file, in_memory = bitnet.load(out), bitnet.load(members)
    feats, _ = in_memory.windows(clip)
    np.testing.assert_array_equal(from_file.logits(feats), in_memory.logits(feats))
    s = from_file.summary()
    assert "ensemble of 3 members" in s and s.count("member ") >= 3
    d = from_file.summary(as_dict=True)
    assert d["totals"]["binary_macs"] == sum(m["totals"]["binary_macs"] for m in d["members"])


def test_members_must_share_labels_and_frontend(tmp_path, members):
    other_labels = _model(tmp_path, 7, labels=[f"c{i}" for i in range(10)])
    with pytest.raises(bitnet.ModelFileError, match="labels .* differ"):
        bitnet.load([members[0], other_labels])
    other_fe = _model(tmp_path, 8, frontend=dict(FRONTEND, n_fft=512))
    with pytest.raises(bitnet.ModelFileError, match="frontend settings differ"):
        bitnet.save_ensemble([members[0], other_fe], tmp_path / "bad.bnn")
    assert not (tmp_path / "bad.bnn").exists()


def test_member_tensor_missing_is_refused(members, tmp_path):
    out = bitnet.save_ensemble(members[:2], tmp_path / "ens.bnn")
    header, tensors = read_model(out)
    header = dict(header)
    tensors = {k: np.array(v) for k, v in tensors.items() if not k.startswith("m1.")}
    header["members"] = header["members"]
    header.pop("tensors")
    with pytest.raises(bitnet.ModelFileError, match="not hold"):
        save_model(tmp_path / "broken.bnn", header, tensors)


def test_bundled_names():
    names = bitnet.bundled_models()
    assert "digits" in names
    assert bitnet.load("digits").path == bitnet.load().path
    with pytest.raises(bitnet.ModelFileError, match="bundled: digits"):
        bitnet.load("no-such-model")


def test_cli_ensemble_infer_and_compare(members, tmp_path, capsys, clip):
    import soundfile as sf

    wav = tmp_path / "a.wav"
    sf.write(wav, clip, FRONTEND["sample_rate"])
    out = tmp_path / "e.bnn"
    assert main(["ensemble", *map(str, members), "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["infer", "--json", "--no-gate", "-m", str(out), str(wav)]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert main(["infer", "--json", "--no-gate", *sum((["-m", str(m)] for m in members), []), str(wav)]) == 0
    repeated = json.loads(capsys.readouterr().out)
    assert from_file["label"] == repeated["label"]
    assert abs(from_file["probability"] - repeated["probability"]) < 1e-6
    assert main(["summary", "--compare", "--json", str(members[0]), str(out)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["precision"] for r in rows[:3]] == ["float32", "INT8", "binary"]
    single, ens = rows[2], rows[5]
    assert ens["binary_macs"] == 3 * single["binary_macs"]
    assert rows[0]["bytes"] == 4 * rows[0]["params"] and rows[1]["bytes"] == rows[1]["params"]
    assert single["latency_ms"] > 0 and rows[0]["latency_ms"] is None
    assert main(["infer", "-m", "no-such-model", str(wav)]) == 1
    assert "bundled:" in capsys.readouterr().err


def test_header_gate_false_turns_the_speech_gate_off_by_default(tmp_path):
    header, tensors = digits_graph(seed=4, channels=(8, 16, 16))
    on = bitnet.load(save_model(tmp_path / "on.bnn", header, tensors))
    off = bitnet.load(save_model(tmp_path / "off.bnn", dict(header, gate=False), tensors))
    silence = np.zeros(FRONTEND["sample_rate"], np.float32)
    assert not on.predict(silence, sample_rate=FRONTEND["sample_rate"]).speech
    p = off.predict(silence, sample_rate=FRONTEND["sample_rate"])
    assert p.speech and p.label in off.labels
    assert not off.predict(silence, sample_rate=FRONTEND["sample_rate"], gate=bitnet.Gate()).speech
    with pytest.raises(bitnet.ModelFileError, match="boolean"):
        save_model(tmp_path / "bad.bnn", dict(header, gate="no"), tensors)


@pytest.mark.parametrize("name", sorted(bitnet.bundled_models()))
def test_every_bundled_model_loads_with_its_engine_check(name):
    m = bitnet.load(name)
    members = getattr(m, "members", [m])
    for member in members:
        check = member.provenance.get("engine_check")
        assert check and check["predictions_identical"] and check["max_abs_logit_diff"] <= 1e-4
        assert "license" in member.provenance
    assert m.path.stat().st_size < 1_000_000


def test_the_sound_event_model_ships_without_the_speech_gate():
    """Rain or an engine is not silence: the bundled esc10 file says ``"gate": false``
    (a re-export without ``--no-gate`` would silently label quiet sounds ``_silence_``)."""
    assert bitnet.load("esc10").header.get("gate") is False
    assert bitnet.load("keywords").header.get("gate") is not False
