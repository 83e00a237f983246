"""Start-up time, peak memory and model file size of each runtime, each in a fresh process.

Group ``startup``. For every case a new ``python -m benchmarks._probe`` process imports
the runtime, loads the model from its file, and runs inferences at batch 1, one thread.

- The timed quantity (the benchmark's median) is the wall time of a whole new process
  that imports, loads and answers once, then exits: DESIGN §5's start-up figure
  (bitnet goal ≤ 0.6 s with a warm kernel cache; ``import torch`` alone ~0.93 s).
  One untimed process runs first so that numba's cache and the OS page cache are warm.
- ``extra_info["peak_rss_mb"]`` is the peak RSS (``VmHWM``: ``ru_maxrss`` of a child
  inherits the parent's high-water mark on Linux) of a separate process that runs 100
  inferences (goal ≤ 100 MB for bitnet), ``extra_info["model_bytes"]`` the size of the
  file it loaded: bitnet ``.bnn``, ``torch.save(state_dict)``, ``.onnx``.
- ``extra_info["import_s"]``, ``load_s``, ``first_inference_s``, ``startup_s`` are
  measured inside the process (from its first statement), ``process_first_s`` from
  the parent (interpreter start-up included).

Under ``--benchmark-disable`` each case runs a single short process (2 inferences), so
CI proves every probe still works without spending a minute on it.

Cases: bitnet classifying a real clip with the bundled default model (``default-clip``,
frontend included: the issue-5 goal), bitnet on KWS-BNN-M features, and torch float
twin, torch binarized, ONNX Runtime float twin and that twin quantised to INT8
(:func:`peers.quantize_int8`) on KWS-BNN-M and on the default model's architecture.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks import peers

REPO = Path(__file__).resolve().parents[1]
FSDD = Path(os.environ.get("BITNET_FSDD", REPO.parent / "shared" / "data" / "fsdd" / "recordings"))
ROUNDS = 3           # timed start-up processes per case in a full run
RSS_INFERENCES = 100

CASES = [
    ("bitnet", "default-clip"),
    ("bitnet", "KWS-BNN-M"),
    ("torch-float", "KWS-BNN-M"),
    ("torch-bnn", "KWS-BNN-M"),
    ("ort-float", "KWS-BNN-M"),
    ("ort-int8", "KWS-BNN-M"),
    ("torch-float", "default"),
    ("torch-bnn", "default"),
    ("ort-float", "default"),
    ("ort-int8", "default"),
]


class ProbeUnavailable(RuntimeError):
    """The probe could not import a piece that has not landed yet (the case is skipped)."""


def run_probe(spec: dict, timeout: float = 120.0) -> dict:
    """Run one probe process; return its two JSON reports merged, plus parent timings."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks._probe", json.dumps(spec)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    out: dict = {}
    try:
        for line in proc.stdout:
            if line.startswith("{"):
                msg = json.loads(line)
                if msg.get("event") == "first":
                    out["process_first_s"] = time.perf_counter() - t0
                out.update(msg)
        stderr = proc.stderr.read()
        rc = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    out["process_total_s"] = time.perf_counter() - t0
    if rc != 0 or "peak_rss_mb" not in out:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        if last.startswith(("ModuleNotFoundError", "ImportError")):
            raise ProbeUnavailable(f"{spec['runtime']} {spec['workload']}: {last}")
        raise RuntimeError(f"probe {spec['runtime']} {spec['workload']} failed (exit {rc}):\n{stderr[-3000:]}")
    out.pop("event", None)
    return out


def _clip() -> str:
    """A real spoken-digit clip: the repo's examples, else FSDD; else a skip."""
    for folder in (REPO / "examples", FSDD):
        wavs = sorted(folder.glob("*.wav")) if folder.is_dir() else []
        if wavs:
            return str(wavs[0])
    pytest.skip("no .wav clip in examples/ or FSDD to classify")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Model and input files, written once per session on demand."""
    return _Files(tmp_path_factory.mktemp("startup"))


class _Files:
    def __init__(self, root: Path):
        self.root = root
        self.cache: dict = {}

    def get(self, runtime: str, workload: str) -> dict:
        key = (runtime, workload)
        if key not in self.cache:
            self.cache[key] = self._make(runtime, workload)
        return self.cache[key]

    def _make(self, runtime: str, workload: str) -> dict:
        root = self.root
        if runtime == "bitnet" and importlib.util.find_spec("bitnet.model") is None:
            pytest.skip("bitnet.model (bitnet.load) is not available yet")
        if runtime == "bitnet" and workload == "default-clip":
            try:
                path = peers.default_model_path()
            except ImportError as exc:
                pytest.skip(str(exc))
            return {"model": str(path), "input": _clip()}
        if runtime == "bitnet":
            from benchmarks import bitnet_api

            try:
                path = bitnet_api.save_workload(workload, root / f"{workload}.bnn")
            except ImportError as exc:
                pytest.skip(f"bitnet {workload}: {exc}")
            x = peers.nchw_to_nhwc(peers.features_nchw(peers.MODEL_INPUTS[workload], 1))
            np.save(root / f"{workload}-nhwc.npy", x)
            return {"model": str(path), "input": str(root / f"{workload}-nhwc.npy")}
        torch = pytest.importorskip("torch", reason="torch is not installed")
        if workload == "default":
            try:
                mismatch = peers.default_twin_mismatch()
            except ImportError as exc:
                pytest.skip(str(exc))
            if mismatch:
                pytest.skip(f"no torch twin of the bundled model: {mismatch}")
            from bitnet import modelfile

            hw = tuple(modelfile.read_model(peers.default_model_path())[0]["input"]["shape"][:2])
        else:
            hw = peers.MODEL_INPUTS[workload]
        x = peers.features_nchw(hw, 1)
        xin = root / f"{workload}-nchw.npy"
        np.save(xin, x)
        try:
            if runtime == "torch-bnn":
                model = peers.trainer_model(workload)
            else:
                model = peers.float_twin(workload)
        except ImportError as exc:
            pytest.skip(f"{runtime} {workload}: {exc}")
        if runtime in ("ort-float", "ort-int8"):
            pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
            pytest.importorskip("onnx", reason="onnx is not installed")
            path = peers.export_onnx(model, x, root / f"{workload}.onnx")
            if runtime == "ort-int8":
                path = peers.quantize_int8(path, peers.calibration_inputs(x), root / f"{workload}.int8.onnx")
        else:
            path = root / f"{workload}-{runtime}.pt"
            torch.save(model.state_dict(), path)
        return {"model": str(path), "input": str(xin),
                "trainer_name": peers.TRAINER_NAMES[workload]}


@pytest.mark.parametrize("runtime,workload", CASES, ids=[f"{r}-{w}" for r, w in CASES])
def test_startup_and_memory(benchmark, files, runtime, workload):
    spec = dict(files.get(runtime, workload), runtime=runtime, workload=workload, threads=1)
    quick = benchmark.disabled
    benchmark.group = "startup"
    benchmark.extra_info.update(runtime=runtime, workload=workload, batch=1, threads=1,
                                model_bytes=os.path.getsize(spec["model"]),
                                model_file=Path(spec["model"]).name)
    try:  # warms numba's cache and the page cache; not recorded
        warm = run_probe(dict(spec, n=2 if quick else 1))
    except ProbeUnavailable as exc:
        pytest.skip(str(exc))
    if quick:  # one process proves the probe works; nothing to time
        runs = [warm]
        benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    else:
        runs = []

        def once():
            runs.append(run_probe(dict(spec, n=1)))

        benchmark.pedantic(once, rounds=ROUNDS, iterations=1)
    memory = runs[-1] if quick else run_probe(dict(spec, n=RSS_INFERENCES))
    for key in ("import_s", "load_s", "first_inference_s", "startup_s", "process_first_s"):
        benchmark.extra_info[key] = statistics.median(r[key] for r in runs)
    benchmark.extra_info["peak_rss_mb"] = memory["peak_rss_mb"]
    benchmark.extra_info["rss_first_mb"] = memory["rss_first_mb"]
    benchmark.extra_info["rss_inferences"] = memory["n"]
    benchmark.extra_info["steady_ms"] = memory["steady_ms"]
