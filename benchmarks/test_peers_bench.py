"""The peers: PyTorch and ONNX Runtime (float32 and INT8) on the same layers and models as bitnet.

Groups ``kernels`` (L64/L128/L256, batch 1) and ``models`` (LC-BNN, KWS-BNN-M, the
bundled default model and the spectrogram transformer AST, batch 1 and 64), 1 and 2 threads. The bitnet rows of L64-L256,
LC-BNN and KWS-BNN-M are in ``test_kernels_bench.py``; the bitnet rows of the default
model are in ``test_default_bench.py``. ``benchmarks/report.py`` pairs them by
``(group, workload, batch, threads)``. See ``peers.py`` for what each peer is.

``ort-int8`` is the ONNX float twin quantised statically (QDQ, per-channel weights,
min/max calibration over a few seeded random inputs, :func:`peers.quantize_int8`). Every
ONNX Runtime row records the size of the ``.onnx`` file it ran in
``extra_info["model_bytes"]``; PyTorch rows record the size of ``torch.save(state_dict)``.
"""

from __future__ import annotations

import os
from functools import lru_cache

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[train]')")

from benchmarks import peers  # noqa: E402

THREADS = [1, 2]
BATCHES = [1, 64]
LAYERS = ["L64", "L128", "L256"]
MODELS = ["LC-BNN", "KWS-BNN-M", "default", "AST"]


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx")


@lru_cache(maxsize=None)
def _model(workload: str, runtime: str):
    """The torch model for a (workload, runtime); ImportError when it cannot be built yet."""
    if runtime == "torch-bnn":
        return peers.trainer_model(workload)
    return peers.float_twin(workload)


def _model_or_skip(workload, runtime):
    try:
        return _model(workload, runtime)
    except ImportError as exc:
        pytest.skip(f"{runtime} {workload}: {exc}")


def _input_hw(workload: str) -> tuple[int, int]:
    if workload == "default":
        return default_input_hw()
    return peers.MODEL_INPUTS[workload]


@lru_cache(maxsize=None)
def default_input_hw() -> tuple[int, int]:
    """(mel bands, frames) of the bundled default model, from its file header."""
    try:
        from bitnet import modelfile
    except ImportError as exc:
        raise ImportError(f"bitnet.modelfile is not available ({exc})") from exc
    header = modelfile.read_model(peers.default_model_path())[0]
    h, w, _ = header["input"]["shape"]
    return int(h), int(w)


_onnx_paths: dict[tuple[str, str], object] = {}
_sessions: dict[tuple[str, str, int], object] = {}


def _onnx_path(workload, runtime, example, onnx_dir):
    """The ``.onnx`` file of ``runtime`` (``ort-float`` or ``ort-int8``), made once."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[bench]')")
    pytest.importorskip("onnx", reason="onnx is not installed (pip install -e '.[bench]')")
    key = (workload, runtime)
    if key not in _onnx_paths:
        if runtime == "ort-float":
            model = _model_or_skip(workload, "ort-float")
            _onnx_paths[key] = peers.export_onnx(model, example[:1], onnx_dir / f"{workload}.onnx")
        else:
            float_path = _onnx_path(workload, "ort-float", example, onnx_dir)
            _onnx_paths[key] = peers.quantize_int8(float_path, peers.calibration_inputs(example),
                                                   onnx_dir / f"{workload}.int8.onnx")
    return _onnx_paths[key]


def _ort_session(workload, runtime, threads, example, onnx_dir):
    key = (workload, runtime, threads)
    if key not in _sessions:
        _sessions[key] = peers.ort_session(_onnx_path(workload, runtime, example, onnx_dir), threads)
    return _sessions[key]


def _run_peer(bench, group, workload, runtime, batch, threads, x_np, onnx_dir):
    x = torch.from_numpy(x_np)
    extra = {}
    if runtime in ("ort-float", "ort-int8"):
        session = _ort_session(workload, runtime, threads, x_np, onnx_dir)
        fn = peers.ort_runner(session, x_np)
        macs = peers.count_macs(_model(workload, "ort-float"), x)
        extra["model_bytes"] = os.path.getsize(_onnx_path(workload, runtime, x_np, onnx_dir))
        if runtime == "ort-int8":
            extra.update(quant_format="QDQ", per_channel=True, calibration="MinMax",
                         calibration_samples=peers.CALIBRATION_SAMPLES,
                         activation_type=peers.INT8_TYPES["activation"], weight_type=peers.INT8_TYPES["weight"])
    else:
        model = _model_or_skip(workload, runtime)
        peers.set_torch_threads(threads)
        fn = peers.torch_runner(model, x)
        macs = peers.count_macs(model, x)
        extra["model_bytes"] = peers.torch_state_bytes(workload, runtime == "torch-bnn")
    bench(fn, group=group, runtime=runtime, workload=workload, batch=batch, threads=threads,
          macs=macs, **extra)


@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"t{t}")
@pytest.mark.parametrize("runtime", ["torch-float", "ort-float", "ort-int8"])
@pytest.mark.parametrize("workload", LAYERS)
def test_layer_peers(bench, workload, runtime, threads, onnx_dir):
    """One 3×3 same conv (+bias+ReLU), float32 NCHW, batch 1 (DESIGN §4 L64/L128/L256)."""
    x = peers.layer_input_nchw(workload, batch=1)
    _run_peer(bench, "kernels", workload, runtime, 1, threads, x, onnx_dir)


@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"t{t}")
@pytest.mark.parametrize("batch", BATCHES, ids=lambda b: f"b{b}")
@pytest.mark.parametrize("runtime", ["torch-float", "torch-bnn", "ort-float", "ort-int8"])
@pytest.mark.parametrize("workload", MODELS)
def test_model_peers(bench, workload, runtime, batch, threads, onnx_dir):
    """A whole model on log-mel features (N, 1, mels, frames), float32 in, logits out."""
    try:
        hw = _input_hw(workload)
        mismatch = peers.default_twin_mismatch() if workload == "default" else None
    except (ImportError, OSError, KeyError) as exc:
        pytest.skip(f"default model or its twin unavailable: {exc}")
    if mismatch:
        pytest.skip(f"no torch twin of the bundled model: {mismatch}")
    x = peers.features_nchw(hw, batch)
    _run_peer(bench, "models", workload, runtime, batch, threads, x, onnx_dir)
