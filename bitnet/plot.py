"""``bitnet show``: draw what the model sees and what it says, over time.

Three panels, one figure (matplotlib, the optional ``[plot]`` extra, imported here only):

1. the log-mel spectrogram of the clip as the model sees it (the normalised window for
   a clip no longer than the model window; the whole clip's log-mel, normalised to its
   loudest bin, for a longer one), with the frame levels the speech gate measures;
2. per-window class probabilities over time: the model window slid over the clip
   (padded with half a window of silence each side) every 50 ms, each column one window,
   placed at the window's centre;
3. the clip's probabilities as ``predict`` gives them, with the predicted label (or
   "no speech" and the gate's reason).
"""

from __future__ import annotations

import sys

import numpy as np

from .errors import BitnetError

__all__ = ["show", "cmd_show"]


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise BitnetError("bitnet show needs matplotlib: pip install 'bitnet-audio[plot]'") from e
    return plt


def show(model, audio, out, sample_rate=None, hop: float = 0.05):
    """Write the figure for one clip to ``out`` (PNG, or any format matplotlib knows).

    Returns
    -------
    bitnet.Prediction
        The clip's prediction (as :meth:`bitnet.Model.predict` gives it).
    """
    from .features import clip_features, normalize_window
    from .frontend import log_mel
    from .gate import DEFAULT_GATE, frame_levels

    plt = _pyplot()
    sr = model.sample_rate
    y = model.read_audio(audio, sample_rate)
    pred = model.predict(y, sample_rate=sr)
    fe = model.frontend
    if y.shape[0] <= model.window_samples:
        spec = clip_features(y, fe)
        t0 = -(model.window_samples - y.shape[0]) / 2 / sr  # the clip is centred in the window
    else:
        spec = normalize_window(log_mel(y, **fe.log_mel_kwargs()), fe)
        t0 = 0.0
    pad = np.zeros(model.window_samples // 2, np.float32)
    padded = np.concatenate((pad, y, pad))
    feats, starts = model.windows(padded, hop=hop)
    from .results import softmax as _softmax

    probs = _softmax(model.logits(feats))
    centres = starts - pad.shape[0] / sr + model.window_seconds / 2

    fig = plt.figure(figsize=(11, 6.5), layout="constrained")
    gs = fig.add_gridspec(2, 2, width_ratios=(5, 1.3))
    ax_spec = fig.add_subplot(gs[0, 0])
    ax_prob = fig.add_subplot(gs[1, 0], sharex=ax_spec)
    ax_bar = fig.add_subplot(gs[:, 1])
    dur = spec.shape[1] * fe.hop_length / sr
    im = ax_spec.imshow(spec, origin="lower", aspect="auto", cmap="magma",
                        extent=(t0, t0 + dur, 0, spec.shape[0]))
    fig.colorbar(im, ax=ax_spec, label="dB (re loudest bin)", pad=0.01)
    ax_spec.set_ylabel("mel band")
    ax_spec.set_title("log-mel the model sees" + (" (clip centred in one window)" if t0 < 0 else ""))
    lv = frame_levels(y, sr, DEFAULT_GATE.frame, DEFAULT_GATE.hop)
    tl = np.arange(lv.shape[0]) * DEFAULT_GATE.hop + DEFAULT_GATE.frame / 2
    ax_lvl = ax_spec.twinx()
    ax_lvl.plot(tl, np.maximum(lv, -100), color="cyan", lw=1.2, label="frame level")
    ax_lvl.axhline(DEFAULT_GATE.min_level_db, color="cyan", ls=":", lw=1)
    ax_lvl.set_ylim(-100, 0)
    ax_lvl.set_ylabel("frame level, dBFS", color="cyan")

    im2 = ax_prob.imshow(probs.T, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1,
                         extent=(centres[0] - hop / 2, centres[-1] + hop / 2, -0.5, len(model.labels) - 0.5),
                         interpolation="nearest")
    fig.colorbar(im2, ax=ax_prob, label="probability", pad=0.01)
    ax_prob.set_yticks(range(len(model.labels)), model.labels)
    ax_prob.set_ylabel("class")
    ax_prob.set_xlabel("time, s (window centre)")
    ax_prob.set_title(f"per-window class probabilities (a {model.window_seconds:g} s window every {hop * 1e3:.0f} ms)")
    ax_prob.set_xlim(min(t0, centres[0]), max(t0 + dur, centres[-1]))

    colors = ["tab:blue"] * len(model.labels)
    if pred.speech:
        colors[pred.index] = "tab:red"
    ax_bar.barh(range(len(model.labels)), pred.probabilities, color=colors)
    ax_bar.set_yticks(range(len(model.labels)), model.labels)
    ax_bar.set_xlim(0, 1)
    ax_bar.set_xlabel("probability")
    if pred.speech:
        ax_bar.set_title(f"predicted: {pred.label}\np = {pred.probability:.3f}", fontsize=13, color="tab:red")
    else:
        ax_bar.set_title(f"no speech\n({pred.gate.reason.split(':')[0]})", fontsize=13)
    name = getattr(audio, "name", audio) if not isinstance(audio, np.ndarray) else "array"
    fig.suptitle(f"{name}  ({y.shape[0] / sr:.2f} s at {sr} Hz)", fontsize=10)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return pred


def cmd_show(args) -> int:
    from pathlib import Path

    from .cli import _load_model

    model = _load_model(args.model, args.debug)
    out = args.output or str(Path(args.path).with_suffix(".png"))
    pred = show(model, args.path, out)
    what = f"{pred.label} {pred.probability:.3f}" if pred.speech else f"no speech ({pred.gate.reason})"
    print(f"{out}: {what}", file=sys.stderr)
    return 0
