"""The float models bitnet is compared against, built the same way every time.

Everything the benchmark suite runs that is *not* bitnet lives here: PyTorch float32
twins of the DESIGN §4 workloads, the PyTorch binarized models of the trainer, their
ONNX exports for ONNX Runtime, and the random inputs. Weights are random (seeded): the
speed of a float convolution does not depend on the values, and the binarized models
run the same operations whatever their weights.

Float twins (DESIGN §4: "same layers, ReLU instead of sign, no quantizers")
---------------------------------------------------------------------------
- LC-BNN, KWS-BNN-M and the default model (``"digits"``): the trainer's own twins,
  ``trainer.models.build(name, float_twin=True)``: every binary conv/dense becomes a
  float ``Conv2d/Linear(bias=False) -> BatchNorm -> ReLU`` (no ReLU where the binary
  layer has an affine output), the quantizer becomes its affine rescaling, pooling and
  the float head are unchanged. Eval mode. PyTorch eager runs each batch norm as its own
  op (what a user of the float model gets); ONNX Runtime folds it into the convolution
  when it creates the session. KWS-BNN-M has 594M MACs, LC-BNN 5.37M.
- L64 / L128 / L256: one ``Conv2d(C, C, 3, padding=1, bias=True) -> ReLU`` (the bias is
  the folded batch norm, the ReLU stands for the threshold) on 40×101×64 / 20×50×128 /
  10×25×256, NCHW, batch 1 (148.9M / 147.5M / 147.5M MACs).

``"torch-bnn"`` is the trainer's binarized model itself (``trainer.models.build(name)``),
in eval mode: what a trainer user would deploy without bitnet. ``trainer`` is imported
lazily; where it is missing the benchmarks that need it are skipped with a reason.

``"ort-int8"`` is the float twin's ONNX file quantised statically by ONNX Runtime's own
tool (:func:`quantize_int8`: QDQ, per-channel INT8 weights, INT8 activations, min/max
calibration over :func:`calibration_inputs`), the usual way to get an INT8 CPU model
out of a float one without retraining.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

#: DESIGN §4 shapes: name -> (height = mel bands, width = frames, channels) of the input.
LAYER_SHAPES = {"L64": (40, 101, 64), "L128": (20, 50, 128), "L256": (10, 25, 256)}
MODEL_INPUTS = {"LC-BNN": (40, 51), "KWS-BNN-M": (40, 101), "AST": (40, 101)}
#: the names ``trainer.models.build`` knows the workloads by
TRAINER_NAMES = {"LC-BNN": "lc-bnn", "KWS-BNN-M": "kws-bnn-m", "default": "digits", "AST": "ast"}

SEED = 1234


def default_model_path() -> Path:
    """The bundled default model file (``bitnet/models/default.bnn``), found without
    importing anything heavy."""
    import bitnet

    path = Path(bitnet.__file__).resolve().parent / "models" / "default.bnn"
    if not path.is_file():
        raise ImportError(f"the bundled default model {path} does not exist yet")
    return path


def layer_macs(name: str) -> int:
    """MACs of one L64/L128/L256 layer: H·W·C_out·(3·3·C_in)."""
    h, w, c = LAYER_SHAPES[name]
    return h * w * c * 9 * c


# ----------------------------------------------------------------------------- torch


def _torch():
    import torch

    return torch


def set_torch_threads(n: int) -> None:
    torch = _torch()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _randomise_bn(torch, model):
    """Give every batch norm non-trivial running statistics (as a trained model has)."""
    g = torch.Generator().manual_seed(SEED)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return model


def float_twin(name: str):
    """The PyTorch float32 twin of a workload, eval mode, random weights.

    ``"L64"``, ``"L128"``, ``"L256"``: one conv layer, built here. ``"LC-BNN"``,
    ``"KWS-BNN-M"``, ``"default"``: the trainer's own float twin
    (``trainer.models.build(..., float_twin=True)``), so that the float model measured is
    the one a trainer user would get.
    """
    torch = _torch()
    nn = torch.nn
    if name in LAYER_SHAPES:
        torch.manual_seed(SEED)
        c = LAYER_SHAPES[name][2]
        return nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=True), nn.ReLU()).eval()
    if name in TRAINER_NAMES:
        return trainer_model(name, float_twin=True)
    raise ValueError(f"unknown workload {name!r}; known: {sorted(LAYER_SHAPES) + sorted(TRAINER_NAMES)}")


def trainer_model(name: str, float_twin: bool = False):
    """The trainer's PyTorch model for a workload (binarized, or its float twin), eval mode.

    Raises ``ImportError`` naming what is missing when ``trainer.models`` is absent or
    does not know the workload; the benchmarks turn that into a skip.
    """
    torch = _torch()
    try:
        from trainer import models as tm
    except ImportError as exc:
        raise ImportError(f"trainer.models is not available yet ({exc})") from exc
    build = getattr(tm, "build", None)
    if build is None:
        raise ImportError("trainer.models has no build(name, ...) function yet")
    tname = TRAINER_NAMES.get(name, name)
    torch.manual_seed(SEED)
    try:
        model = build(tname, n_classes=10, float_twin=float_twin)
    except (KeyError, ValueError, TypeError) as exc:
        raise ImportError(f"trainer.models.build({tname!r}, float_twin={float_twin}) failed: {exc}") from exc
    return _randomise_bn(torch, model).eval()


def count_macs(model, x) -> int:
    """Multiply-accumulates of one forward pass, counted from the conv/linear layers."""
    torch = _torch()
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, torch.nn.Conv2d):
            kh, kw = mod.kernel_size
            total += out.numel() * kh * kw * (mod.in_channels // mod.groups)
        elif isinstance(mod, torch.nn.Linear):
            total += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total


def torch_runner(model, x):
    """A zero-argument callable running ``model(x)`` in eager mode under inference_mode."""
    torch = _torch()

    def run():
        with torch.inference_mode():
            return model(x)

    return run


# ----------------------------------------------------------------------------- inputs


def layer_input_nchw(name: str, batch: int = 1) -> np.ndarray:
    """Float32 NCHW input of a layer benchmark (random normal, seeded)."""
    h, w, c = LAYER_SHAPES[name]
    return np.random.default_rng(SEED).standard_normal((batch, c, h, w), dtype=np.float32)


def features_nchw(shape_hw: tuple[int, int], batch: int) -> np.ndarray:
    """Float32 log-mel-like features ``(N, 1, H, W)`` in dB (seeded random)."""
    rng = np.random.default_rng(SEED)
    return (rng.standard_normal((batch, 1, *shape_hw), dtype=np.float32) * 15 - 40).astype(np.float32)


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


# ----------------------------------------------------------------------------- ONNX


def export_onnx(model, example: np.ndarray, path: str | os.PathLike) -> Path:
    """Export ``model`` to ONNX (opset 17, dynamic batch) with the TorchScript exporter.

    The dynamo-based exporter (torch's default since 2.9) needs ``onnxscript``, which the
    ``bench`` extra does not install; the TorchScript exporter produces the same plain
    Conv/BatchNorm/Relu/Pool/Gemm graph.
    """
    torch = _torch()
    path = Path(path)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.from_numpy(example),), str(path), dynamo=False, opset_version=17,
            input_names=["x"], output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        )
    return path


def ort_session(path: str | os.PathLike, threads: int):
    """An ONNX Runtime CPU session: intra-op threads = ``threads``, inter-op = 1."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_runner(session, x: np.ndarray):
    name = session.get_inputs()[0].name
    feed = {name: x}

    def run():
        return session.run(None, feed)

    return run


@lru_cache(maxsize=None)
def torch_state_bytes(name: str, binarized: bool) -> int:
    """Size of ``torch.save(model.state_dict())`` for a workload's torch model."""
    torch = _torch()
    model = trainer_model(name) if binarized else float_twin(name)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def _header_signature(header: dict) -> list[tuple[int, int]]:
    sig = []
    for layer in header["layers"]:
        a = layer.get("attrs", {})
        if layer["op"] in ("qconv", "bconv"):
            sig.append((int(a["in_channels"]), int(a["out_channels"])))
        elif layer["op"] in ("bdense", "dense"):
            sig.append((int(a["in_features"]), int(a["out_features"])))
    return sig


def _torch_signature(model) -> list[tuple[int, int]]:
    torch = _torch()
    sig = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            sig.append((m.in_channels, m.out_channels))
        elif isinstance(m, torch.nn.Linear):
            sig.append((m.in_features, m.out_features))
    return sig


@lru_cache(maxsize=None)
def default_twin_mismatch() -> str | None:
    """Why the trainer's ``"digits"`` twin is not the bundled model's architecture, or None.

    Compares the (in, out) channels of every conv/dense layer of ``default.bnn`` with the
    trainer's float twin; the torch/ONNX rows of the ``default`` workload are only
    meaningful (and only run) when they agree.
    """
    from bitnet import modelfile

    header = modelfile.read_model(default_model_path())[0]
    mine, theirs = _header_signature(header), _torch_signature(float_twin("default"))
    if mine != theirs:
        status = (header.get("provenance") or {}).get("status", "")
        return (f"bundled default.bnn ({status or 'no status'}) has conv/dense channels {mine}, "
                f"trainer 'digits' has {theirs}")
    return None


# ----------------------------------------------------------------------------- INT8


#: calibration samples per workload: a few are enough for min/max ranges, and the
#: speed of the quantised model does not depend on them
CALIBRATION_SAMPLES = 8
#: ONNX Runtime's default and recommended types for static QDQ quantisation (S8S8);
#: on the project's machine U8S8 measured the same speed (L64 0.82 vs 0.84 ms,
#: KWS-BNN-M 2.98 vs 2.91 ms, one thread)
INT8_TYPES = {"activation": "QInt8", "weight": "QInt8"}


def calibration_inputs(example: np.ndarray, n: int = CALIBRATION_SAMPLES) -> list[np.ndarray]:
    """``n`` seeded random batch-1 inputs drawn like ``example`` (same shape and dtype,
    its mean and standard deviation), but from other seeds than the timed input."""
    shape = (1, *example.shape[1:])
    mean, std = float(example.mean()), float(example.std()) or 1.0
    return [(np.random.default_rng(SEED + 1 + i).standard_normal(shape, dtype=np.float32) * std + mean)
            .astype(np.float32) for i in range(n)]


def quantize_int8(float_onnx: str | os.PathLike, calibration: list[np.ndarray],
                  path: str | os.PathLike) -> Path:
    """Quantise a float32 ONNX model statically to INT8 with ``onnxruntime.quantization``.

    QDQ format, per-channel weights, min/max calibration over ``calibration`` (batch-1
    arrays fed to the model's single input), activation and weight types from
    :data:`INT8_TYPES`. The model first goes through ``quant_pre_process`` (shape
    inference and graph clean-up, which ONNX Runtime recommends before quantising). At
    session creation ONNX Runtime fuses each DequantizeLinear → Conv → QuantizeLinear
    into an integer convolution (QLinearConv).
    """
    import onnx
    from onnxruntime import quantization as q

    path = Path(path)
    pre = path.with_suffix(".pre.onnx")
    name = onnx.load(str(float_onnx), load_external_data=False).graph.input[0].name
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        q.quant_pre_process(str(float_onnx), str(pre))

        class _Reader(q.CalibrationDataReader):
            def __init__(self):
                self._it = iter([{name: x} for x in calibration])

            def get_next(self):
                return next(self._it, None)

        q.quantize_static(str(pre), str(path), _Reader(), quant_format=q.QuantFormat.QDQ,
                          per_channel=True, activation_type=getattr(q.QuantType, INT8_TYPES["activation"]),
                          weight_type=getattr(q.QuantType, INT8_TYPES["weight"]),
                          calibrate_method=q.CalibrationMethod.MinMax)
    pre.unlink(missing_ok=True)
    return path
