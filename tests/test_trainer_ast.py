"""The binarized spectrogram transformer in the trainer (``--model ast``): a few
optimiser steps, then the exporter's engine == PyTorch check, the model file through
``bitnet.load``, the float twin, and the FSDD validation split."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from trainer import data as D  # noqa: E402
from trainer import export as E  # noqa: E402
from trainer import models as M  # noqa: E402
from trainer.train import recompute_bn_stats  # noqa: E402

pytestmark = pytest.mark.train

FRONTEND = dict(sample_rate=8000, n_fft=256, hop_length=80, n_mels=40, top_db=80.0, ref="max", frames=33)
KW = dict(dim=70, depth=2, heads=2, mlp=65, patch=[20, 4])     # channels not multiples of 64


def _data(rng, n=12):
    t = np.arange(2640) / 8000.0
    labels = rng.integers(0, 4, size=n)
    waves = [(np.sin(2 * np.pi * (300 + 400 * c) * t) + 0.1 * rng.standard_normal(len(t))).astype(np.float32)
             for c in labels]
    feat = D.Featurizer(D.frontend_config(**FRONTEND))
    return np.stack([feat(w) for w in waves]), labels, feat


def _train_a_little(model, x, y, n=3):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    model.train()
    for _ in range(n):
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    recompute_bn_stats(model, x)


@pytest.mark.parametrize("probs", ["real", "binary"])
def test_ast_exports_and_the_engine_reproduces_it(tmp_path, rng, probs):
    import bitnet

    torch.manual_seed(0)
    x, y, feat = _data(rng)
    model = M.build("ast", n_classes=4, input_shape=x.shape[1:], probs=probs, **KW)
    _train_a_little(model, x, y)
    info = {"labels": list("abcd"), "frontend": feat.cfg.to_dict()}
    out = tmp_path / "ast.bnn"
    r = E.export_model(model, info, out, x, y, provenance={"dataset": "test", "command": "pytest"},
                       log=lambda *a: None)
    assert r["agree"] and r["max_abs_diff"] <= 1e-4
    ops = [row["op"] for row in r["table"]]
    for op in ("qconv", "tokens", "layernorm", "bmatmul", "softmax", "attend", "bconv", "global_avgpool"):
        assert op in ops, op
    m = bitnet.load(out)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(m.graph.run(x), ref, atol=1e-4)
    np.testing.assert_allclose(m.graph.run_reference(x[:2]), ref[:2], atol=1e-4)


def test_float_twin_runs_and_is_not_exportable():
    twin = M.build("ast", n_classes=10, float_twin=True).eval()
    with torch.no_grad():
        assert twin(torch.zeros(2, 40, 101)).shape == (2, 10)
    with pytest.raises(E.ExportError, match="float twin"):
        E.to_graph(twin)


def test_binary_linear_weights_are_latent():
    from trainer.layers import clip_latent_weights, latent_parameters

    model = M.build("ast", n_classes=10)
    latent, _ = latent_parameters(model)
    assert len(latent) == 1 + 2 * 6            # patch embedding + 6 binary matrices per block
    with torch.no_grad():
        latent[-1].fill_(3.0)
    clip_latent_weights(model)
    assert float(latent[-1].detach().max()) == 1.0


def test_bad_options():
    with pytest.raises(ValueError, match="multiple of heads"):
        M.build("ast", dim=64, heads=3)
    with pytest.raises(ValueError, match="probs"):
        M.build("ast", probs="soft")
    with pytest.raises(ValueError, match="unknown ast options"):
        M.build("ast", depht=2)


def test_fsdd_validation_split_is_inside_the_training_takes(fsdd_dir):
    train, val, desc = D.load_dataset("fsdd", "validation")
    takes = lambda s: {int(p.stem.rsplit("_", 1)[1]) for p in s.paths}  # noqa: E731
    assert takes(val) == set(range(5, 10)) and takes(train) == set(range(10, 50))
    assert len(val) == 300 and len(train) == 2400 and "validation" in desc
