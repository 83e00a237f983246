"""The log-mel frontend: waveform -> float32 log-mel spectrogram, in NumPy.

This is the one feature extractor of bitnet; the trainer and the engine both call it,
so a model sees the same numbers in training and in use. It reproduces librosa's

    power_to_db(melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length,
                               win_length=win_length, window="hann", center=center,
                               pad_mode=pad_mode, power=power, n_mels=n_mels,
                               fmin=fmin, fmax=fmax, htk=htk, norm=norm),
                ref=1.0, amin=amin, top_db=top_db)

within 1e-3 dB (max abs) without importing librosa (or scipy).

Conventions
-----------
Window
    A *periodic* Hann window of ``win_length`` samples (``0.5 - 0.5 cos(2 pi n / N)``,
    ``n = 0 .. N-1``, what ``scipy.signal.get_window("hann", N, fftbins=True)`` gives),
    zero-padded on both sides to ``n_fft`` with ``(n_fft - win_length) // 2`` zeros on
    the left, as ``librosa.util.pad_center`` does.
Framing
    Frame ``t`` covers samples ``[t * hop_length, t * hop_length + n_fft)`` of the
    (padded) signal. With ``center=True`` the signal is first padded with ``n_fft // 2``
    samples on each side (zeros for ``pad_mode="constant"``, librosa's default since
    0.10), so that frame ``t`` is centred on sample ``t * hop_length`` and a signal of
    ``N >= 1`` samples gives ``1 + (N - n_fft % 2) // hop_length`` frames. With
    ``center=False`` there is no padding and ``1 + (N - n_fft) // hop_length`` frames
    (``N >= n_fft`` is required). Trailing samples that do not fill a frame are dropped.
Spectrum
    ``S = |rfft(window * frame)| ** power`` on ``1 + n_fft // 2`` bins, computed in
    float32 (complex64). ``power=2`` is the power spectrum, ``power=1`` the magnitude.
Mel filterbank
    Triangular filters with corners on ``n_mels + 2`` points equally spaced on the mel
    scale between ``fmin`` and ``fmax`` (default ``sr / 2``). The mel scale is Slaney's
    (linear below 1 kHz, ``3 mel / 200 Hz``; logarithmic above, ``27 mel`` per factor
    6.4) unless ``htk=True`` (``2595 log10(1 + f / 700)``). ``norm="slaney"`` scales each
    filter by ``2 / (f_{m+2} - f_m)`` (constant energy per band); ``norm=None`` leaves
    the peaks at 1. Weights are computed in float64 and stored as float32.
Decibels
    ``10 log10(max(amin, M))`` with ``ref = 1.0`` (absolute, not relative to the clip's
    maximum). ``top_db`` then floors every value at ``max - top_db``, where the maximum
    is over the whole output: a whole-clip operation, which is why the streaming form
    (:class:`LogMelStream`) yields unclipped frames and leaves it to the caller
    (:func:`bitnet.features.normalize_window` does it per model window).

Everything heavy (window, filterbank, validation) is computed once per parameter set
and cached; a call does one strided framing, one batched ``rfft``, one matmul and one
``log10``.
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from typing import NamedTuple

import numpy as np

from .errors import ParameterError

__all__ = [
    "log_mel",
    "LogMelStream",
    "mel_filterbank",
    "hann_window",
    "hz_to_mel",
    "mel_to_hz",
    "n_frames",
]

#: pad modes of ``numpy.pad`` that depend only on samples near the edges (what librosa
#: allows); they can be streamed because the padding needs at most ``n_fft // 2 + 1``
#: samples of each end.
PAD_MODES = ("constant", "edge", "reflect", "symmetric")

# ---------------------------------------------------------------------------------------
# mel scales


def hz_to_mel(frequencies, htk: bool = False):
    """Convert Hz to mels (Slaney's scale by default, HTK's with ``htk=True``).

    Parameters
    ----------
    frequencies : float or array_like of float
        Frequencies in Hz.
    htk : bool
        Use ``2595 log10(1 + f / 700)`` instead of the Slaney scale.

    Returns
    -------
    float or numpy.ndarray of float64
        The same shape as ``frequencies``.

    Examples
    --------
    >>> round(hz_to_mel(1000.0), 9)
    15.0
    """
    f = np.asarray(frequencies, dtype=np.float64)
    if htk:
        mels = 2595.0 * np.log10(1.0 + f / 700.0)
    else:
        f_sp = 200.0 / 3
        min_log_hz = 1000.0
        min_log_mel = min_log_hz / f_sp
        logstep = np.log(6.4) / 27.0
        mels = f / f_sp
        log_t = f >= min_log_hz
        mels = np.where(log_t, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep, mels)
    return mels if mels.ndim else float(mels)


def mel_to_hz(mels, htk: bool = False):
    """Convert mels to Hz; the inverse of :func:`hz_to_mel`.

    Parameters
    ----------
    mels : float or array_like of float
        Mel values.
    htk : bool
        Use the HTK scale instead of Slaney's.

    Returns
    -------
    float or numpy.ndarray of float64
        The same shape as ``mels``.
    """
    m = np.asarray(mels, dtype=np.float64)
    if htk:
        freqs = 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    else:
        f_sp = 200.0 / 3
        min_log_hz = 1000.0
        min_log_mel = min_log_hz / f_sp
        logstep = np.log(6.4) / 27.0
        freqs = np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)
    return freqs if freqs.ndim else float(freqs)


# ---------------------------------------------------------------------------------------
# parameter checks


#: Upper bounds on the frontend's sizes. Far above any audio model's settings, they keep a
#: nonsensical value (a typo, or an edited model file) from asking for gigabytes of
#: filterbank or window memory instead of failing with a clear message.
MAX_N_FFT = 1 << 16
MAX_N_MELS = 1024
MAX_HOP = 1 << 20
MAX_SR = 1_000_000


def _int_param(name: str, value, minimum: int = 1, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ParameterError(f"{name} must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ParameterError(f"{name} must be <= {maximum}, got {value!r}")
    return int(value)


def _float_param(name: str, value, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ParameterError(f"{name} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ParameterError(f"{name} must be > 0, got {value!r}")
    return float(value)


def _check_mel(sr, n_fft, n_mels, fmin, fmax, htk, norm):
    sr = _float_param("sr", sr, positive=True)
    if sr > MAX_SR:
        raise ParameterError(f"sr must be <= {MAX_SR} Hz, got {sr!r}")
    n_fft = _int_param("n_fft", n_fft, 2, MAX_N_FFT)
    n_mels = _int_param("n_mels", n_mels, 1, MAX_N_MELS)
    fmin = _float_param("fmin", fmin)
    if fmin < 0:
        raise ParameterError(f"fmin must be >= 0 Hz, got {fmin!r}")
    nyquist = sr / 2
    fmax = nyquist if fmax is None else _float_param("fmax", fmax)
    if fmax > nyquist:
        raise ParameterError(
            f"fmax={fmax!r} Hz is above the Nyquist frequency sr/2 = {nyquist!r} Hz; "
            f"use fmax=None (or <= {nyquist!r})"
        )
    if fmax <= fmin:
        raise ParameterError(f"fmax={fmax!r} must be greater than fmin={fmin!r}")
    if not isinstance(htk, (bool, np.bool_)):
        raise ParameterError(f"htk must be True or False, got {htk!r}")
    if norm not in ("slaney", None):
        raise ParameterError(f"norm must be 'slaney' or None, got {norm!r}")
    return sr, n_fft, n_mels, fmin, fmax, bool(htk), norm


# ---------------------------------------------------------------------------------------
# cached building blocks


def mel_filterbank(sr, n_fft, n_mels, fmin=0.0, fmax=None, htk=False, norm="slaney") -> np.ndarray:
    """Return the mel filterbank matrix (cached, read-only).

    Parameters
    ----------
    sr : float
        Sample rate in Hz.
    n_fft : int
        FFT size; the filterbank has ``1 + n_fft // 2`` columns.
    n_mels : int
        Number of mel bands (rows).
    fmin, fmax : float
        Lowest and highest frequency in Hz; ``fmax=None`` means ``sr / 2``.
    htk : bool
        HTK mel scale instead of Slaney's.
    norm : {"slaney", None}
        Slaney area normalisation, or none (peaks at 1).

    Returns
    -------
    numpy.ndarray of float32, shape (n_mels, 1 + n_fft // 2)
        Read-only; equal to ``librosa.filters.mel`` with the same arguments (float32
        rounding aside).

    Warns
    -----
    UserWarning
        When some band has no FFT bin inside it (too many mels for ``n_fft``); that
        band is always ``10 log10(amin)``.

    Examples
    --------
    >>> mel_filterbank(16000, 400, 40).shape
    (40, 201)
    """
    return _mel_filterbank(*_check_mel(sr, n_fft, n_mels, fmin, fmax, htk, norm))


@functools.lru_cache(maxsize=64)
def _mel_filterbank(sr: float, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool, norm):
    fftfreqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    lower = -ramps[:n_mels] / fdiff[:n_mels, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    if not np.all((mel_f[:-2] == 0) | (weights.max(axis=1) > 0)):
        warnings.warn(
            f"empty mel filters: {n_mels} mels are too many for n_fft={n_fft} at sr={sr:g} "
            f"between {fmin:g} and {fmax:g} Hz; some bands will be constant. "
            "Reduce n_mels or raise n_fft.",
            stacklevel=4,
        )
    weights = weights.astype(np.float32)
    weights.flags.writeable = False
    return weights


def hann_window(win_length: int, n_fft: int | None = None) -> np.ndarray:
    """Return the periodic Hann window, zero-padded centred to ``n_fft`` (cached, read-only).

    Parameters
    ----------
    win_length : int
        Length of the Hann window.
    n_fft : int, optional
        Total length (``>= win_length``); default ``win_length``.

    Returns
    -------
    numpy.ndarray of float32, shape (n_fft,)
    """
    n_fft = win_length if n_fft is None else n_fft
    return _hann(_int_param("win_length", win_length, 1), _int_param("n_fft", n_fft, win_length))


@functools.lru_cache(maxsize=64)
def _hann(win_length: int, n_fft: int) -> np.ndarray:
    n = np.arange(win_length, dtype=np.float64)
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)
    out = np.zeros(n_fft, dtype=np.float32)
    left = (n_fft - win_length) // 2
    out[left : left + win_length] = w
    out.flags.writeable = False
    return out


class _Plan(NamedTuple):
    """Validated parameters with their window and filterbank; one per parameter set."""

    n_fft: int
    hop: int
    n_mels: int
    center: bool
    pad_mode: str
    power: float
    amin: float
    window: np.ndarray  # float32 (n_fft,)
    fb: np.ndarray  # float32 (n_mels, 1 + n_fft // 2)


# typed: 256.0 must not hit the cache entry of 256 (nor True that of 1)
@functools.lru_cache(maxsize=64, typed=True)
def _plan(sr, n_fft, hop_length, win_length, n_mels, fmin, fmax, htk, norm, center, pad_mode, power, amin):
    sr, n_fft, n_mels, fmin, fmax, htk, norm = _check_mel(sr, n_fft, n_mels, fmin, fmax, htk, norm)
    hop = _int_param("hop_length", hop_length, 1, MAX_HOP)
    win_length = n_fft if win_length is None else _int_param("win_length", win_length, 1, MAX_N_FFT)
    if win_length > n_fft:
        raise ParameterError(f"win_length={win_length} must be <= n_fft={n_fft}; raise n_fft or lower win_length")
    if not isinstance(center, (bool, np.bool_)):
        raise ParameterError(f"center must be True or False, got {center!r}")
    if pad_mode not in PAD_MODES:
        raise ParameterError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    power = _float_param("power", power, positive=True)
    amin = _float_param("amin", amin, positive=True)
    return _Plan(
        n_fft, hop, n_mels, bool(center), pad_mode, power, amin,
        _hann(win_length, n_fft), _mel_filterbank(sr, n_fft, n_mels, fmin, fmax, htk, norm),
    )


def _get_plan(sr, n_fft, hop_length, win_length, n_mels, fmin, fmax, htk, norm, center, pad_mode, power, amin):
    try:
        return _plan(sr, n_fft, hop_length, win_length, n_mels, fmin, fmax, htk, norm, center, pad_mode, power, amin)
    except TypeError as exc:  # an unhashable argument (a list, an array)
        raise ParameterError(f"frontend parameters must be plain numbers/strings: {exc}") from None


def _check_top_db(top_db):
    if top_db is None:
        return None
    top_db = _float_param("top_db", top_db)
    if top_db < 0:
        raise ParameterError(f"top_db must be >= 0 (or None for no floor), got {top_db!r}")
    return top_db


def _check_signal(y, what: str = "y") -> np.ndarray:
    """Return ``y`` as a contiguous 1-D float32 array, or raise ParameterError."""
    if not isinstance(y, np.ndarray):
        y = np.asarray(y)
    if y.ndim != 1:
        raise ParameterError(
            f"{what} must be a 1-D waveform, got shape {y.shape}; mix channels down first "
            "(bitnet.load_audio does)"
        )
    if y.dtype != np.float32:
        if not np.issubdtype(y.dtype, np.floating):
            raise ParameterError(
                f"{what} must hold floating-point samples, got dtype {y.dtype}; "
                "scale integer PCM to [-1, 1] first (bitnet.load_audio does)"
            )
        y = y.astype(np.float32)
    y = np.ascontiguousarray(y)
    # one cheap reduction; the element-wise check only when the sum is not finite
    if y.size and not math.isfinite(float(y.sum())) and not np.isfinite(y).all():
        raise ParameterError(f"{what} contains NaN or Inf samples")
    return y


# ---------------------------------------------------------------------------------------
# the computation


def n_frames(n_samples: int, n_fft: int, hop_length: int, center: bool = True) -> int:
    """Number of frames :func:`log_mel` returns for a signal of ``n_samples`` samples.

    Returns 0 where :func:`log_mel` would raise (no samples, or ``center=False`` and
    fewer than ``n_fft`` samples).
    """
    padded = n_samples + 2 * (n_fft // 2) if center else n_samples
    if n_samples < 1 or padded < n_fft:
        return 0
    return 1 + (padded - n_fft) // hop_length


#: frames per matrix product in :func:`_frames_db` (see there)
_BLOCK = 16
#: frames per FFT call in :func:`_frames_db`
_FFT_ROWS = 32


def _frames_db(plan: _Plan, x: np.ndarray, count: int) -> np.ndarray:
    """dB log-mel of the first ``count`` frames of ``x`` (1-D, contiguous, float32).

    Every frame goes through exactly this code, in the batch and the streaming form
    alike, so that both produce the same numbers. The FFT is computed row by row (the
    same per frame whatever the batch), but a BLAS matrix product is not: its kernels
    change with the number of columns, and a frame's value changed in the last bit
    with the batch it came in. So the frames are zero-padded to a multiple of
    ``_BLOCK`` and multiplied as a stack of ``(K, _BLOCK)`` matrices: every product has
    the same shape, hence the same kernel and summation order, whatever ``count`` is.
    (It also keeps each product below OpenBLAS's multi-threading threshold, so the
    frontend stays on one thread.)
    """
    # a strided view of the frames (np.ndarray on the buffer: as_strided's cost, less)
    frames = np.ndarray((count, plan.n_fft), dtype=np.float32, buffer=x, strides=(4 * plan.hop, 4))
    blocks = -(-count // _BLOCK)
    mag = np.zeros((blocks * _BLOCK, 1 + plan.n_fft // 2), dtype=np.float32)
    # the FFT goes _FFT_ROWS frames at a time: measured faster than one call on all
    # frames (whose float32 input and output stop fitting the fast caches)
    for i in range(0, count, _FFT_ROWS):
        spec = np.fft.rfft(frames[i : i + _FFT_ROWS] * plan.window, axis=-1)  # complex64
        m = mag[i : i + spec.shape[0]]
        if plan.power == 2.0:
            np.multiply(spec.real, spec.real, out=m)
            m += spec.imag * spec.imag
        elif plan.power == 1.0:
            np.abs(spec, out=m)
        else:
            np.power(np.abs(spec), np.float32(plan.power), out=m)
    mel = np.matmul(plan.fb, mag.reshape(blocks, _BLOCK, -1).transpose(0, 2, 1))  # (blocks, n_mels, B)
    out = np.empty((plan.n_mels, count), dtype=np.float32)
    out_blocks = out if count == blocks * _BLOCK else np.empty((plan.n_mels, blocks * _BLOCK), np.float32)
    out_blocks.reshape(plan.n_mels, blocks, _BLOCK)[...] = mel.transpose(1, 0, 2)
    if out_blocks is not out:
        out[...] = out_blocks[:, :count]
    np.maximum(out, np.float32(plan.amin), out=out)
    np.log10(out, out=out)
    out *= np.float32(10.0)
    return out


def _pad(y: np.ndarray, left: int, right: int, mode: str) -> np.ndarray:
    if mode == "constant":
        out = np.zeros(y.shape[0] + left + right, dtype=np.float32)
        out[left : left + y.shape[0]] = y
        return out
    return np.pad(y, (left, right), mode=mode)


def log_mel(
    y,
    *,
    sr,
    n_fft,
    hop_length,
    win_length=None,
    n_mels,
    fmin=0.0,
    fmax=None,
    htk=False,
    norm="slaney",
    center=True,
    pad_mode="constant",
    power=2.0,
    amin=1e-10,
    top_db=80.0,
) -> np.ndarray:
    """Log-mel spectrogram in dB, equal to librosa's within 1e-3 dB.

    The conventions (window, padding, mel scales, dB) are in the module docstring.

    Parameters
    ----------
    y : numpy.ndarray, shape (n_samples,), floating dtype
        Mono waveform; converted to float32. Must be finite and non-empty.
    sr : float
        Sample rate of ``y`` in Hz (used for the filterbank only).
    n_fft : int
        FFT size (>= 2).
    hop_length : int
        Samples between frame starts (>= 1).
    win_length : int, optional
        Hann window length (<= n_fft); default ``n_fft``.
    n_mels : int
        Number of mel bands.
    fmin, fmax : float
        Frequency range of the filterbank in Hz; ``fmax=None`` means ``sr / 2``.
    htk : bool
        HTK mel scale instead of Slaney's.
    norm : {"slaney", None}
        Filter normalisation.
    center : bool
        Pad ``n_fft // 2`` samples on each side so that frames are centred.
    pad_mode : {"constant", "edge", "reflect", "symmetric"}
        How ``center=True`` pads (``numpy.pad`` modes; "constant" pads zeros).
    power : float
        Exponent of the magnitude spectrum (2: power, 1: magnitude).
    amin : float
        Floor applied before the logarithm (> 0).
    top_db : float or None
        Floor the output at ``max - top_db`` (over the whole output); None: no floor.

    Returns
    -------
    numpy.ndarray of float32, shape (n_mels, n_frames)
        ``n_frames = 1 + (n_samples - n_fft % 2) // hop_length`` when ``center``, else
        ``1 + (n_samples - n_fft) // hop_length``.

    Raises
    ------
    bitnet.ParameterError
        A bad parameter, a signal that is not 1-D float, empty or non-finite, or shorter
        than ``n_fft`` with ``center=False``.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.zeros(16000, dtype=np.float32)
    >>> log_mel(y, sr=16000, n_fft=400, hop_length=160, n_mels=40).shape
    (40, 101)
    """
    plan = _get_plan(sr, n_fft, hop_length, win_length, n_mels, fmin, fmax, htk, norm, center, pad_mode, power, amin)
    top_db = _check_top_db(top_db)
    y = _check_signal(y)
    count = n_frames(y.shape[0], plan.n_fft, plan.hop, plan.center)
    if count == 0:
        if y.shape[0] == 0:
            raise ParameterError("y is empty (0 samples); log_mel needs at least one sample")
        raise ParameterError(
            f"y has {y.shape[0]} samples, fewer than n_fft={plan.n_fft}, and center=False gives no frame; "
            "pad the signal or use center=True"
        )
    if plan.center:
        half = plan.n_fft // 2
        y = _pad(y, half, half, plan.pad_mode)
    out = _frames_db(plan, y, count)
    if top_db is not None:
        np.maximum(out, out.max() - np.float32(top_db), out=out)
    return out


class LogMelStream:
    """Streaming :func:`log_mel`: push chunks of any size, get the new frames.

    The concatenation (along the frame axis) of every :meth:`push` result and the final
    :meth:`flush` equals ``log_mel(whole_signal, ..., top_db=None)`` exactly: every frame
    is computed by the same code from the same samples. With ``center=True`` the left
    padding is applied once enough samples (``n_fft // 2 + 1``) have arrived; the right
    padding, and with it the last ``~n_fft / (2 hop_length)`` frames, comes at
    :meth:`flush`.

    ``top_db`` is not a parameter: its floor is relative to the maximum of the whole
    clip, which a stream does not know. The frames are unclipped dB; apply the floor per
    analysis window (:func:`bitnet.features.normalize_window`).

    Parameters
    ----------
    sr, n_fft, hop_length, win_length, n_mels, fmin, fmax, htk, norm, center, pad_mode, power, amin
        As for :func:`log_mel`.

    Notes
    -----
    Memory is bounded: the stream keeps less than ``n_fft`` samples (plus the
    ``n_fft // 2 + 1`` most recent ones for the right padding). After :meth:`flush`
    the stream is reset and can take a new signal. With ``center=False`` a signal
    shorter than ``n_fft`` yields no frame (where :func:`log_mel` raises).

    Examples
    --------
    >>> import numpy as np
    >>> s = LogMelStream(sr=16000, n_fft=400, hop_length=160, n_mels=40)
    >>> parts = [s.push(np.zeros(1000, np.float32)) for _ in range(16)] + [s.flush()]
    >>> np.concatenate(parts, axis=1).shape
    (40, 101)
    """

    def __init__(
        self,
        *,
        sr,
        n_fft,
        hop_length,
        win_length=None,
        n_mels,
        fmin=0.0,
        fmax=None,
        htk=False,
        norm="slaney",
        center=True,
        pad_mode="constant",
        power=2.0,
        amin=1e-10,
    ):
        self._plan = _get_plan(
            sr, n_fft, hop_length, win_length, n_mels, fmin, fmax, htk, norm, center, pad_mode, power, amin
        )
        self._half = self._plan.n_fft // 2 if self._plan.center else 0
        self.reset()

    @property
    def n_mels(self) -> int:
        """Number of mel bands of every output."""
        return self._plan.n_mels

    @property
    def frames_emitted(self) -> int:
        """Frames produced since the start (or the last flush/reset)."""
        return self._done

    @property
    def samples_seen(self) -> int:
        """Samples pushed since the start (or the last flush/reset)."""
        return self._seen

    def reset(self) -> None:
        """Forget everything pushed so far."""
        self._started = not self._plan.center  # left padding applied (or none needed)
        self._head = []  # samples held before the left padding can be made
        self._buf = np.zeros(0, dtype=np.float32)  # padded signal from padded index _pos on
        self._pos = 0
        self._done = 0
        self._seen = 0
        self._tail = np.zeros(0, dtype=np.float32)  # the last n_fft//2 + 1 samples

    def _empty(self) -> np.ndarray:
        return np.zeros((self._plan.n_mels, 0), dtype=np.float32)

    def _append(self, x: np.ndarray) -> None:
        self._buf = np.concatenate((self._buf, x)) if self._buf.size else x

    def _emit(self) -> np.ndarray:
        plan = self._plan
        start = self._done * plan.hop  # padded index of the next frame
        skip = start - self._pos  # > 0 only when hop_length > n_fft
        if skip > 0:
            drop = min(skip, self._buf.shape[0])
            self._buf = self._buf[drop:]
            self._pos += drop
            if skip > drop:
                return self._empty()
        avail = self._buf.shape[0]
        if avail < plan.n_fft:
            return self._empty()
        count = 1 + (avail - plan.n_fft) // plan.hop
        buf = np.ascontiguousarray(self._buf)
        out = _frames_db(plan, buf, count)
        self._done += count
        used = count * plan.hop
        self._buf = buf[used:] if used < avail else np.zeros(0, dtype=np.float32)
        self._pos += min(used, avail)
        return out

    def push(self, chunk) -> np.ndarray:
        """Add samples; return the frames they complete.

        Parameters
        ----------
        chunk : numpy.ndarray, shape (k,), floating dtype
            The next samples (k >= 0), finite.

        Returns
        -------
        numpy.ndarray of float32, shape (n_mels, m)
            The ``m >= 0`` frames completed by this chunk, unclipped dB.
        """
        x = _check_signal(chunk, "chunk")
        if x.shape[0] == 0:
            return self._empty()
        if isinstance(chunk, np.ndarray) and np.may_share_memory(x, chunk):
            x = x.copy()  # the stream keeps samples; never alias the caller's buffer
        self._seen += x.shape[0]
        keep = self._half + 1
        self._tail = np.concatenate((self._tail, x))[-keep:]
        if not self._started:
            self._head.append(x)
            if self._seen < keep:
                return self._empty()
            y = np.concatenate(self._head)
            self._head = []
            # the left padding needs at most the first n_fft//2 + 1 samples
            padded = _pad(y[:keep], self._half, 0, self._plan.pad_mode)
            x = np.concatenate((padded, y[keep:]))
            self._started = True
        self._append(x)
        return self._emit()

    def flush(self) -> np.ndarray:
        """Apply the end padding, return the last frames, and reset the stream.

        Returns
        -------
        numpy.ndarray of float32, shape (n_mels, m)
            The remaining ``m >= 0`` frames, unclipped dB.
        """
        plan = self._plan
        try:
            if self._seen == 0:
                return self._empty()
            if not self._plan.center:
                return self._emit()
            if not self._started:  # a clip shorter than n_fft//2 + 1 samples: pad it whole
                y = np.concatenate(self._head)
                x = _pad(y, self._half, self._half, plan.pad_mode)
                self._head = []
                self._started = True
            else:
                # right padding from the retained tail; the tail overlaps what is buffered
                tail = self._tail
                x = _pad(tail, 0, self._half, plan.pad_mode)[tail.shape[0] :]
            self._append(x)
            total = n_frames(self._seen, plan.n_fft, plan.hop, True)
            out = self._emit()
            assert self._done == total, (self._done, total)
            return out
        finally:
            self.reset()
