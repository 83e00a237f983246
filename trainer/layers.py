"""Binarized layers for training, following docs/design.md §2 (the numeric contract) to the letter.

Conventions (written once, here):

* ``sign(x) = +1 if x >= 0 else -1``; so ``sign(0) = +1``, for weights and activations.
  The backward pass is a straight-through estimator: the clipped identity
  ``dL/dx = dL/dy * [|x| <= 1]`` or, as an option, the ApproxSign (Bi-Real) gradient
  ``dL/dx = dL/dy * max(0, 2 - 2|x|)``.
* Binary weights are ``sign(W_latent)``, optionally times a per-output-channel scale
  ``alpha = mean|W_latent|`` (XNOR-Net). Latent weights are clipped to [-1, 1] after
  every optimiser step (:func:`clip_latent_weights`).
* ``same`` padding of a binary convolution fills the padded pixels with **+1**: the +-1
  input is padded explicitly with the value +1 before a ``valid`` convolution.
* The first layer works on k-bit levels ``q = clip(floor((x - offset)*scale + 0.5), 0,
  2**k - 1)`` computed in float32 (docs/graph.md "Quantizer"); its ``same`` padding is
  level 0. The convolution of levels with +-1 weights gives the exact integer ``dot`` the
  engine computes from bitplanes.

Every binary layer here is followed by batch norm. :class:`BinaryConvBN` owns the pair and
knows how to fold it: in training mode it computes ``BN(alpha * dot)`` with the usual batch
statistics; in eval mode it computes exactly what the engine computes from the folded
parameters (``threshold``: the integer comparison ``thresh_sign * dot >= thresh`` derived
in float64; ``affine``: ``float32(dot) * scale + bias`` in float32). PyTorch eval mode
and the engine therefore agree by construction, and the exporter checks that they do.

Export: each module that maps onto engine ops carries ``to_engine(em, v)``
(:mod:`trainer.engine`), which emits its op(s) reading value ``v`` and returns the
name of its output value.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "sign",
    "SignSTE",
    "Sign",
    "Quantizer",
    "BinaryConv2d",
    "QConv2d",
    "BinaryLinear",
    "BinaryConvBN",
    "BiRealBlock",
    "fold_bn",
    "thresholds_from_affine",
    "clip_latent_weights",
]

#: Latent weights start uniform in [-LATENT_INIT, LATENT_INIT]. Small on purpose: with
#: Adam every step moves a weight by about the learning rate, so a small start lets signs
#: flip within tens of steps (FSDD has only ~40-80 steps per epoch).
LATENT_INIT = 0.05

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def sign(x: torch.Tensor) -> torch.Tensor:
    """Forward-only sign with ``sign(0) = +1`` (no gradient tricks)."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


class _SignClipped(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return sign(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype)


class _SignApprox(torch.autograd.Function):
    """Bi-Real ApproxSign: the derivative of the piecewise quadratic 2x +- x^2."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return sign(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.clamp(2.0 - 2.0 * x.abs(), min=0.0)


def SignSTE(x: torch.Tensor, grad: str = "ste") -> torch.Tensor:
    """Sign with a straight-through gradient: ``grad`` is ``"ste"`` or ``"approx"``."""
    if grad == "ste":
        return _SignClipped.apply(x)
    if grad == "approx":
        return _SignApprox.apply(x)
    raise ValueError(f"grad={grad!r}: expected 'ste' or 'approx'")


class Sign(nn.Module):
    """Binarize activations: ``sign(x + shift)``, shift a learnable per-channel vector.

    Matches the engine's ``sign`` op: bit set (-1) iff ``x + shift < 0`` in float32.
    Inputs are NCHW or NC; ``shift`` broadcasts over the channel axis 1.
    """

    def __init__(self, channels: int, learn_shift: bool = True, grad: str = "approx"):
        super().__init__()
        self.channels = channels
        self.grad = grad
        if learn_shift:
            self.shift = nn.Parameter(torch.zeros(channels))
        else:
            self.register_parameter("shift", None)

    def forward(self, x):
        if self.shift is not None:
            shape = (1, -1) + (1,) * (x.dim() - 2)
            x = x + self.shift.view(shape)
        return SignSTE(x, self.grad)

    def to_engine(self, em, v):
        """``sign`` (with the learned ``shift``, if any)."""
        from .engine import to_numpy

        em.need(v, "real", "sign needs real values in")
        t = {} if self.shift is None else {"shift": to_numpy(self.shift)}
        return em.add("sign", [v], {"channels": self.channels}, t, "bits", self.channels)


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.floor(x)

    @staticmethod
    def backward(ctx, g):
        return g


class Quantizer(nn.Module):
    """The k-bit input quantizer of docs/graph.md, in float32, with a straight-through gradient.

    ``q = clip(floor((x - offset) * scale + 0.5), 0, 2**bits - 1)``. The defaults map the
    log-mel range [-80, 0] dB (``ref="max"``, ``top_db=80``) onto 0..255.
    """

    def __init__(self, bits: int = 8, offset: float = -80.0, scale: float | None = None):
        super().__init__()
        if not 1 <= bits <= 8:
            raise ValueError(f"bits={bits}: expected 1..8")
        self.bits = bits
        self.offset = float(np.float32(offset))
        if scale is None:
            scale = (2**bits - 1) / 80.0
        self.scale = float(np.float32(scale))

    @property
    def levels(self) -> int:
        return 2**self.bits

    def forward(self, x):
        x = x.float()
        off = torch.tensor(self.offset, dtype=torch.float32)
        sc = torch.tensor(self.scale, dtype=torch.float32)
        # same op order as the engine: ((x - offset) * scale) + 0.5, then floor, then clip
        y = (x - off) * sc + torch.tensor(0.5, dtype=torch.float32)
        q = _RoundSTE.apply(y)
        return torch.clamp(q, 0.0, float(self.levels - 1))

    def to_engine(self, em, v):
        """``quantize`` to k-bit levels."""
        return em.add("quantize", [v], {"bits": self.bits, "offset": self.offset, "scale": self.scale},
                      kind="levels", base="quant")


def _same_pad(size: int, k: int, s: int) -> tuple[int, int]:
    """``same`` padding (before, after) of one axis, the engine's rule
    (bitnet/kernels/geometry.py): ``ceil(size / s)`` outputs, ``(k - 1) // 2`` padded
    before, whatever the last window needs after (PyTorch's symmetric ``k // 2`` for odd
    kernels, any stride)."""
    out = -(-size // s)
    before = (k - 1) // 2
    return before, max((out - 1) * s + k - size - before, 0)


class BinaryConv2d(nn.Module):
    """Convolution of +-1 inputs with +-1 weights; ``same`` padding pads with +1.

    ``forward`` returns ``alpha * dot`` (``alpha = 1`` without ``scale``), where ``dot``
    is the exact integer the engine computes. The input must already be +-1 (use
    :class:`Sign`), except for :class:`QConv2d` which overrides the padding value.
    """

    pad_value = 1.0

    def __init__(self, in_channels, out_channels, kernel=3, stride=1, padding="same",
                 scale: bool = False, grad: str = "ste"):
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
        sh, sw = (stride, stride) if isinstance(stride, int) else tuple(stride)
        if padding not in ("same", "valid"):
            raise ValueError(f"padding={padding!r}: expected 'same' or 'valid'")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel, self.stride, self.padding = (kh, kw), (sh, sw), padding
        self.use_scale = scale
        self.grad = grad
        w = torch.empty(out_channels, in_channels, kh, kw)
        nn.init.uniform_(w, -LATENT_INIT, LATENT_INIT)
        self.weight = nn.Parameter(w)

    def binary_weight(self):
        return SignSTE(self.weight, "ste")

    def alpha(self):
        """Per-output-channel scale, shape (C_out,): mean|W| or ones."""
        if self.use_scale:
            return self.weight.abs().mean(dim=(1, 2, 3))
        return torch.ones(self.out_channels, device=self.weight.device)

    def pad(self, x):
        if self.padding == "valid":
            return x
        ph = _same_pad(x.shape[2], self.kernel[0], self.stride[0])
        pw = _same_pad(x.shape[3], self.kernel[1], self.stride[1])
        return F.pad(x, (pw[0], pw[1], ph[0], ph[1]), value=self.pad_value)

    def dot(self, x):
        """The integer ``dot`` (as float32, exact below 2**24) of +-1 (or level) inputs."""
        return F.conv2d(self.pad(x), self.binary_weight(), stride=self.stride)

    def forward(self, x):
        if not self.use_scale and not isinstance(self, QConv2d):
            return self.dot(x)  # alpha = 1; a following batch norm cancels any alpha anyway
        return self.dot(x) * self.alpha().view(1, -1, 1, 1)


class QConv2d(BinaryConv2d):
    """First layer: binary weights on k-bit levels; ``same`` padding is level 0.

    ``forward`` returns ``alpha * dot / (2**bits - 1)`` so that the batch norm after it
    sees values of order one; the exporter folds the constant into the threshold.
    """

    pad_value = 0.0

    def __init__(self, in_channels, out_channels, kernel=3, stride=1, padding="same",
                 bits: int = 8, scale: bool = False):
        super().__init__(in_channels, out_channels, kernel, stride, padding, scale)
        self.bits = bits

    def alpha(self):
        return super().alpha() / float(2**self.bits - 1)


class BinaryLinear(nn.Module):
    """Dense layer of +-1 inputs (N, C_in) with +-1 weights; returns ``alpha * dot``."""

    def __init__(self, in_features, out_features, scale: bool = False):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.use_scale = scale
        w = torch.empty(out_features, in_features)
        nn.init.uniform_(w, -LATENT_INIT, LATENT_INIT)
        self.weight = nn.Parameter(w)

    def binary_weight(self):
        return SignSTE(self.weight, "ste")

    def alpha(self):
        if self.use_scale:
            return self.weight.abs().mean(dim=1)
        return torch.ones(self.out_features, device=self.weight.device)

    def dot(self, x):
        return F.linear(x, self.binary_weight())

    def forward(self, x):
        if not self.use_scale:
            return self.dot(x)
        return self.dot(x) * self.alpha().view(1, -1)


def fold_bn(alpha: np.ndarray, bn: nn.modules.batchnorm._BatchNorm):
    """Fold ``BN(alpha * dot)`` (eval mode) into ``a * dot + b``, in float64.

    ``BN(z) = gamma * (z - mu) / sqrt(var + eps) + beta``, so with ``z = alpha * dot``:
    ``a = alpha * gamma / sqrt(var + eps)`` and ``b = beta - mu * gamma / sqrt(var + eps)``.
    """
    g = bn.weight.detach().double().cpu().numpy() if bn.affine else np.ones(bn.num_features)
    beta = bn.bias.detach().double().cpu().numpy() if bn.affine else np.zeros(bn.num_features)
    mu = bn.running_mean.detach().double().cpu().numpy()
    var = bn.running_var.detach().double().cpu().numpy()
    inv = g / np.sqrt(var + float(bn.eps))
    a = np.asarray(alpha, dtype=np.float64) * inv
    b = beta - mu * inv
    return a, b


def thresholds_from_affine(a: np.ndarray, b: np.ndarray):
    """Integer thresholds for ``sign(a * dot + b)`` with integer ``dot`` (docs/graph.md).

    ``sign(y) = +1 <=> y >= 0``.
    * ``a > 0``: ``dot >= -b/a <=> dot >= ceil(-b/a)``: ``thresh_sign = +1``,
      ``thresh = ceil(-b/a)``.
    * ``a < 0``: ``dot <= -b/a <=> dot <= floor(-b/a) <=> -dot >= -floor(-b/a)``:
      ``thresh_sign = -1``, ``thresh = -floor(-b/a)``.
    * ``a == 0``: the output is the constant ``sign(b)``: ``thresh_sign = +1`` and
      ``thresh = -2**31`` (always +1, ``b >= 0``) or ``2**31 - 1`` (always -1). (The
      latter is exact for every ``dot < 2**31 - 1``, which any real layer satisfies.)
    All thresholds are clamped to int32. Computed in float64.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    thresh = np.empty(a.shape, dtype=np.int64)
    tsign = np.ones(a.shape, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = -b / a
    pos, neg, zero = a > 0, a < 0, a == 0
    thresh[pos] = np.clip(np.ceil(np.clip(r[pos], -4e9, 4e9)), INT32_MIN, INT32_MAX)
    thresh[neg] = np.clip(-np.floor(np.clip(r[neg], -4e9, 4e9)), INT32_MIN, INT32_MAX)
    tsign[neg] = -1
    thresh[zero] = np.where(b[zero] >= 0, INT32_MIN, INT32_MAX)
    return thresh.astype(np.int32), tsign.astype(np.int32)


class BinaryConvBN(nn.Module):
    """A binary (or first-layer) convolution or dense layer followed by batch norm.

    ``output`` is ``"threshold"`` (returns +-1, the sign of the normalised value) or
    ``"affine"`` (returns the normalised real value). In eval mode the module computes
    exactly what the engine computes from the exported tensors (see the module docstring).
    """

    def __init__(self, conv: nn.Module, output: str = "threshold", grad: str = "approx"):
        super().__init__()
        if output not in ("threshold", "affine"):
            raise ValueError(f"output={output!r}: expected 'threshold' or 'affine'")
        self.conv = conv
        self.output = output
        self.grad = grad
        n = conv.out_channels if hasattr(conv, "out_channels") else conv.out_features
        self.bn = nn.BatchNorm2d(n) if not isinstance(conv, BinaryLinear) else nn.BatchNorm1d(n)

    def folded(self):
        """``(a, b)`` float64 arrays with ``BN(alpha*dot) = a*dot + b`` (eval mode)."""
        alpha = self.conv.alpha().detach().double().cpu().numpy()
        return fold_bn(alpha, self.bn)

    def engine_tensors(self):
        """The output tensors the engine needs: thresholds or float32 scale/bias."""
        a, b = self.folded()
        if self.output == "threshold":
            thresh, tsign = thresholds_from_affine(a, b)
            return {"thresh": thresh, "thresh_sign": tsign}
        return {"scale": a.astype(np.float32), "bias": b.astype(np.float32)}

    def forward(self, x):
        if self.training:
            y = self.bn(self.conv(x))
            return SignSTE(y, self.grad) if self.output == "threshold" else y
        dot = self.conv.dot(x)
        shape = (1, -1) + (1,) * (dot.dim() - 2)
        t = self.engine_tensors()
        if self.output == "threshold":
            th = torch.from_numpy(t["thresh"].astype(np.float64)).view(shape)
            ts = torch.from_numpy(t["thresh_sign"].astype(np.float64)).view(shape)
            return sign(ts * dot.double() - th).float()
        scale = torch.from_numpy(t["scale"]).view(shape)
        bias = torch.from_numpy(t["bias"]).view(shape)
        return dot * scale + bias

    def to_engine(self, em, v):
        """``bdense``, ``qconv`` or ``bconv`` with the folded batch norm as its output tensors."""
        from .engine import binary_weight, pack

        conv = self.conv
        out_tensors = self.engine_tensors()
        kind = "bits" if self.output == "threshold" else "real"
        if isinstance(conv, BinaryLinear):
            em.need(v, "bits", "bdense needs bits in", " (add a sign before it)")
            attrs = {"in_features": conv.in_features, "out_features": conv.out_features, "output": self.output}
            return em.add("bdense", [v], attrs, {"weight": pack(binary_weight(conv)), **out_tensors}, kind,
                          conv.out_features)
        wb = binary_weight(conv).transpose(0, 2, 3, 1)  # (C_out, kh, kw, C_in)
        attrs = {"in_channels": conv.in_channels, "out_channels": conv.out_channels,
                 "kernel": list(conv.kernel), "stride": list(conv.stride),
                 "padding": conv.padding, "output": self.output}
        if isinstance(conv, QConv2d):
            em.need(v, "levels", "qconv needs quantized levels in")
            attrs["bits"] = conv.bits
            op = "qconv"
        else:
            em.need(v, "bits", "bconv needs bits in", " (add a sign before it)")
            op = "bconv"
        return em.add(op, [v], attrs, {"weight": pack(wb), **out_tensors}, kind, conv.out_channels)


class BiRealBlock(nn.Module):
    """Bi-Real block with a real-valued shortcut: ``x + BN(bconv(sign(x + shift)))``.

    Engine graph: ``sign`` (with ``shift``) -> ``bconv`` (affine) -> ``add``.
    """

    def __init__(self, channels: int, kernel=3, grad: str = "approx", scale: bool = False):
        super().__init__()
        self.sign = Sign(channels, learn_shift=True, grad=grad)
        self.conv = BinaryConvBN(BinaryConv2d(channels, channels, kernel, scale=scale),
                                 output="affine")

    def forward(self, x):
        return x + self.conv(self.sign(x))

    def to_engine(self, em, v):
        """``sign`` -> ``bconv`` (affine) -> ``add`` (the real shortcut)."""
        c = self.conv.to_engine(em, self.sign.to_engine(em, v))
        return em.add("add", [v, c], kind="real", base="add")


def _has_latent(m) -> bool:
    """A binary layer: its ``weight`` is latent (binarised in the forward pass). Layers
    outside this module say so with ``latent_weight = True``."""
    return isinstance(m, (BinaryConv2d, BinaryLinear)) or getattr(m, "latent_weight", False)


def clip_latent_weights(model: nn.Module, limit: float = 1.0) -> None:
    """Clip the latent weights of every binary layer to [-limit, limit] (in place)."""
    with torch.no_grad():
        for m in model.modules():
            if _has_latent(m):
                m.weight.clamp_(-limit, limit)


def latent_parameters(model: nn.Module):
    """The latent binary weights (no weight decay on these) and everything else."""
    latent, other = [], []
    ids = {id(m.weight) for m in model.modules() if _has_latent(m)}
    for p in model.parameters():
        (latent if id(p) in ids else other).append(p)
    return latent, other

