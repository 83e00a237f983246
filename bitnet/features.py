"""Waveform -> model input windows: the one definition, shared by trainer and engine.

A model sees fixed windows of ``frames`` log-mel frames (``n_mels x frames``, float32).
This module decides how a waveform becomes such windows, so that the trainer's
features and the engine's are the same numbers:

* :func:`clip_features` — one window for one clip: the clip is zero-padded (centred)
  or cropped (centred) to :attr:`FrontendConfig.window_samples` samples, which gives
  exactly ``frames`` frames, then :func:`bitnet.log_mel` and :func:`normalize_window`.
* :func:`sliding_windows` — many windows for a long signal: a clip no longer than the
  window gives ``clip_features(y)[None]``; a longer one is analysed once with
  :func:`bitnet.log_mel` (unclipped dB) and cut into windows of ``frames`` frames every
  ``hop_frames`` frames, with one more window aligned to the end when the regular ones
  leave a tail; each window is normalised on its own.
* :class:`WindowStream` — the same windows from a signal arriving in chunks: equal,
  exactly, to :func:`sliding_windows` of the whole signal.

Normalisation (:func:`normalize_window`): with ``ref="max"`` a window's dB values are
taken relative to its loudest bin (so the features do not depend on the recording's
gain), then floored at ``-top_db``; with ``ref="one"`` they stay absolute (dB re 1.0)
and are floored at ``max - top_db``. ``top_db`` is applied per window, never per clip,
which is what lets the streaming form agree with the batch form. ``channel_norm="mean"``
first removes each mel band's mean over the window (per-channel normalisation).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

import numpy as np

from .errors import ParameterError
from .frontend import LogMelStream, _check_signal, _get_plan, log_mel

__all__ = [
    "FrontendConfig",
    "fit_length",
    "normalize_window",
    "clip_features",
    "sliding_windows",
    "WindowStream",
]

_REFS = ("max", "one")
_CHANNEL_NORMS = ("none", "mean")
#: the longest model window, in frames (about 3 hours at a 10 ms hop): a bound that keeps
#: an edited model file from asking for absurd amounts of memory
MAX_FRAMES = 1 << 20


@dataclass(frozen=True)
class FrontendConfig:
    """Everything that turns a waveform into a model's input window.

    Stored in the model file's header under ``"frontend"`` (:meth:`to_dict`). The
    fields from ``n_fft`` to ``amin`` are :func:`bitnet.log_mel`'s keyword arguments;
    ``sample_rate`` is the rate audio is resampled to, ``top_db`` and ``ref`` say how
    a window is normalised (:func:`normalize_window`) and ``frames`` is the window's
    length in frames. Construction validates every field (``ParameterError``).

    Examples
    --------
    >>> cfg = FrontendConfig()
    >>> cfg.window_samples, cfg.log_mel_kwargs()["n_mels"]
    (8000, 40)
    >>> FrontendConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    sample_rate: int = 8000
    n_fft: int = 256
    hop_length: int = 80
    win_length: int | None = None
    n_mels: int = 40
    fmin: float = 0.0
    fmax: float | None = None
    htk: bool = False
    norm: str | None = "slaney"
    center: bool = True
    pad_mode: str = "constant"
    power: float = 2.0
    amin: float = 1e-10
    top_db: float | None = 80.0
    ref: str = "max"  # "max": dB relative to the window's loudest bin; "one": absolute dB
    frames: int = 101  # the model's window in frames
    channel_norm: str = "none"  # "mean": subtract each mel band's mean over the window first

    def __post_init__(self):
        sr = self.sample_rate
        if isinstance(sr, bool) or not isinstance(sr, numbers.Integral) or sr <= 0:
            raise ParameterError(f"sample_rate must be a positive integer (Hz), got {sr!r}")
        fr = self.frames
        if isinstance(fr, bool) or not isinstance(fr, numbers.Integral) or not 1 <= fr <= MAX_FRAMES:
            raise ParameterError(f"frames must be an integer in 1..{MAX_FRAMES}, got {fr!r}")
        if self.ref not in _REFS:
            raise ParameterError(f"ref must be one of {_REFS}, got {self.ref!r}")
        if self.channel_norm not in _CHANNEL_NORMS:
            raise ParameterError(f"channel_norm must be one of {_CHANNEL_NORMS}, got {self.channel_norm!r}")
        top = self.top_db
        if top is not None and (
            isinstance(top, bool) or not isinstance(top, numbers.Real) or not math.isfinite(top) or top < 0
        ):
            raise ParameterError(f"top_db must be a number >= 0 or None, got {top!r}")
        k = self.log_mel_kwargs()
        _get_plan(
            k["sr"], k["n_fft"], k["hop_length"], k["win_length"], k["n_mels"], k["fmin"], k["fmax"],
            k["htk"], k["norm"], k["center"], k["pad_mode"], k["power"], k["amin"],
        )  # validates the log-mel parameters (and warms the cache)

    def to_dict(self) -> dict:
        """All fields as a JSON-ready dict (the model header's ``"frontend"``).

        ``channel_norm`` is left out when it is ``"none"``, so files and feature caches
        made before it existed keep the same header and key.
        """
        d = dataclasses.asdict(self)
        if d["channel_norm"] == "none":
            del d["channel_norm"]
        return d

    @classmethod
    def from_dict(cls, d) -> FrontendConfig:
        """Build a config from a dict; missing keys take the defaults.

        Raises
        ------
        bitnet.ParameterError
            Not a dict, an unknown key, or a bad value.
        """
        if not isinstance(d, dict):
            raise ParameterError(f"frontend settings must be a dict, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ParameterError(f"unknown frontend setting(s) {unknown}; known: {sorted(names)}")
        try:
            return cls(**d)
        except TypeError as exc:
            raise ParameterError(f"bad frontend settings: {exc}") from None

    @property
    def window_samples(self) -> int:
        """Samples that make exactly ``frames`` frames.

        ``(frames - 1) * hop_length`` with ``center=True`` (plus one when ``n_fft`` is
        odd, since centring then pads one sample less), ``n_fft + (frames - 1) *
        hop_length`` with ``center=False``.
        """
        if self.center:
            return (self.frames - 1) * self.hop_length + self.n_fft % 2
        return self.n_fft + (self.frames - 1) * self.hop_length

    def log_mel_kwargs(self) -> dict:
        """Keyword arguments for :func:`bitnet.log_mel` (with ``top_db=None``)."""
        return dict(
            sr=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length, win_length=self.win_length,
            n_mels=self.n_mels, fmin=self.fmin, fmax=self.fmax, htk=self.htk, norm=self.norm,
            center=self.center, pad_mode=self.pad_mode, power=self.power, amin=self.amin, top_db=None,
        )

    def stream_kwargs(self) -> dict:
        """Keyword arguments for :class:`bitnet.LogMelStream`."""
        k = self.log_mel_kwargs()
        del k["top_db"]
        return k


def fit_length(y, n: int, offset: int | None = None) -> np.ndarray:
    """Pad with zeros or crop a waveform to exactly ``n`` samples.

    Parameters
    ----------
    y : numpy.ndarray, shape (m,)
        The waveform (converted to float32).
    n : int
        The length wanted (>= 1).
    offset : int, optional
        Where a crop starts: ``y[offset:offset + n]`` (requires ``0 <= offset <= m - n``).
        None crops the centre (``offset = (m - n) // 2``). Ignored when padding.

    Returns
    -------
    numpy.ndarray of float32, shape (n,)
        Shorter inputs are padded with ``(n - m) // 2`` zeros before and the rest after.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ParameterError(f"fit_length needs a 1-D waveform, got shape {y.shape}")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ParameterError(f"n must be a positive integer, got {n!r}")
    m = y.shape[0]
    if m <= n:
        out = np.zeros(n, dtype=np.float32)
        left = (n - m) // 2
        out[left : left + m] = y
        return out
    if offset is None:
        offset = (m - n) // 2
    elif isinstance(offset, bool) or not isinstance(offset, numbers.Integral) or not 0 <= offset <= m - n:
        raise ParameterError(f"offset must be an integer in [0, {m - n}] for {m} samples cropped to {n}, got {offset!r}")
    return np.array(y[offset : offset + n], dtype=np.float32)


def normalize_window(feats, cfg: FrontendConfig) -> np.ndarray:
    """Normalise one window (or a stack of windows, each on its own).

    Parameters
    ----------
    feats : numpy.ndarray, shape (n_mels, frames) or (n, n_mels, frames)
        Unclipped dB from :func:`bitnet.log_mel` (``top_db=None``).
    cfg : FrontendConfig
        ``channel_norm="mean"``: first subtract each mel band's mean over the window's
        frames (per-channel mean normalisation: a fixed microphone or vocal-tract
        colouring, a constant offset per band in dB, cancels). ``ref="max"``: subtract
        the window's maximum; then, when ``top_db`` is set, floor at ``max - top_db``.

    Returns
    -------
    numpy.ndarray of float32, same shape
        A new array.
    """
    x = np.array(feats, dtype=np.float32, copy=True)
    if x.ndim not in (2, 3):
        raise ParameterError(f"features must be (n_mels, frames) or (n, n_mels, frames), got shape {x.shape}")
    if cfg.channel_norm == "mean":
        x -= x.mean(axis=-1, keepdims=True, dtype=np.float64).astype(np.float32)
    peak = x.max(axis=(-2, -1), keepdims=True)
    if cfg.ref == "max":
        x -= peak
        peak = np.zeros_like(peak)
    if cfg.top_db is not None:
        np.maximum(x, peak - np.float32(cfg.top_db), out=x)
    return x


def clip_features(y, cfg: FrontendConfig) -> np.ndarray:
    """The model input for one clip: fit to the window, log-mel, normalise.

    Parameters
    ----------
    y : numpy.ndarray, shape (n_samples,)
        Mono waveform at ``cfg.sample_rate``.
    cfg : FrontendConfig

    Returns
    -------
    numpy.ndarray of float32, shape (n_mels, frames)
    """
    feats = log_mel(fit_length(_check_signal(y), cfg.window_samples), **cfg.log_mel_kwargs())
    return normalize_window(feats, cfg)


def _check_hop(hop_frames) -> int:
    if isinstance(hop_frames, bool) or not isinstance(hop_frames, numbers.Integral) or hop_frames < 1:
        raise ParameterError(f"hop_frames must be a positive integer, got {hop_frames!r}")
    return int(hop_frames)


def _window_starts(total: int, frames: int, hop_frames: int) -> list[int]:
    """Regular starts ``0, hop, 2 hop, ...`` that fit, plus one aligned to the end."""
    starts = list(range(0, total - frames + 1, hop_frames))
    if starts[-1] + frames < total:
        starts.append(total - frames)
    return starts


def sliding_windows(y, cfg: FrontendConfig, hop_frames: int) -> np.ndarray:
    """Model input windows covering a whole signal.

    Parameters
    ----------
    y : numpy.ndarray, shape (n_samples,)
        Mono waveform at ``cfg.sample_rate``.
    cfg : FrontendConfig
    hop_frames : int
        Frames between window starts.

    Returns
    -------
    numpy.ndarray of float32, shape (n_windows, n_mels, frames)
        For ``n_samples <= cfg.window_samples``: ``clip_features(y)[None]``. Otherwise
        windows of the whole signal's log-mel starting at ``0, hop_frames, ...`` while
        they fit, plus one ending at the last frame when those leave frames uncovered;
        each normalised with :func:`normalize_window`.
    """
    hop_frames = _check_hop(hop_frames)
    y = _check_signal(y)
    if y.shape[0] <= cfg.window_samples:
        return clip_features(y, cfg)[None]
    feats = log_mel(y, **cfg.log_mel_kwargs())
    starts = _window_starts(feats.shape[1], cfg.frames, hop_frames)
    wins = np.stack([feats[:, s : s + cfg.frames] for s in starts])
    return normalize_window(wins, cfg)


class WindowStream:
    """:func:`sliding_windows` for a signal that arrives in chunks.

    Windows come out as soon as their last frame is known; the concatenation of all
    :meth:`push` results and the :meth:`flush` result equals
    ``sliding_windows(whole_signal, cfg, hop_frames)`` exactly (same windows, same
    order, same values). Two windows can only be known at :meth:`flush`: the
    end-aligned tail window (it depends on where the signal ends) and, for a signal no
    longer than ``cfg.window_samples``, the single padded clip window (the stream keeps
    up to ``window_samples`` samples until it knows the signal is longer).

    Parameters
    ----------
    cfg : FrontendConfig
    hop_frames : int
        Frames between window starts.

    Examples
    --------
    >>> import numpy as np
    >>> cfg = FrontendConfig()
    >>> s = WindowStream(cfg, hop_frames=50)
    >>> y = np.zeros(20000, np.float32)
    >>> parts = [s.push(y[i:i + 3000]) for i in range(0, 20000, 3000)] + [s.flush()]
    >>> np.concatenate(parts).shape
    (4, 40, 101)
    """

    def __init__(self, cfg: FrontendConfig, hop_frames: int):
        if not isinstance(cfg, FrontendConfig):
            raise ParameterError(f"cfg must be a FrontendConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.hop_frames = _check_hop(hop_frames)
        self._mel = LogMelStream(**cfg.stream_kwargs())
        self.reset()

    def reset(self) -> None:
        """Forget everything pushed so far."""
        self._mel.reset()
        self._frames = np.zeros((self.cfg.n_mels, 0), dtype=np.float32)  # from frame _first on
        self._first = 0  # index of the first kept frame
        self._next = 0  # start of the next regular window
        self._last_end = 0  # end of the last window emitted
        self._raw = []  # the samples, kept while the signal may still be a short clip
        self._pending = []  # log-mel frames held back meanwhile
        self._n = 0

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.cfg.n_mels, self.cfg.frames), dtype=np.float32)

    def _take(self, new: np.ndarray, final: bool) -> np.ndarray:
        if new.shape[1]:
            self._frames = np.concatenate((self._frames, new), axis=1) if self._frames.shape[1] else new
        frames = self.cfg.frames
        total = self._first + self._frames.shape[1]
        starts = list(range(self._next, total - frames + 1, self.hop_frames))
        if starts:
            self._next = starts[-1] + self.hop_frames
        if final and (starts[-1] if starts else self._last_end - frames) + frames < total:
            starts.append(total - frames)
        if starts:
            self._last_end = starts[-1] + frames
        wins = [self._frames[:, s - self._first : s - self._first + frames] for s in starts]
        # keep what the next regular window, or an end-aligned tail window, may need
        keep_from = min(self._next, total - frames)
        if keep_from > self._first:
            self._frames = self._frames[:, keep_from - self._first :]
            self._first = keep_from
        if not wins:
            return self._empty()
        return normalize_window(np.stack(wins), self.cfg)

    def push(self, chunk) -> np.ndarray:
        """Add samples; return the windows they complete.

        Parameters
        ----------
        chunk : numpy.ndarray, shape (k,)
            The next samples (any ``k >= 0``) at ``cfg.sample_rate``.

        Returns
        -------
        numpy.ndarray of float32, shape (n, n_mels, frames)
            ``n >= 0`` new windows, normalised.
        """
        x = _check_signal(chunk, "chunk")
        new = self._mel.push(x)
        self._n += x.shape[0]
        if self._raw is not None:
            # while the signal may still be one short clip, its windows are not known
            # (with center=False frames can be complete before that is decided)
            self._raw.append(x.copy())
            self._pending.append(new)
            if self._n <= self.cfg.window_samples:
                return self._empty()
            self._raw = None  # longer than one window: the frames decide from now on
            new = np.concatenate(self._pending, axis=1)
            self._pending = []
        return self._take(new, final=False)

    def flush(self) -> np.ndarray:
        """End the signal: return the last windows and reset the stream.

        Returns
        -------
        numpy.ndarray of float32, shape (n, n_mels, frames)
            For a signal no longer than ``cfg.window_samples``: its single clip window
            (none for an empty signal).
        """
        try:
            if self._raw is not None:  # a short clip: the same padding as clip_features
                self._mel.flush()
                if self._n == 0:
                    return self._empty()
                return clip_features(np.concatenate(self._raw), self.cfg)[None]
            return self._take(self._mel.flush(), final=True)
        finally:
            self.reset()
