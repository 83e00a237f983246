"""The bundled spectrogram-transformer model (``bitnet/models/ast_digits.bnn``):
provenance says how it was made, the engine alone re-measures the accuracy it claims,
and ``bitnet summary`` lists its layers. No torch here."""

from __future__ import annotations

from pathlib import Path

import pytest

AST = Path(__file__).resolve().parents[1] / "bitnet" / "models" / "ast_digits.bnn"


def _read():
    from bitnet.modelfile import read_model

    return read_model(AST)


def test_ast_model_provenance_and_summary():
    import bitnet

    header, _ = _read()
    prov = header["provenance"]
    for key in ("dataset", "split", "accuracy", "command", "created", "export_command", "license"):
        assert prov.get(key), key
    assert prov["command"].startswith("python -m trainer train") and "--model ast" in prov["command"]
    assert prov["split"] == "official" and prov["accuracy"]["float_twin_test"] > 0
    assert prov["engine_check"]["predictions_identical"] is True
    assert prov["engine_check"]["max_abs_logit_diff"] <= 1e-4
    assert AST.stat().st_size < 1024 * 1024
    rows = bitnet.load(AST).summary(as_dict=True)
    ops = {r["op"] for r in (rows["layers"] if isinstance(rows, dict) else rows)}
    assert {"qconv", "tokens", "layernorm", "bmatmul", "softmax", "attend", "bconv", "dense"} <= ops


def test_ast_model_accuracy_on_fsdd_official_test(official_accuracy):
    acc, header = official_accuracy(AST)
    prov = header["provenance"]
    assert acc == pytest.approx(prov["accuracy"]["test"], abs=1e-6)
