"""The bundled spectrogram-transformer model (``bitnet/models/ast_digits.bnn``):
provenance says how it was made, the engine alone re-measures the accuracy it claims,
and ``bitnet summary`` lists its layers. No torch here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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


def test_ast_model_accuracy_on_fsdd_official_test(fsdd_dir):
    import bitnet
    from bitnet.features import FrontendConfig, clip_features
    from bitnet.graph import Graph

    header, tensors = _read()
    prov = header["provenance"]
    cfg = FrontendConfig.from_dict(header["frontend"])
    files = sorted(f for f in fsdd_dir.glob("*.wav") if int(f.stem.split("_")[2]) <= 4)
    assert len(files) == 300
    x = np.stack([clip_features(bitnet.load_audio(str(f), sr=cfg.sample_rate)[0], cfg) for f in files])
    y = np.array([int(f.name[0]) for f in files])
    g = Graph(header["layers"], tensors, input_shape=header["input"]["shape"], output=header["output"])
    acc = float(np.mean(g.run(x).argmax(1) == y))
    assert acc == pytest.approx(prov["accuracy"]["test"], abs=1e-6)
