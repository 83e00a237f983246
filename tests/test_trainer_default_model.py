"""The bundled default model: provenance says how it was made, and it is that good.

No torch here: the engine alone re-measures the accuracy the provenance claims.
"""

from __future__ import annotations

from pathlib import Path

import pytest

DEFAULT = Path(__file__).resolve().parents[1] / "bitnet" / "models" / "default.bnn"


def _read():
    from bitnet.modelfile import read_model

    return read_model(DEFAULT)


def test_default_model_provenance():
    header, _ = _read()
    prov = header["provenance"]
    # the regression this file guards against: random weights shipped as the default
    assert "placeholder" not in str(prov.get("status", "")), "default model is a random placeholder"
    assert header["labels"] == [str(d) for d in range(10)]
    for key in ("dataset", "split", "accuracy", "command", "created", "export_command", "license"):
        assert prov.get(key), key
    assert prov["command"].startswith("python -m trainer train")
    assert prov["accuracy"]["test"] >= 0.97
    assert prov["engine_check"]["predictions_identical"] is True
    assert prov["engine_check"]["max_abs_logit_diff"] <= 1e-4
    assert DEFAULT.stat().st_size < 128 * 1024


CLEAN = DEFAULT.parent / "digits-clean.bnn"   # the previous default: no noise in training


@pytest.mark.parametrize("path", [DEFAULT, CLEAN], ids=["default", "digits-clean"])
def test_default_model_accuracy_on_fsdd_official_test(official_accuracy, path):
    acc, header = official_accuracy(path)
    prov = header["provenance"]
    assert prov.get("split") == "official", f"default model not trained on the official split: {prov.get('split')!r}"
    assert acc == pytest.approx(prov["accuracy"]["test"], abs=1e-6)
    assert acc >= 0.95


def test_default_model_records_its_recipe_and_evidence():
    """The default is the noise-robust recipe chosen on the leave-one-speaker-out folds, and
    its file carries the six-fold and robustness figures it was chosen and measured by."""
    header, _ = _read()
    prov = header["provenance"]
    assert "--noise mixed" in prov["command"] and "--vtlp" in prov["command"]
    loso = prov["evidence"]["loso"]
    assert set(loso["bnn"]) == {"george", "jackson", "lucas", "nicolas", "theo", "yweweler"}
    assert abs(loso["bnn_mean"] - sum(loso["bnn"].values()) / 6) < 1e-9
    rob = prov["evidence"]["robustness"]["accuracy_gate_on"]
    assert rob["clean"] == pytest.approx(prov["accuracy"]["test"], abs=1e-3)


def test_digits_robust_names_the_default():
    import bitnet

    assert bitnet.load("digits-robust").path == bitnet.load("digits").path == bitnet.load().path
    assert "digits-clean" in bitnet.bundled_models()
