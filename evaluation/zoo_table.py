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
model, ``float_twin_test`` for the float twin; INT8 accuracy was not measured). An
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
    shape = (1, 1, *member.header["input"]["shape"][:2])  # NCHW: Net.forward would unsqueeze
    x = torch.from_numpy(np.random.default_rng(0).uniform(-80, 0, shape).astype(np.float32))
    net = torch.nn.Sequential(*net.layers).eval()  # the same layers, without forward's shape branch
    if int8:
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        torch.backends.quantized.engine = "x86"
        prepared = prepare_fx(net, get_default_qconfig_mapping("x86"), example_inputs=(x,))
        with torch.no_grad():
            for s in range(8):
                prepared(torch.from_numpy(np.random.default_rng(s).uniform(-80, 0, shape).astype(np.float32)))
        net = convert_fx(prepared)
    with torch.no_grad():
        return _median(lambda: net(x), seconds)


def measure(seconds: float = 0.5) -> list[dict]:
    import warnings

    import torch

    warnings.simplefilter("ignore")  # FX quantization's deprecation notices

    import bitnet
    from bitnet.compare import compare

    torch.set_num_threads(1)
    bitnet.set_num_threads(1)
    names = list(bitnet.bundled_models())
    models = [bitnet.load(n) for n in names]
    rows = compare(models, names=names, seconds=seconds)
    for m, name in zip(models, names):
        members = getattr(m, "members", [m])
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
            row["accuracy"] = acc.get("float_twin_test") if prec == "float32" and isinstance(acc, dict) else None
    return rows


def main() -> int:
    import torch

    import bitnet
    from bitnet.compare import format_compare

    rows = measure()
    md = format_compare(rows, markdown=True)
    cpu = platform.processor() or platform.machine()
    note = (f"Measured by `python -m evaluation.zoo_table` on {cpu} ({platform.machine()}), "
            f"batch 1, one thread, medians, all in one run (bitnet {bitnet.__version__}, "
            f"torch {torch.__version__}); binary = the `.bnn` in the engine, float32 = the float twin's "
            "architecture in PyTorch eager, INT8 = that twin after PyTorch FX static quantization (x86). "
            "Accuracy from each file's provenance (binary: the model; float32: its float twin; INT8 "
            "accuracy not measured). On a shared, busy machine the latencies are indicative.")
    (REPO / "docs" / "zoo_table.json").write_text(json.dumps({"rows": rows, "note": note}, indent=2))
    (REPO / "docs" / "zoo_table.md").write_text(md + "\n\n" + note + "\n")
    readme = REPO / "README.md"
    text = readme.read_text()
    if MARK_BEGIN in text and MARK_END in text:
        a, b = text.index(MARK_BEGIN) + len(MARK_BEGIN), text.index(MARK_END)
        readme.write_text(text[:a] + "\n" + md + "\n\n" + note + "\n" + text[b:])
    print(md)
    print(note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
