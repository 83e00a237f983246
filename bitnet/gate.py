"""The speech gate: is there anything in this audio worth classifying?

A classifier trained on spoken digits has no answer for "nothing": the log-mel windows
are normalised to their loudest bin (``ref="max"``), so digital silence, hiss or a
10-sample click look like a loud digit to it. The gate decides *before* the label is
trusted, from frame energies alone, with three settings a person can reason about:

Frame level
    The audio (at the model's rate) is cut into frames of ``frame`` seconds every
    ``hop`` seconds (25 ms / 10 ms). Each frame's mean is removed (a DC offset is not
    sound) and its level is ``10·log10(mean(x²))`` in **dB relative to full scale**
    (dBFS: a constant ±1.0 signal is 0 dBFS, a full-scale sine −3 dBFS, digital silence
    −inf). A clip shorter than one frame is one frame.
A voiced frame
    is one that is (a) at least ``min_level_db`` dBFS (absolute: below it is silence or
    a quiet room, whatever the model says) and (b) at least ``min_contrast_db`` above the
    clip's noise floor, the ``floor_percentile``-th percentile of its frame levels
    (relative: stationary hiss or hum is as loud at its peaks as at its floor; speech
    is not).
Speech
    is present when the voiced frames add up to at least ``min_speech`` seconds
    (``count × hop``): far shorter than a syllable is not a word.

The defaults were chosen by measurement (``python -m evaluation.gate``, tables in
``docs/gate.md``): of a grid of settings, the one with the lowest worst-case
false-rejection rate over all 3,000 FSDD clips (clean, pink noise and babble at
20/10/5 dB SNR, −30 dB input level, hard clipping) among those that reject every
no-speech input tried (digital silence, white and pink noise from −70 to −20 dBFS,
mains hum, 10 to 400 samples cut from a digit).

``Gate(enabled=False)`` (or ``gate=False`` where a gate is accepted) turns it off.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .errors import ParameterError

__all__ = ["Gate", "GateResult", "frame_levels", "DEFAULT_GATE", "NO_SPEECH"]

#: the label a prediction carries when the gate finds no speech (``Prediction.speech`` is False)
NO_SPEECH = "_silence_"

#: the level of an all-zero frame (dBFS); finite so that it survives JSON and arithmetic
SILENCE_DB = -200.0


@dataclass(frozen=True)
class Gate:
    """Settings of the speech gate (see the module docstring for what each one means).

    Attributes
    ----------
    enabled : bool
        False: every input counts as speech (the gate is off).
    min_level_db : float
        Absolute floor for a voiced frame, dBFS.
    min_contrast_db : float
        How far above the clip's noise floor a voiced frame must be, dB.
    floor_percentile : float
        Percentile of the clip's frame levels taken as its noise floor.
    min_speech : float
        Voiced seconds needed for speech.
    frame, hop : float
        Frame length and hop, seconds.
    """

    enabled: bool = True
    min_level_db: float = -75.0
    min_contrast_db: float = 6.0
    floor_percentile: float = 5.0
    min_speech: float = 0.03
    frame: float = 0.025
    hop: float = 0.010

    def __post_init__(self):
        for name in ("min_level_db", "min_contrast_db", "floor_percentile", "min_speech", "frame", "hop"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not math.isfinite(v):
                raise ParameterError(f"Gate.{name} must be a finite number, got {v!r}")
        if not 0 <= self.floor_percentile <= 100:
            raise ParameterError(f"Gate.floor_percentile must be in 0..100, got {self.floor_percentile!r}")
        if self.frame <= 0 or self.hop <= 0 or self.min_speech < 0 or self.min_contrast_db < 0:
            raise ParameterError(
                f"Gate needs frame > 0, hop > 0, min_speech >= 0 and min_contrast_db >= 0, got {self!r}"
            )

    @classmethod
    def coerce(cls, gate) -> Gate:
        """``True``/``None`` -> the default gate, ``False`` -> off, a :class:`Gate` as is."""
        if gate is None or gate is True:
            return DEFAULT_GATE
        if gate is False:
            return OFF
        if isinstance(gate, cls):
            return gate
        raise ParameterError(f"gate must be True, False or a bitnet.Gate, got {gate!r}")

    def check(self, y: np.ndarray, sample_rate: int) -> GateResult:
        """Decide whether mono float samples ``y`` at ``sample_rate`` hold speech.

        Examples
        --------
        >>> Gate().check(np.zeros(8000, np.float32), 8000).speech
        False
        """
        return self._decide(frame_levels(y, sample_rate, self.frame, self.hop), y.shape[0], sample_rate)

    def check_windows(self, y: np.ndarray, sample_rate: int, starts, window_seconds: float):
        """:meth:`check` and :meth:`voiced_windows` from one pass over the frame levels:
        ``(GateResult, mask)``."""
        levels = frame_levels(y, sample_rate, self.frame, self.hop)
        return (self._decide(levels, y.shape[0], sample_rate),
                self._window_mask(levels, starts, window_seconds))

    def _decide(self, levels: np.ndarray, n_samples: int, sample_rate: int) -> GateResult:
        peak = float(levels.max())
        floor = float(np.percentile(levels, self.floor_percentile))
        voiced = self.voiced(levels, floor)
        seconds = min(int(voiced.sum()) * self.hop, n_samples / sample_rate)
        if not self.enabled:
            return GateResult(True, "gate off", seconds, peak, floor)
        if n_samples / sample_rate < self.min_speech:
            reason = f"too short: the clip is {n_samples / sample_rate * 1e3:.1f} ms, less than {self.min_speech * 1e3:.0f} ms"
        elif peak < self.min_level_db:
            reason = f"silence: loudest frame {_db(peak)} dBFS, below {self.min_level_db:g} dBFS"
        elif peak < floor + self.min_contrast_db:
            reason = f"steady noise: loudest frame {peak - floor:.1f} dB above the floor, less than {self.min_contrast_db:g} dB"
        elif seconds < self.min_speech:
            reason = f"too short: {seconds * 1e3:.0f} ms voiced, less than {self.min_speech * 1e3:.0f} ms"
        else:
            return GateResult(True, "speech", seconds, peak, floor)
        return GateResult(False, reason, seconds, peak, floor)

    def voiced_windows(self, y: np.ndarray, sample_rate: int, starts, window_seconds: float) -> np.ndarray:
        """Which model windows hold speech: at least ``min_speech`` seconds of voiced
        frames (judged against the whole clip's noise floor) inside the window.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            The whole clip, mono, at ``sample_rate``.
        starts : sequence of float
            Window start times, seconds (``Prediction.window_starts``).
        window_seconds : float

        Returns
        -------
        numpy.ndarray of bool, shape (len(starts),)
            All True when the gate is off.

        Examples
        --------
        >>> y = np.zeros(24000, np.float32); y[17000:20000] = 0.3 * np.sin(np.arange(3000) / 3)
        >>> Gate().voiced_windows(y, 8000, [0.0, 0.5, 1.0, 1.5, 2.0], 1.0).tolist()
        [False, False, False, True, True]
        """
        return self._window_mask(frame_levels(y, sample_rate, self.frame, self.hop), starts, window_seconds)

    def _window_mask(self, levels: np.ndarray, starts, window_seconds: float) -> np.ndarray:
        starts = np.asarray(starts, dtype=np.float64).reshape(-1)
        if not self.enabled:
            return np.ones(starts.shape, bool)
        voiced = self.voiced(levels, float(np.percentile(levels, self.floor_percentile)))
        centres = np.arange(levels.shape[0]) * self.hop + self.frame / 2
        t = centres[voiced]
        inside = (t[None, :] >= starts[:, None]) & (t[None, :] < starts[:, None] + window_seconds)
        return inside.sum(axis=1) * self.hop >= max(self.min_speech, 1e-9)

    def voiced(self, levels: np.ndarray, floor: float) -> np.ndarray:
        """Boolean mask of voiced frames for frame ``levels`` (dBFS) and a noise ``floor``."""
        return (levels >= self.min_level_db) & (levels >= floor + self.min_contrast_db)


@dataclass(frozen=True)
class GateResult:
    """The gate's decision on one clip.

    Attributes
    ----------
    speech : bool
        True when the clip holds speech (always True with the gate off).
    reason : str
        Why, in words ("speech", "silence: ...", "steady noise: ...", "too short: ...").
    voiced_seconds : float
        Seconds of voiced frames.
    peak_db, floor_db : float
        Loudest frame and noise floor, dBFS (−200 for digital silence).
    """

    speech: bool
    reason: str
    voiced_seconds: float
    peak_db: float
    floor_db: float

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k in ("voiced_seconds", "peak_db", "floor_db"):
            d[k] = round(float(d[k]), 3)
        return d


def _db(v: float) -> str:
    return "-inf" if v <= SILENCE_DB else f"{v:.1f}"


def frame_levels(y: np.ndarray, sample_rate: int, frame: float = 0.025, hop: float = 0.010) -> np.ndarray:
    """Per-frame level of mono samples in dBFS, each frame's mean removed.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Mono samples, full scale ±1.
    sample_rate : int
    frame, hop : float
        Seconds.

    Returns
    -------
    numpy.ndarray of float64, shape (n_frames,)
        ``max(10·log10(mean((x - mean x)²)), -200)`` per frame; at least one frame
        (the whole clip when it is shorter than a frame).
    """
    x = np.asarray(y, dtype=np.float64).reshape(-1)
    n_frame = max(1, int(round(frame * sample_rate)))
    n_hop = max(1, int(round(hop * sample_rate)))
    if x.shape[0] <= n_frame:
        frames = x[None, :] if x.size else np.zeros((1, 1))
    else:
        count = 1 + (x.shape[0] - n_frame) // n_hop
        frames = np.lib.stride_tricks.sliding_window_view(x, n_frame)[:: n_hop][:count]
    power = frames.var(axis=1)  # mean of squares after removing each frame's mean
    with np.errstate(divide="ignore"):
        db = 10.0 * np.log10(power)
    return np.maximum(db, SILENCE_DB)


DEFAULT_GATE = Gate()
OFF = Gate(enabled=False)
