"""``python -m trainer train --ddp`` under torchrun: two processes on loopback, gloo.

One short epoch on a few FSDD clips with a small digits model. Checked: both replicas
end with the same weights and batch-norm statistics (checksums of every rank's state),
the distributed batch-norm recompute equals the single-process one, only rank 0 wrote
the run, and the exported model file loads and classifies in the engine.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from trainer import data as D  # noqa: E402
from trainer.distributed import state_checksum  # noqa: E402
from trainer.train import TrainConfig, fast_layout, finalize_bn, load_run  # noqa: E402

pytestmark = pytest.mark.train

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_stay_in_sync_and_export(tmp_path, fsdd_dir):
    files = [f for d in range(10) for f in sorted(fsdd_dir.glob(f"{d}_jackson_*.wav"))[:4]]
    manifest = tmp_path / "tiny.csv"
    manifest.write_text("path,label\n" + "".join(f"{f},{f.name[0]}\n" for f in files))
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "1",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "trainer", "train", "--ddp", "--data", str(manifest), "--split", "random:0.25",
           "--model", "digits", "--model-kwargs", '{"stages": [[64, 1], [128, 1]]}',
           "--epochs", "1", "--batch-size", "8", "--no-progress", "--out", str(run),
           "--cache-dir", str(tmp_path / "cache")]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                       env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("epoch   1 ") == 1  # rank 0 logs, rank 1 is silent

    result = json.loads((run / "result.json").read_text())
    ddp = result["ddp"]
    assert ddp["world_size"] == 2 and ddp["backend"] == "gloo"
    assert len(ddp["state_checksums"]) == 2 and ddp["replicas_in_sync"]
    assert len(set(ddp["state_checksums"])) == 1
    model, info = load_run(run)
    assert state_checksum(model) == ddp["state_checksums"][0]  # model.pt is what the ranks held
    assert info["config"]["ddp"] is True
    assert result["train_clips"] == 30 and result["test_clips"] == 10

    # the statistics the two ranks computed together equal one process's over all batches
    cfg = TrainConfig(**{**info["config"], "ddp": False})
    feat = D.Featurizer(D.frontend_config(**info["frontend"]))
    train_set, _, _ = D.load_dataset(cfg.data, cfg.split, cfg.seed)
    waves = D.load_waves(feat, train_set)
    x_train = D.clean_features(feat, train_set, cfg.cache_dir, waves=waves)
    torch.set_num_threads(cfg.threads)       # as the ranks ran: oneDNN's sums depend on the threads
    single = fast_layout(load_run(run)[0])   # and on the layout the ranks trained in
    finalize_bn(single, cfg, feat, waves, x_train, cfg.bn_recompute)
    bn = [n for n in model.state_dict() if n.endswith("running_mean") or n.endswith("running_var")]
    assert bn
    for n in bn:
        np.testing.assert_allclose(model.state_dict()[n].numpy(), single.state_dict()[n].numpy(),
                                   rtol=1e-4, atol=1e-5, err_msg=n)   # float32 rounding

    # rank 0 exported nothing else; the run exports and the engine runs the file
    out = tmp_path / "ddp.bnn"
    r = subprocess.run([sys.executable, "-m", "trainer", "export", str(run), "--out", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    import bitnet

    m = bitnet.load(out)
    preds = m.predict([str(f) for f in files[:3]])
    assert all(p.label in m.labels and 0 < p.probability <= 1 for p in preds)
    with torch.no_grad():
        ref = model(torch.from_numpy(np.stack([feat(feat.load(f)) for f in files[:3]]))).argmax(1).numpy()
    assert [p.index for p in preds] == ref.tolist()
