"""Model zoo: binarized models exportable to the engine's graph, and their float twins.

Every model takes log-mel features ``x`` float32 of shape ``(N, n_mels, frames)`` (the
output of ``bitnet.features.clip_features`` stacked), treats them as an image with
H = mel band, W = frame, C = 1 (NHWC in the engine, NCHW inside PyTorch) and returns
logits ``(N, n_classes)``.

>>> from trainer import models
>>> net = models.build("digits", n_classes=10)              # binarized (exportable)
>>> twin = models.build("digits", n_classes=10, float_twin=True)
>>> models.SPECS["kws-bnn-m"].input_shape
(40, 101)

Names (see :data:`SPECS`):

========== =========== =================================================================
name       input       layers
========== =========== =================================================================
lc-bnn     40 x 51     qconv 16 (threshold) -> bconv 16 (affine) -> avgpool 5x5 -> sign ->
                       bconv 32 (affine) -> avgpool (4,10) -> flatten -> sign ->
                       bdense 100 (threshold) -> dense 10 (bits in)          (docs/design.md §4)
kws-bnn-m  40 x 101    qconv 64 -> bconv 64 -> maxpool 2 -> bconv 128 -> bconv 128 ->
                       maxpool 2 -> bconv 256 -> bconv 256 (affine) -> global avgpool ->
                       dense 10 (all threshold unless said)                   (docs/design.md §4)
digits     40 x 101    qconv 64 (affine) -> maxpool 2 -> 1 Bi-Real block 64 -> maxpool 2
                       -> 2 Bi-Real blocks 64 -> maxpool 2 -> concat x2 -> 2 Bi-Real
                       blocks 128 -> global avgpool -> dense    (the bundled FSDD model)
kws-res    40 x 101    like digits, stem 32, stages 32/64/128 (1 block each), for keywords
resnet-esc 64 x 216    like digits, three stages 64/128/256, for environmental sounds
ast        40 x 101    binarized audio spectrogram transformer: qconv patch embedding,
                       N pre-LN encoder blocks, mean over tokens, dense (trainer/transformer.py)
========== =========== =================================================================

The float twin of a model has the same layers with ReLU instead of sign, float
convolutions (zero padding) instead of binary ones and no quantizer (the features are
only rescaled by the same affine map the quantizer uses, without rounding).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from .layers import (
    BinaryConv2d,
    BinaryConvBN,
    BinaryLinear,
    BiRealBlock,
    QConv2d,
    Quantizer,
    Sign,
)

__all__ = ["build", "SPECS", "ModelSpec", "Net", "names"]


# ---------------------------------------------------------------------------------------
# Small layer wrappers that map one-to-one onto engine ops; each emits its own op
# (``to_engine``, trainer/engine.py)


class MaxPool(nn.MaxPool2d):
    """``maxpool`` (valid). On +-1 values it equals the engine's AND of bits."""

    def to_engine(self, em, v):
        from .engine import pool_attrs

        return em.add("maxpool", [v], pool_attrs(self), kind=em.kind[v])


class AvgPool(nn.AvgPool2d):
    """``avgpool`` (valid) of real values."""

    def to_engine(self, em, v):
        from .engine import ExportError, pool_attrs

        if em.kind[v] != "real":
            raise ExportError("avgpool needs real values")
        return em.add("avgpool", [v], pool_attrs(self), kind="real")


class GlobalAvgPool(nn.Module):
    """``global_avgpool``: mean over H and W, (N, C, H, W) -> (N, C)."""

    def forward(self, x):
        return x.mean(dim=(2, 3))

    def to_engine(self, em, v):
        return em.add("global_avgpool", [v], {"channels": em.channels[v]}, kind="real")


class Flatten(nn.Module):
    """``flatten`` in the engine's NHWC order (h, then w, then c)."""

    def forward(self, x):
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)

    def to_engine(self, em, v):
        return em.add("flatten", [v], kind="real", channels=-1)


class Dense(nn.Linear):
    """``dense``: a float32 layer; +-1 inputs are read as values (engine: bits in)."""

    def to_engine(self, em, v):
        import numpy as np

        from .engine import to_numpy

        b = to_numpy(self.bias) if self.bias is not None else np.zeros(self.out_features, np.float32)
        return em.add("dense", [v], {"in_features": self.in_features, "out_features": self.out_features},
                      {"weight": to_numpy(self.weight), "bias": b}, kind="real", channels=self.out_features,
                      base="fc")


class Duplicate(nn.Module):
    """``concat`` of a real value with itself along channels: C -> 2C for free."""

    def forward(self, x):
        return torch.cat([x, x], dim=1)

    def to_engine(self, em, v):
        return em.add("concat", [v, v], kind="real", channels=2 * em.channels[v])


class InputScale(nn.Module):
    """Float-twin stand-in for the quantizer: the same affine map, no rounding, /levels."""

    def __init__(self, q: Quantizer):
        super().__init__()
        self.offset, self.scale, self.levels = q.offset, q.scale, q.levels

    def forward(self, x):
        return (x - self.offset) * self.scale / (self.levels - 1)


class FloatConvBN(nn.Module):
    """Float twin of :class:`BinaryConvBN`: conv (zero padding) + BN (+ ReLU)."""

    def __init__(self, cin, cout, kernel=3, output="threshold", linear=False):
        super().__init__()
        if linear:
            self.conv = nn.Linear(cin, cout, bias=False)
            self.bn = nn.BatchNorm1d(cout)
        else:
            self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)
            self.bn = nn.BatchNorm2d(cout)
        self.act = nn.ReLU() if output == "threshold" else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class FloatBlock(nn.Module):
    """Float twin of :class:`BiRealBlock`: ``x + BN(conv(relu(x)))``."""

    def __init__(self, channels, kernel=3):
        super().__init__()
        self.act = nn.ReLU()
        self.conv = FloatConvBN(channels, channels, kernel, output="affine")

    def forward(self, x):
        return x + self.conv(self.act(x))


class Net(nn.Module):
    """A sequential model: ``(N, n_mels, frames)`` features -> logits.

    Attributes
    ----------
    layers : nn.ModuleList
        The layers in order; each maps onto one or a few engine ops.
    name : str
    input_shape : tuple (n_mels, frames)
    float_twin : bool
    """

    def __init__(self, layers, name, input_shape, n_classes, float_twin, config=None):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.name = name
        self.input_shape = tuple(input_shape)
        self.n_classes = n_classes
        self.float_twin = float_twin
        self.config = dict(config or {})

    def forward(self, x, return_features: bool = False):
        if x.dim() == 3:
            x = x.unsqueeze(1)
        feats = None
        for layer in self.layers:
            if isinstance(layer, (Dense, nn.Linear)) and not isinstance(layer, FloatConvBN):
                feats = x
            x = layer(x)
        return (x, feats) if return_features else x


# ---------------------------------------------------------------------------------------
# Builders. ``B`` builds the binarized layer, its float twin when ``float_twin``.


class _Builder:
    def __init__(self, float_twin: bool, grad: str = "approx"):
        self.f = float_twin
        self.grad = grad

    def quant(self, q):
        return InputScale(q) if self.f else q

    def qconv(self, cin, cout, output, k=3, bits=8):
        if self.f:
            return FloatConvBN(cin, cout, k, output)
        return BinaryConvBN(QConv2d(cin, cout, k, bits=bits), output, grad=self.grad)

    def bconv(self, cin, cout, output, k=3):
        if self.f:
            return FloatConvBN(cin, cout, k, output)
        return BinaryConvBN(BinaryConv2d(cin, cout, k), output, grad=self.grad)

    def bdense(self, cin, cout, output):
        if self.f:
            return FloatConvBN(cin, cout, output=output, linear=True)
        return BinaryConvBN(BinaryLinear(cin, cout), output, grad=self.grad)

    def sign(self, c, learn_shift=True):
        return nn.ReLU() if self.f else Sign(c, learn_shift=learn_shift, grad=self.grad)

    def block(self, c):
        return FloatBlock(c) if self.f else BiRealBlock(c, grad=self.grad)


def _lc_bnn(n_classes, float_twin, widths=(16, 16, 32, 100), **kw):
    """``widths``: the four binary layers' output channels (smaller after pruning)."""
    b = _Builder(float_twin)
    w0, w1, w2, w3 = widths
    return [
        b.quant(Quantizer(8)),
        b.qconv(1, w0, "threshold"),
        b.bconv(w0, w1, "affine"),
        AvgPool(5),
        b.sign(w1),
        b.bconv(w1, w2, "affine"),
        AvgPool((4, 10)),
        Flatten(),
        b.sign(2 * w2),  # 40x51 -> 8x10 -> 2x1 positions after the two pools
        b.bdense(2 * w2, w3, "threshold"),
        Dense(w3, n_classes),
    ]


def _kws_bnn_m(n_classes, float_twin, widths=(64, 64, 128, 128, 256, 256), **kw):
    """``widths``: the six binary layers' output channels (smaller after pruning)."""
    b = _Builder(float_twin)
    w = widths
    return [
        b.quant(Quantizer(8)),
        b.qconv(1, w[0], "threshold"),
        b.bconv(w[0], w[1], "threshold"),
        MaxPool(2),
        b.bconv(w[1], w[2], "threshold"),
        b.bconv(w[2], w[3], "threshold"),
        MaxPool(2),
        b.bconv(w[3], w[4], "threshold"),
        b.bconv(w[4], w[5], "affine"),
        GlobalAvgPool(),
        Dense(w[5], n_classes),
    ]


def _residual(n_classes, float_twin, stages=((64, 1), (64, 2), (128, 2)), stem=64,
              grad="approx", **kw):
    """Stem qconv (affine) + maxpool, then Bi-Real stages separated by maxpool 2.

    A stage wider than the one before doubles the real stream with ``concat(x, x)``.
    """
    b = _Builder(float_twin, grad)
    layers = [b.quant(Quantizer(8)), b.qconv(1, stem, "affine"), MaxPool(2)]
    c = stem
    for i, (width, n) in enumerate(stages):
        if i > 0:
            layers.append(MaxPool(2))
        while c < width:
            if width != 2 * c:
                raise ValueError(f"stage width {width} must be {c} or {2 * c}")
            layers.append(Duplicate())
            c *= 2
        if width != c:
            raise ValueError(f"stage width {width} narrower than {c}")
        layers += [b.block(c) for _ in range(n)]
    layers += [GlobalAvgPool(), Dense(c, n_classes)]
    return layers


def _ast(n_classes, float_twin, **kw):
    from .transformer import ast_layers

    return ast_layers(n_classes, float_twin, **kw)


_ast.takes_input_shape = True   # its position embedding has one row per patch


@dataclass(frozen=True)
class ModelSpec:
    """A named model: its builder, input shape (n_mels, frames) and default frontend."""

    name: str
    builder: object
    input_shape: tuple
    frontend: dict = field(default_factory=dict)
    description: str = ""


_FSDD_FRONTEND = dict(sample_rate=8000, n_fft=256, hop_length=80, n_mels=40, top_db=80.0,
                      ref="max", frames=101)

SPECS = {
    "lc-bnn": ModelSpec("lc-bnn", _lc_bnn, (40, 51),
                        dict(_FSDD_FRONTEND, hop_length=160, frames=51),
                        "LC-BNN, docs/design.md §4 (14.9K parameters)"),
    "kws-bnn-m": ModelSpec("kws-bnn-m", _kws_bnn_m, (40, 101), dict(_FSDD_FRONTEND),
                           "KWS-BNN-M, docs/design.md §4"),
    "digits": ModelSpec("digits", _residual, (40, 101), dict(_FSDD_FRONTEND),
                        "bundled spoken-digit model: Bi-Real 64/64/128"),
    "ast": ModelSpec("ast", _ast, (40, 101), dict(_FSDD_FRONTEND),
                     "binarized audio spectrogram transformer (trainer/transformer.py)"),
    "kws-res": ModelSpec(
        "kws-res",
        lambda n, f, **kw: _residual(n, f, **{"stem": 32, "stages": ((32, 1), (64, 1), (128, 1)), **kw}),
        (40, 101), dict(_FSDD_FRONTEND),
        "small Bi-Real 32/64/128 for keywords (8 kHz, 1 s; ~28M binary MACs, 1/20 of KWS-BNN-M)"),
    "resnet-esc": ModelSpec(
        "resnet-esc",
        lambda n, f, **kw: _residual(n, f, **{"stages": ((64, 2), (128, 2), (256, 2)), **kw}),
        (64, 216),
        dict(sample_rate=22050, n_fft=1024, hop_length=512, n_mels=64, top_db=80.0,
             ref="max", frames=216),
        "Bi-Real 64/128/256 for environmental sounds (5 s at 22.05 kHz)"),
}


def names() -> list[str]:
    return sorted(SPECS)


def build(name: str, n_classes: int = 10, float_twin: bool = False,
          input_shape: tuple | None = None, **kwargs) -> Net:
    """Build a model by name.

    Parameters
    ----------
    name : str
        One of :func:`names`: ``"lc-bnn"``, ``"kws-bnn-m"``, ``"digits"``, ``"resnet-esc"``.
    n_classes : int
    float_twin : bool
        Build the float twin (ReLU, float convolutions, no quantizer) instead.
    input_shape : (n_mels, frames), optional
        Overrides the spec's shape (only for models that end in a global pool).
    **kwargs
        Builder options (``stages=((64, 2), ...)``, ``stem=64``, ``grad="approx"`` for the
        residual models).

    Returns
    -------
    Net
        Takes float32 ``(N, n_mels, frames)`` log-mel features, returns ``(N, n_classes)``.
    """
    if name not in SPECS:
        raise ValueError(f"unknown model {name!r}; choose one of {names()}")
    spec = SPECS[name]
    shape = tuple(input_shape) if input_shape is not None else spec.input_shape
    extra = {"input_shape": shape} if getattr(spec.builder, "takes_input_shape", False) else {}
    layers = spec.builder(n_classes, float_twin, **kwargs, **extra)
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()}
    return Net(layers, name, shape, n_classes, float_twin, config=cfg)
