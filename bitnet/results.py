"""What a model answers: :class:`Prediction` (a clip, or a window of a stream),
:class:`Segment` (a row of a timeline), and :func:`softmax`, the one softmax of the
engine (logits to the probabilities every result holds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .errors import ParameterError

__all__ = ["Prediction", "Segment", "softmax"]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities from float logits along the last axis, computed in float64
    (numerically stable: the largest logit is subtracted first).

    Parameters
    ----------
    logits : numpy.ndarray, shape (..., n_classes)

    Returns
    -------
    numpy.ndarray of float64, same shape; each row sums to 1.
    """
    z = np.asarray(logits).astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


@dataclass(frozen=True, eq=False)
class Prediction:
    """What a model says about one clip (or, from :meth:`Model.stream`, one window).

    Attributes
    ----------
    label : str
        The most probable class.
    index : int
        Its position in :attr:`labels`.
    probabilities : numpy.ndarray of float32, shape (n_classes,)
        Class probabilities (sum to 1): the mean over windows for long clips.
    labels : tuple of str
        The model's class labels.
    window_probabilities : numpy.ndarray of float32, shape (n_windows, n_classes)
        Per-window probabilities (one row for a clip no longer than the window).
    window_starts : numpy.ndarray of float64, shape (n_windows,)
        Start time of each window in seconds from the start of the clip (or stream).
    window_seconds : float
        The model's window length in seconds.
    source : str or None
        The file the audio came from, where known.
    speech : bool
        False when the speech gate (:mod:`bitnet.gate`) found nothing to classify
        (silence, steady low noise, a clip far shorter than a syllable). Then
        :attr:`label` is :data:`bitnet.NO_SPEECH` (``"_silence_"``), :attr:`index` is
        -1 and :attr:`probability` is NaN; :attr:`probabilities` and :meth:`top_k` still
        hold what the model would have said, for inspection only.
    gate : bitnet.GateResult or None
        The gate's decision and its reason (None where no gate ran, e.g. ``stream``).
    window_speech : numpy.ndarray of bool, shape (n_windows,), or None
        For a clip longer than the window with the gate on: which windows hold speech.
        :attr:`probabilities` is the mean over those windows only (all windows where
        none does, or where this is None).
    """

    label: str
    index: int
    probabilities: np.ndarray
    labels: tuple
    window_probabilities: np.ndarray
    window_starts: np.ndarray
    window_seconds: float
    source: str | None = None
    speech: bool = True
    gate: object = None
    window_speech: np.ndarray | None = None

    @property
    def probability(self) -> float:
        """Probability of :attr:`label` (NaN when :attr:`speech` is False)."""
        if not self.speech:
            return float("nan")
        return float(self.probabilities[self.index])

    @property
    def start(self) -> float:
        """Start of the first window, seconds."""
        return float(self.window_starts[0])

    @property
    def end(self) -> float:
        """End of the last window, seconds."""
        return float(self.window_starts[-1]) + self.window_seconds

    def top_k(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most probable classes as ``(label, probability)``, most probable first.

        Ties keep label order. ``k`` larger than the number of classes gives them all.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ParameterError(f"top_k needs a positive integer k, got {k!r}")
        order = np.argsort(-self.probabilities, kind="stable")[: int(k)]
        return [(self.labels[i], float(self.probabilities[i])) for i in order]

    def to_dict(self, k: int | None = None) -> dict:
        """A JSON-ready dict: source, label, index, probability, top-k (all if ``k`` is None)."""
        d = {
            "source": self.source,
            "label": self.label,
            "index": self.index,
            "probability": round(self.probability, 6) if self.speech else None,
            "speech": self.speech,
            "top_k": [[lab, round(p, 6)] for lab, p in self.top_k(k or len(self.labels))],
            "windows": int(self.window_probabilities.shape[0]),
        }
        if self.window_speech is not None:
            d["speech_windows"] = int(np.count_nonzero(self.window_speech))
        if self.gate is not None:
            d["gate"] = self.gate.to_dict()
        return d

    def __repr__(self) -> str:
        src = f", source={self.source!r}" if self.source else ""
        if not self.speech:
            return f"Prediction(label={self.label!r}, speech=False, windows={self.window_probabilities.shape[0]}{src})"
        return (
            f"Prediction(label={self.label!r}, probability={self.probability:.3f}, "
            f"windows={self.window_probabilities.shape[0]}{src})"
        )


class Segment(NamedTuple):
    """One row of :meth:`Model.timeline`: times in seconds, the label and its probability."""

    start: float
    end: float
    label: str
    probability: float
