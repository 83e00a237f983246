"""The complexity table of the shipped models: float32 / INT8 / binary side by side.

``python -m evaluation.zoo_table`` (needs the ``train`` extra for PyTorch) measures, in
one run on this machine, for every bundled model (``bitnet.bundled_models()``):

* **binary** — the ``.bnn`` file in the engine (batch 1, one thread, median);
* **float32** — the float twin of the same architecture in PyTorch eager mode (batch 1,
  one thread; weights do not change the time, so the twin is built from the
  provenance's model name and options);
* **INT8** — that float twin quantized statically with PyTorch's FX graph mode
  (``x86`` backend, calibrated on a few feature windows), batch 1, one thread.

Parameters, MACs, binary MACs and bytes come from the engine's own counts
(:mod:`bitnet.compare`); accuracy from each file's provenance (``test`` for the binary
model, ``float_twin_test`` for the float twin; INT8: :func:`int8_accuracy`, where the
trained twin's run directory is present; where it is not, the INT8 accuracy of the
previous ``docs/zoo_table.json`` is kept for the same model file, by its SHA-256, see
:func:`keep_recorded`). An
ensemble's float/INT8 latency is the sum over its members. It writes
``docs/zoo_table.json``, ``docs/zoo_table.md`` and the table between the
``<!-- zoo-table -->`` markers of ``README.md``.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MARK_BEGIN, MARK_END = "<!-- zoo-table begin -->", "<!-- zoo-table end -->"


def _median(fn, seconds=0.5, min_reps=5):
    fn()
    times, end = [], time.perf_counter() + seconds
    while len(times) < min_reps or time.perf_counter() < end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _float_twin(member):
    from trainer import models as M

    prov = member.provenance
    name = prov.get("model")
    if name not in M.SPECS:
        return None
    kw = dict(prov.get("model_kwargs") or {})
    shape = tuple(member.header["input"]["shape"][:2])
    net = M.build(name, n_classes=len(member.labels), float_twin=True, input_shape=shape, **kw)
    return net.eval()


def _torch_latency(member, int8: bool, seconds: float):
    import torch

    net = _float_twin(member)
    if net is None:
        return None
    hw = tuple(member.header["input"]["shape"][:2])
    x = torch.from_numpy(np.random.default_rng(0).uniform(-80, 0, (1, 1, *hw)).astype(np.float32))
    if int8:  # calibrated on random log-mel-like windows: weights and ranges do not change the time
        net = _quantize(net, hw, [np.random.default_rng(s).uniform(-80, 0, (1, *hw)).astype(np.float32)
                                  for s in range(8)])
    else:
        net = torch.nn.Sequential(*net.layers).eval()  # the same layers, without forward's shape branch
    with torch.no_grad():
        return _median(lambda: net(x), seconds)


def _quantize(net, shape, batches):
    """``net`` (a float twin) after FX static quantization (x86), calibrated on ``batches``."""
    import torch
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    seq = torch.nn.Sequential(*net.layers).eval()  # the same layers, without forward's shape branch
    example = torch.zeros((1, 1, *shape))
    prepared = prepare_fx(seq, get_default_qconfig_mapping("x86"), example_inputs=(example,))
    with torch.no_grad():
        for x in batches:
            prepared(torch.from_numpy(x[:, None]))
    return convert_fx(prepared)


def _twin_run(member) -> Path | None:
    """The trained float twin's run directory named by the provenance (``--out`` of its
    ``float_twin_command``; with ``--folds``, its ``fold<K>`` of the model's own split)
    when it is present on this machine."""
    import shlex

    args = shlex.split(member.provenance.get("float_twin_command") or "")
    out = args[args.index("--out") + 1] if "--out" in args[:-1] else None
    run = REPO / out if out else None
    split = str(member.provenance.get("split") or "")
    if run is not None and "--folds" in args and split.startswith("fold:"):
        run = run / f"fold{split[5:]}"       # a --folds runner's run of the model's own fold
    return run if run is not None and (run / "model.pt").exists() else None


def int8_accuracy(member, calib_clips: int = 256):
    """Test accuracy of the trained float twin after FX static quantization (x86), on the
    model's own test clips, calibrated on ``calib_clips`` of its training clips (clean
    features, a fixed choice). ``None`` when the twin's run directory is not on this
    machine (runs/ is not in the repository) or FX cannot quantize the architecture."""
    import torch

    from trainer import data as D
    from trainer.train import load_run

    run = _twin_run(member)
    if run is None:
        return None
    net, info = load_run(run)
    feat = D.Featurizer(D.frontend_config(**info["frontend"]))
    cache = info["config"].get("cache_dir") or None
    train_set, test_set, _ = D.load_dataset(info["data"], info["split"], info["config"]["seed"])
    pick = np.random.default_rng(0).choice(len(train_set), min(calib_clips, len(train_set)), replace=False)
    xc = D.clean_features(feat, train_set.subset(np.sort(pick)), cache)
    xt = D.clean_features(feat, test_set, cache)
    q = _quantize(net.eval(), xt.shape[1:], [xc[i:i + 64] for i in range(0, len(xc), 64)])
    with torch.no_grad():
        pred = torch.cat([q(torch.from_numpy(xt[i:i + 64, None])) for i in range(0, len(xt), 64)]).argmax(1)
    return float((pred.numpy() == np.asarray(test_set.labels)).mean())


def keep_recorded(rows: list[dict], previous: list[dict]) -> list[dict]:
    """Fill the INT8 accuracies this run could not measure (the twin's run directory is
    not on this machine; ``runs/`` is not in the repository) from ``previous`` rows of
    the same model name, precision and model file (``file_sha256``): a regenerated table
    never drops a measured figure, and never keeps one of a file that has changed. Such
    rows get ``"accuracy_recorded": true``."""
    old = {(r.get("model"), r.get("precision"), r.get("file_sha256")): r for r in previous
           if r.get("file_sha256") and r.get("accuracy") is not None}
    for r in rows:
        prev = old.get((r.get("model"), r.get("precision"), r.get("file_sha256")))
        if r.get("precision") == "INT8" and r.get("accuracy") is None and prev is not None:
            r["accuracy"] = prev["accuracy"]
            r["accuracy_recorded"] = True
    return rows


def measure(seconds: float = 0.5) -> list[dict]:
    import warnings

    import torch

    warnings.simplefilter("ignore")  # FX quantization's deprecation notices

    import bitnet
    from bitnet.compare import compare

    from ._docs import file_sha256

    torch.set_num_threads(1)
    bitnet.set_num_threads(1)
    names = list(bitnet.bundled_models())
    models = [bitnet.load(n) for n in names]
    rows = compare(models, names=names, seconds=seconds)
    for m, name in zip(models, names):
        members = getattr(m, "members", [m])
        sha = file_sha256(m.path)
        for r in rows:
            if r["model"] == name:
                r["file_sha256"] = sha
        for prec, int8 in (("float32", False), ("INT8", True)):
            try:
                lat = [_torch_latency(x, int8, seconds) for x in members]
                ms = None if any(v is None for v in lat) else 1e3 * sum(lat)
            except Exception as e:  # an architecture FX cannot quantize: say so, keep going
                print(f"{name} {prec}: not measured ({type(e).__name__}: {str(e).splitlines()[0][:80]})")
                ms = None
            row = next(r for r in rows if r["model"] == name and r["precision"] == prec)
            row["latency_ms"] = ms
            acc = m.provenance.get("accuracy") or {}
            if prec == "float32":
                row["accuracy"] = acc.get("float_twin_test") if isinstance(acc, dict) else None
            else:
                try:
                    row["accuracy"] = int8_accuracy(m) if not hasattr(m, "members") else None
                except Exception as e:  # noqa: BLE001 (an architecture FX cannot quantize: say so)
                    print(f"{name} INT8 accuracy: not measured ({type(e).__name__}: {str(e).splitlines()[0][:80]})")
                    row["accuracy"] = None
    return rows


def main() -> int:
    import torch

    import bitnet
    from bitnet.compare import format_compare

    from ._docs import replace_between

    rows = measure()
    prev = REPO / "docs" / "zoo_table.json"
    keep_recorded(rows, json.loads(prev.read_text())["rows"] if prev.exists() else [])
    md = format_compare(rows, markdown=True)
    cpu = platform.processor() or platform.machine()
    note = (f"Measured by `python -m evaluation.zoo_table` on {cpu} ({platform.machine()}), "
            f"batch 1, one thread, medians, all in one run (bitnet {bitnet.__version__}, "
            f"torch {torch.__version__}); binary = the `.bnn` in the engine, float32 = the float twin's "
            "architecture in PyTorch eager, INT8 = that twin after PyTorch FX static quantization (x86). "
            "Accuracy: binary and float32 from each file's provenance (the model; its float twin); INT8 "
            "measured here: the trained float twin (its run directory, where it is on this machine) "
            "quantized the same way, calibrated on 256 training clips, on the model's test clips "
            "(where the twin's run is not on this machine: the figure of the previous run of the same "
            "model file, by SHA-256; - where there is none or FX cannot quantize it). On a shared, busy machine "
            "the latencies are indicative.")
    (REPO / "docs" / "zoo_table.json").write_text(json.dumps({"rows": rows, "note": note}, indent=2))
    (REPO / "docs" / "zoo_table.md").write_text(md + "\n\n" + note + "\n")
    replace_between(REPO / "README.md", MARK_BEGIN, MARK_END, md + "\n\n" + note + "\n")
    print(md)
    print(note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
