"""One fresh process: import a runtime, load a model file, run inferences, report.

Run by ``test_memory_bench.py`` as ``python -m benchmarks._probe '<json spec>'`` with
the repository root as working directory. The spec names the runtime, the workload,
the model file, the input file (a ``.npy`` of features, or a ``.wav`` clip that bitnet
classifies end to end, frontend included) and the number of inferences. Only the
standard library is imported before the clock starts, so ``import_s`` is the runtime's
own import cost.

Prints two lines of JSON on stdout: ``{"event": "first", ...}`` right after the first
inference (the parent timestamps it to get the wall time of a whole new process up to
its first answer) and ``{"event": "done", ...}`` at the end, with the peak RSS
(``VmHWM``, see :func:`_rss_mb`) after all inferences.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402


def _rss_mb() -> float:
    """Peak resident set size of this process, MB.

    Linux: ``VmHWM`` from /proc/self/status. Not ``ru_maxrss``: Linux carries the
    parent's high-water mark across fork+exec into the child's ``ru_maxrss``, so a probe
    started from a pytest process holding torch and the models reported ~500 MB whatever
    it ran. ``VmHWM`` belongs to the new address space made by exec. Elsewhere
    ``ru_maxrss`` (bytes on macOS, kilobytes on other systems).
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 2**20 if sys.platform == "darwin" else kb / 1024.0


def _bitnet(spec):
    import bitnet

    if spec["threads"] != 1:  # 1 is the default; a user would not call it
        bitnet.set_num_threads(spec["threads"])
    t_import = time.perf_counter()
    model = bitnet.load(spec["model"]) if spec.get("model") else bitnet.load()
    t_load = time.perf_counter()
    if spec["input"].endswith(".wav"):
        path = spec["input"]

        def infer():
            return model.predict(path)
    else:
        import numpy as np

        from benchmarks.bitnet_api import features_runner

        infer = features_runner(model, np.load(spec["input"]))
    return t_import, t_load, infer


def _torch(spec):
    import numpy as np
    import torch

    torch.set_num_threads(spec["threads"])
    from trainer import models

    t_import = time.perf_counter()
    net = models.build(spec["trainer_name"], n_classes=10,
                       float_twin=spec["runtime"] == "torch-float")
    net.load_state_dict(torch.load(spec["model"], map_location="cpu", weights_only=True))
    net.eval()
    t_load = time.perf_counter()
    x = torch.from_numpy(np.load(spec["input"]))

    def infer():
        with torch.inference_mode():
            return net(x)

    return t_import, t_load, infer


def _ort(spec):
    import numpy as np
    import onnxruntime as ort

    t_import = time.perf_counter()
    so = ort.SessionOptions()
    so.intra_op_num_threads = spec["threads"]
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(spec["model"], so, providers=["CPUExecutionProvider"])
    t_load = time.perf_counter()
    feed = {sess.get_inputs()[0].name: np.load(spec["input"])}

    def infer():
        return sess.run(None, feed)

    return t_import, t_load, infer


RUNNERS = {"bitnet": _bitnet, "torch-float": _torch, "torch-bnn": _torch, "ort-float": _ort, "ort-int8": _ort}


def main(argv=None) -> int:
    spec = json.loads((argv or sys.argv[1:])[0])
    t_import, t_load, infer = RUNNERS[spec["runtime"]](spec)
    infer()
    t_first = time.perf_counter()
    rss_first = _rss_mb()
    print(json.dumps({"event": "first", "import_s": t_import - T0, "load_s": t_load - t_import,
                      "first_inference_s": t_first - t_load, "startup_s": t_first - T0,
                      "rss_first_mb": rss_first}), flush=True)
    n = int(spec.get("n", 1))
    t1 = time.perf_counter()
    for _ in range(n - 1):
        infer()
    t2 = time.perf_counter()
    print(json.dumps({"event": "done", "n": n, "peak_rss_mb": _rss_mb(),
                      "steady_ms": (t2 - t1) / max(n - 1, 1) * 1e3}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
