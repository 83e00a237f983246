"""The binarized audio spectrogram transformer (``--model ast``) and its float twin.

Graph (docs/graph.md; tokens are a one-row image ``(N, 1, T, C)`` in the engine, so
``sign``, 1×1 ``bconv`` and ``global_avgpool`` serve them unchanged)::

    quantize -> qconv patch×patch, stride = patch, valid (affine: BN folded)   patches
    -> tokens (row-major patches, + learned position embedding)                (N, 1, T, C)
    -> N × [ layernorm -> sign -> bconv 1×1 Q, K, V (threshold: bits)
             -> bmatmul Q·Kᵀ per head (XNOR-popcount, × scale[h])  -> softmax
             -> attend P × V (real P against ±1 V, or P >= tau[h] by AND-popcount)
             -> sign (+shift) -> bconv 1×1 O (affine) -> add
             -> layernorm -> sign -> bconv 1×1 FFN1 (threshold) -> bconv 1×1 FFN2 (affine) -> add ]
    -> layernorm -> global_avgpool (mean over tokens) -> dense

Numerics shared with the engine (written once, here and in the kernel modules):

* Binary linear layers compute the exact integer ``dot`` of ±1 vectors; ``affine``
  outputs are ``float32(dot) * scale[c] + bias[c]`` in float32, ``threshold`` outputs
  the sign of the same map as an integer comparison (:func:`trainer.layers.thresholds_from_affine`).
* Scores: ``float32(dot_h) * scale[h]`` in float32, ``dot_h`` the XNOR-popcount dot of
  head ``h``'s channels of Q and K.
* Layer norm, softmax and the real P × V product are computed in float64 and rounded
  once to float32 (:mod:`bitnet.kernels.layernorm`, :mod:`bitnet.kernels.softmax`,
  :mod:`bitnet.kernels.attend`), so PyTorch and the engine agree to the last bit except
  where float64 sums in a different order round differently (rare): a ``sign`` after
  them then sees the same value.

In training mode the modules use the usual float32 ops (same maths, faster) and
straight-through gradients.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import LATENT_INIT, SignSTE, sign, thresholds_from_affine

__all__ = ["TokenLinear", "TokenSign", "TokenLayerNorm", "Tokens", "BinaryAttention",
           "EncoderBlock", "MeanTokens", "FloatEncoderBlock", "ast_layers"]


def _f64_layer_norm(x, weight, bias, eps):
    xd = x.double()
    mu = xd.mean(-1, keepdim=True)
    var = ((xd - mu) ** 2).mean(-1, keepdim=True)
    y = (xd - mu) * (1.0 / torch.sqrt(var + eps)) * weight.double() + bias.double()
    return y.float()


class TokenLayerNorm(nn.LayerNorm):
    """``layernorm`` over the channels of each token; eval mode in float64 (module docstring)."""

    def forward(self, x):
        if self.training:
            return super().forward(x)
        return _f64_layer_norm(x, self.weight, self.bias, self.eps)

    def to_engine(self, em, v):
        from .engine import to_numpy

        em.need(v, "real", "layernorm needs real values in")
        return em.add("layernorm", [v], {"channels": self.normalized_shape[0], "eps": float(self.eps)},
                      {"weight": to_numpy(self.weight), "bias": to_numpy(self.bias)}, "real", base="ln")


class TokenSign(nn.Module):
    """``sign(x + shift)`` over the channels (last axis) of tokens ``(N, T, C)``."""

    def __init__(self, channels, learn_shift=False, grad="approx"):
        super().__init__()
        self.channels, self.grad = channels, grad
        self.shift = nn.Parameter(torch.zeros(channels)) if learn_shift else None

    def forward(self, x):
        if self.shift is not None:
            x = x + self.shift
        return SignSTE(x, self.grad)

    def to_engine(self, em, v):
        from .engine import to_numpy

        em.need(v, "real", "sign needs real values in")
        t = {} if self.shift is None else {"shift": to_numpy(self.shift)}
        return em.add("sign", [v], {"channels": self.channels}, t, "bits", self.channels)


class TokenLinear(nn.Module):
    """Binary linear layer on ±1 tokens ``(N, T, C_in)`` with a per-channel scale and bias.

    ``y = dot · scale + bias`` (``dot`` the exact ±1 dot product); ``output="threshold"``
    returns ``sign(y)`` (the engine compares ``dot`` with an integer threshold),
    ``"affine"`` returns ``y`` (float32 in eval mode, as the engine). Engine: a 1×1
    ``bconv`` on the one-row token image.
    """

    latent_weight = True     # clipped to [-1, 1], no weight decay (trainer.layers)

    def __init__(self, cin, cout, output="affine", grad="approx"):
        super().__init__()
        if output not in ("threshold", "affine"):
            raise ValueError(f"output={output!r}: expected 'threshold' or 'affine'")
        self.in_features, self.out_features, self.output, self.grad = cin, cout, output, grad
        w = torch.empty(cout, cin)
        nn.init.uniform_(w, -LATENT_INIT, LATENT_INIT)
        self.weight = nn.Parameter(w)
        self.scale = nn.Parameter(torch.full((cout,), 1.0 / math.sqrt(cin)))
        self.bias = nn.Parameter(torch.zeros(cout))

    def dot(self, x):
        return F.linear(x, SignSTE(self.weight, "ste"))

    def engine_tensors(self):
        if self.output == "threshold":
            a = self.scale.detach().double().cpu().numpy()
            b = self.bias.detach().double().cpu().numpy()
            th, ts = thresholds_from_affine(a, b)
            return {"thresh": th, "thresh_sign": ts}
        return {"scale": self.scale.detach().float().cpu().numpy(),
                "bias": self.bias.detach().float().cpu().numpy()}

    def forward(self, x):
        d = self.dot(x)
        if self.training:
            y = d * self.scale + self.bias
            return SignSTE(y, self.grad) if self.output == "threshold" else y
        t = self.engine_tensors()
        if self.output == "threshold":
            th = torch.from_numpy(t["thresh"].astype(np.float64))
            ts = torch.from_numpy(t["thresh_sign"].astype(np.float64))
            return sign(ts * d.double() - th).float()
        return d * torch.from_numpy(t["scale"]) + torch.from_numpy(t["bias"])

    def to_engine(self, em, v):
        from .engine import binary_weight, pack

        em.need(v, "bits", "a binary linear layer needs bits in", " (add a sign before it)")
        wb = binary_weight(self)[:, None, None, :]          # (C_out, 1, 1, C_in)
        attrs = {"in_channels": self.in_features, "out_channels": self.out_features, "kernel": [1, 1],
                 "stride": [1, 1], "padding": "valid", "output": self.output}
        kind = "bits" if self.output == "threshold" else "real"
        return em.add("bconv", [v], attrs, {"weight": pack(wb), **self.engine_tensors()}, kind,
                      self.out_features, base="lin")


class Tokens(nn.Module):
    """Patches ``(N, C, Hp, Wp)`` (NCHW) -> tokens ``(N, Hp·Wp, C)`` (row-major: patch
    row, then column, as the engine's NHWC order) plus a learned position embedding."""

    def __init__(self, n_tokens, channels):
        super().__init__()
        self.n_tokens, self.channels = n_tokens, channels
        self.pos = nn.Parameter(torch.randn(n_tokens, channels) * 0.02)

    def forward(self, x):
        t = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1])
        if t.shape[1] != self.n_tokens:
            raise ValueError(f"{t.shape[1]} patches but the position embedding has {self.n_tokens}")
        return t + self.pos

    def to_engine(self, em, v):
        from .engine import to_numpy

        em.need(v, "real", "tokens needs real patches in")
        return em.add("tokens", [v], {"channels": self.channels, "tokens": self.n_tokens},
                      {"pos": to_numpy(self.pos)}, "real", base="tokens")


class _StepSTE(torch.autograd.Function):
    """``1 if p >= tau else 0`` with a straight-through gradient inside ``|p - tau| <= w``."""

    @staticmethod
    def forward(ctx, d, w):
        ctx.save_for_backward(d)
        ctx.w = w
        return (d >= 0).to(d.dtype)

    @staticmethod
    def backward(ctx, g):
        (d,) = ctx.saved_tensors
        return g * (d.abs() <= ctx.w).to(g.dtype) / ctx.w, None


class BinaryAttention(nn.Module):
    """Multi-head self-attention on ±1 tokens with binary Q, K, V and output projection.

    ``probs="real"``: the float32 softmax probabilities weight the ±1 values of V;
    ``"binary"``: the probabilities are binarised (``p >= tau[h]``, as in BiT) and
    ``P × V`` is an AND-popcount of integers.
    """

    def __init__(self, dim, heads, n_tokens, probs="real", grad="approx"):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        if probs not in ("real", "binary"):
            raise ValueError(f"probs={probs!r}: expected 'real' or 'binary'")
        self.dim, self.heads, self.probs = dim, heads, probs
        d = dim // heads
        self.q = TokenLinear(dim, dim, "threshold", grad)
        self.k = TokenLinear(dim, dim, "threshold", grad)
        self.v = TokenLinear(dim, dim, "threshold", grad)
        self.score_scale = nn.Parameter(torch.full((heads,), 1.0 / math.sqrt(d)))
        if probs == "binary":
            self.tau = nn.Parameter(torch.full((heads,), 1.0 / n_tokens))
        self.sign_o = TokenSign(dim, learn_shift=True, grad=grad)
        self.o = TokenLinear(dim, dim, "affine", grad)

    def _heads(self, x):
        n, t, _ = x.shape
        return x.view(n, t, self.heads, -1).transpose(1, 2)        # (N, H, T, d)

    def forward(self, h):
        q, k, v = self._heads(self.q(h)), self._heads(self.k(h)), self._heads(self.v(h))
        s = (q @ k.transpose(-1, -2)) * self.score_scale.view(1, -1, 1, 1)   # exact dot × scale, float32
        if self.training:
            p = torch.softmax(s, -1)
        else:
            p = torch.softmax(s.double(), -1).float()
        if self.probs == "binary":
            b = _StepSTE.apply(p - self.tau.view(1, -1, 1, 1), float(self.tau.detach().abs().max()) + 1e-6)
            o = b @ v                                                        # exact integers
        elif self.training:
            o = p @ v
        else:
            o = (p.double() @ v.double()).float()
        n, _, t, _ = o.shape
        o = o.transpose(1, 2).reshape(n, t, self.dim)
        return self.o(self.sign_o(o))

    def to_engine(self, em, v):
        from .engine import to_numpy

        q, k, vv = (m.to_engine(em, v) for m in (self.q, self.k, self.v))
        s = em.add("bmatmul", [q, k], {"channels": self.dim, "heads": self.heads},
                   {"scale": to_numpy(self.score_scale)}, "real", base="scores")
        p = em.add("softmax", [s], {}, None, "real", base="softmax")
        attrs = {"channels": self.dim, "heads": self.heads, "probs": self.probs}
        t = {"tau": to_numpy(self.tau)} if self.probs == "binary" else None
        o = em.add("attend", [p, vv], attrs, t, "real", self.dim, base="attend")
        return self.o.to_engine(em, self.sign_o.to_engine(em, o))


class EncoderBlock(nn.Module):
    """Pre-LayerNorm encoder block: ``x + attn(sign(LN(x)))``, then
    ``x + FFN2(FFN1(sign(LN(x))))`` with FFN1 binary to bits (its sign is the nonlinearity)."""

    def __init__(self, dim, heads, mlp, n_tokens, probs="real", grad="approx"):
        super().__init__()
        self.ln1 = TokenLayerNorm(dim)
        self.s1 = TokenSign(dim, grad=grad)
        self.attn = BinaryAttention(dim, heads, n_tokens, probs, grad)
        self.ln2 = TokenLayerNorm(dim)
        self.s2 = TokenSign(dim, grad=grad)
        self.fc1 = TokenLinear(dim, mlp, "threshold", grad)
        self.fc2 = TokenLinear(mlp, dim, "affine", grad)

    def forward(self, x):
        x = x + self.attn(self.s1(self.ln1(x)))
        return x + self.fc2(self.fc1(self.s2(self.ln2(x))))

    def to_engine(self, em, v):
        a = self.attn.to_engine(em, self.s1.to_engine(em, self.ln1.to_engine(em, v)))
        x = em.add("add", [v, a], kind="real", base="add")
        f = self.fc2.to_engine(em, self.fc1.to_engine(em, self.s2.to_engine(em, self.ln2.to_engine(em, x))))
        return em.add("add", [x, f], kind="real", base="add")


class MeanTokens(nn.Module):
    """Mean over tokens ``(N, T, C) -> (N, C)``: the engine's ``global_avgpool`` of the
    one-row token image."""

    def forward(self, x):
        return x.mean(dim=1)

    def to_engine(self, em, v):
        return em.add("global_avgpool", [v], {"channels": em.channels[v]}, kind="real")


class FloatAttention(nn.Module):
    """Float twin of :class:`BinaryAttention`: float Q, K, V, O, softmax(QKᵀ/√d)·V."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.o = nn.Linear(dim, dim)

    def forward(self, x):
        n, t, c = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v)
        return self.o(o.transpose(1, 2).reshape(n, t, c))


class FloatEncoderBlock(nn.Module):
    """Float twin of :class:`EncoderBlock` (pre-LN, GELU FFN)."""

    def __init__(self, dim, heads, mlp):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = FloatAttention(dim, heads)
        self.ffn = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class _FloatPatches(nn.Module):
    """Float twin of the patch embedding: conv patch×patch, stride = patch, + BN."""

    def __init__(self, dim, patch):
        super().__init__()
        self.conv = nn.Conv2d(1, dim, patch, stride=patch, bias=False)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x):
        return self.bn(self.conv(x))


def ast_layers(n_classes, float_twin, input_shape=(40, 101), dim=64, depth=2, heads=2, mlp=128,
               patch=(20, 4), probs="real", grad="approx", bits=8, **kw):
    """The layers of the ``ast`` model (see the module docstring)."""
    from .layers import BinaryConvBN, QConv2d, Quantizer
    from .models import Dense, InputScale

    if kw:
        raise ValueError(f"unknown ast options {sorted(kw)}")
    ph, pw = (patch, patch) if isinstance(patch, int) else tuple(patch)
    hp, wp = input_shape[0] // ph, input_shape[1] // pw
    if hp < 1 or wp < 1:
        raise ValueError(f"patch {ph}x{pw} larger than the input {input_shape}")
    n_tok = hp * wp
    q = Quantizer(bits)
    if float_twin:
        layers = [InputScale(q), _FloatPatches(dim, (ph, pw)), Tokens(n_tok, dim)]
        layers += [FloatEncoderBlock(dim, heads, mlp) for _ in range(depth)]
        layers += [nn.LayerNorm(dim), MeanTokens(), Dense(dim, n_classes)]
        return layers
    embed = BinaryConvBN(QConv2d(1, dim, (ph, pw), stride=(ph, pw), padding="valid", bits=bits), "affine")
    layers = [q, embed, Tokens(n_tok, dim)]
    layers += [EncoderBlock(dim, heads, mlp, n_tok, probs, grad) for _ in range(depth)]
    layers += [TokenLayerNorm(dim), MeanTokens(), Dense(dim, n_classes)]
    return layers
