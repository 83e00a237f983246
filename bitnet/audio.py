"""Audio input: files, file objects and arrays -> mono float32 samples at a chosen rate.

Conventions
-----------
Samples
    float32, nominally in [-1, 1]. Integer PCM is scaled by its full range as libsndfile
    does: signed ``b``-bit values are divided by ``2**(b-1)`` (16-bit: ``x / 32768``,
    24-bit and 32-bit likewise); unsigned 8-bit is centred first, ``(x - 128) / 128``.
    Float files are read as stored (values beyond +-1 are kept).
Channels
    Several channels are mixed to mono by their mean.
Arrays
    A 1-D array is one channel. A 2-D array is ``(channels, samples)``, librosa's
    layout (soundfile's ``(samples, channels)`` is its transpose): at most
    :data:`MAX_CHANNELS` channels, so a long first axis with a short second one, e.g.
    ``(16000, 2)``, is refused with a hint to pass ``y.T`` rather than guessed.
    Integer arrays are scaled like integer PCM; float arrays are taken as they are.
    ``orig_sr`` gives an array's sample rate; without it the array is taken to be at
    ``sr`` already (and one of the two must be given).
Resampling
    ``scipy.signal.resample_poly`` with ``up/down`` reduced by their gcd, the default
    Kaiser-windowed filter and zero padding at the ends. scipy is imported on first use
    only (``import scipy.signal`` alone costs ~0.6 s and ~80 MB).
Errors
    Every problem with the audio is a :class:`bitnet.AudioError` (a ``ValueError``)
    whose one-line message starts with the file name (or ``array``) and says what is
    wrong; a bad ``sr`` argument is a :class:`bitnet.ParameterError`.
"""

from __future__ import annotations

import io
import math
import numbers
import os
import struct

import numpy as np

from .errors import AudioError, ParameterError

__all__ = ["load_audio", "pcm_to_float", "StreamResampler", "MAX_CHANNELS", "MAX_SAMPLE_RATE"]

#: the most channels a 2-D array may have (it is read as (channels, samples))
MAX_CHANNELS = 32
#: the highest sample rate accepted (Hz); anything above is taken for a broken header
MAX_SAMPLE_RATE = 1_000_000


def _rate(value, what: str, error=AudioError) -> int:
    """Return a sample rate as an int, or raise ``error`` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise error(f"{what}: sample rate must be a positive integer in Hz, got {value!r}")
    if not math.isfinite(value) or value != int(value):
        raise error(f"{what}: sample rate must be a whole number of Hz, got {value!r}")
    rate = int(value)
    if rate <= 0 or rate > MAX_SAMPLE_RATE:
        raise error(f"{what}: nonsensical sample rate {value!r} Hz (expected 1 .. {MAX_SAMPLE_RATE})")
    return rate


def _resample(y: np.ndarray, orig_sr: int, sr: int) -> np.ndarray:
    if orig_sr == sr:
        return y
    import scipy.signal  # lazy: costly to import, needed only here

    g = math.gcd(orig_sr, sr)
    out = scipy.signal.resample_poly(y, sr // g, orig_sr // g)
    return np.ascontiguousarray(out, dtype=np.float32)


def _finite(y: np.ndarray, name: str, channels_first: bool = True) -> None:
    """Raise ``AudioError`` if ``y`` holds NaN/Inf, saying where in plain words.

    ``y`` is ``(samples,)``, ``(channels, samples)`` (``channels_first``, arrays) or
    ``(samples, channels)`` (files, as soundfile reads them).
    """
    if not math.isfinite(float(y.sum())):  # cheap; the element-wise look only on failure
        bad = ~np.isfinite(y)
        if bad.any():
            first = [int(i) for i in np.unravel_index(int(np.argmax(bad)), y.shape)]
            if y.ndim == 1:
                where = f"sample {first[0]}"
            else:
                ch, smp = first if channels_first else first[::-1]
                where = f"sample {smp} of channel {ch}"
            n = int(bad.sum())
            raise AudioError(f"{name}: {n} NaN/Inf sample{'s' if n != 1 else ''} (the first is {where})")


def _mono(data: np.ndarray) -> np.ndarray:
    """``(samples, channels)`` float32 -> contiguous ``(samples,)``."""
    if data.shape[1] == 1:
        return np.ascontiguousarray(data[:, 0])
    return np.ascontiguousarray(data.mean(axis=1, dtype=np.float32))


# ---------------------------------------------------------------------------------------
# arrays


def _real_dtype(a: np.ndarray, name: str) -> None:
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise AudioError(f"{name}: samples must be real numbers (integer or float), got dtype {a.dtype}")


def pcm_to_float(a: np.ndarray, name: str = "array") -> np.ndarray:
    """Samples of any real dtype as float32, the one rule for arrays and stream chunks.

    Signed integers are two's-complement PCM scaled by ``2**(bits-1)`` (int16 32767 →
    0.99997); unsigned integers are offset-binary PCM (uint8 128 → 0; uint16 32768 →
    0), as WAV stores 8-bit audio; floats are cast. Values are not clipped. Raises
    :class:`bitnet.AudioError` naming ``name`` for booleans and non-numeric dtypes.
    """
    _real_dtype(a, name)
    if not np.issubdtype(a.dtype, np.integer):
        with np.errstate(over="ignore"):  # values beyond float32 become Inf; callers report them
            return a.astype(np.float32, copy=False)
    bits = a.dtype.itemsize * 8
    half = float(2 ** (bits - 1))
    x = a.astype(np.float64)
    if np.issubdtype(a.dtype, np.unsignedinteger):
        x -= half
    return (x / half).astype(np.float32)


def _from_array(a, sr, orig_sr):
    name = "array"
    try:
        a = np.asarray(a)
    except Exception as exc:  # ragged lists and the like
        raise AudioError(f"{name}: cannot be read as a numeric array ({exc})") from exc
    _real_dtype(a, name)
    if a.ndim == 2:
        ch, n = a.shape
        if ch > MAX_CHANNELS:
            hint = "; it looks like (samples, channels): pass y.T" if n <= MAX_CHANNELS else ""
            raise AudioError(
                f"{name}: shape {a.shape} read as (channels, samples) has {ch} channels, "
                f"more than {MAX_CHANNELS}{hint}"
            )
        if ch == 0:
            raise AudioError(f"{name}: shape {a.shape} has zero channels")
    elif a.ndim != 1:
        raise AudioError(f"{name}: expected 1-D (samples,) or 2-D (channels, samples), got {a.ndim}-D shape {a.shape}")
    if a.shape[-1] == 0:
        raise AudioError(f"{name}: zero samples (shape {a.shape})")
    if orig_sr is None and sr is None:
        raise AudioError(f"{name}: sample rate unknown; pass orig_sr= (the array's rate) and/or sr=")
    if orig_sr is not None:
        orig_sr = _rate(orig_sr, name)
    y = pcm_to_float(a, name)
    _finite(y, name)  # after the cast: float64 values beyond float32's range count as Inf
    if y.ndim == 2:
        y = _mono(y.T)
    else:
        y = np.array(y, dtype=np.float32, copy=True) if y is a else np.ascontiguousarray(y)
    if orig_sr is None:
        return y, sr
    if sr is None:
        return y, orig_sr
    return _resample(y, orig_sr, sr), sr


# ---------------------------------------------------------------------------------------
# streams


class StreamResampler:
    """Streaming polyphase resampling equal (up to rounding) to ``scipy.signal.resample_poly``.

    Same filter as ``resample_poly(x, up, down)`` (Kaiser β = 5, 10 zero crossings per
    side) and the same output alignment, computed chunk by chunk: output sample ``m``
    is made as soon as every input it depends on has arrived; :meth:`flush` makes the
    rest, treating the signal as ending there.
    """

    def __init__(self, orig_sr: int, sr: int):
        from scipy.signal import firwin  # lazy: costly to import

        g = math.gcd(int(orig_sr), int(sr))
        up, down = int(sr) // g, int(orig_sr) // g
        max_rate = max(up, down)
        half_len = 10 * max_rate
        h = firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * up
        pre = down - half_len % down
        h = np.concatenate((np.zeros(pre), h))
        self.up, self.down = up, down
        self.delay = (half_len + pre) // down  # outputs resample_poly drops at the start
        k = -(-len(h) // up)
        poly = np.zeros((up, k))
        for p in range(up):
            taps = h[p::up]
            poly[p, : len(taps)] = taps
        self.poly = poly  # poly[p, i] = h[p + i*up]
        self.k = k
        self.buf = np.zeros(0)
        self.buf_start = 0  # input index of buf[0]
        self.n_in = 0
        self.m = 0  # next output index

    def _make(self, m_end: int) -> np.ndarray:
        if m_end <= self.m:
            return np.zeros(0, np.float32)
        m = np.arange(self.m, m_end)
        t = (m + self.delay) * self.down
        phase, j = t % self.up, t // self.up
        idx = j[:, None] - np.arange(self.k)[None, :] - self.buf_start
        valid = (idx >= 0) & (idx < self.buf.shape[0])
        vals = np.where(valid, self.buf[np.clip(idx, 0, max(self.buf.shape[0] - 1, 0))] if self.buf.size else 0.0, 0.0)
        y = (vals * self.poly[phase]).sum(axis=1)
        self.m = m_end
        # keep only what later outputs can still need
        t_next = (self.m + self.delay) * self.down
        keep_from = t_next // self.up - self.k + 1
        drop = min(max(0, keep_from - self.buf_start), self.buf.shape[0])
        if drop:
            self.buf = self.buf[drop:]
            self.buf_start += drop
        return y.astype(np.float32)

    def push(self, x: np.ndarray) -> np.ndarray:
        self.buf = np.concatenate((self.buf, x.astype(np.float64)))
        self.n_in += x.shape[0]
        # output m needs inputs up to j = (m + delay) * down // up, which must be < n_in
        m_end = (self.n_in * self.up - 1) // self.down - self.delay + 1 if self.n_in else 0
        return self._make(max(m_end, self.m))

    def flush(self) -> np.ndarray:
        n_out = -(-self.n_in * self.up // self.down)
        return self._make(n_out)


# ---------------------------------------------------------------------------------------
# files


def _wav_truncation(f, size: int):
    """Return ``(declared, available)`` data bytes of a RIFF/WAVE file when the data
    chunk claims more bytes than the file holds, else None.

    libsndfile quietly reads what is there; bitnet reports the damage instead. A data
    size of 0 or 0xFFFFFFFF is what an interrupted recorder leaves: not flagged.
    """
    head = f.read(12)
    if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RIFX"):
        return None
    fmt = "<4sI" if head[:4] == b"RIFF" else ">4sI"
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        chunk = f.read(8)
        if len(chunk) < 8:
            return None
        cid, csize = struct.unpack(fmt, chunk)
        if cid == b"data":
            available = size - (pos + 8)
            if csize in (0, 0xFFFFFFFF) or csize <= available:
                return None
            return csize, available
        pos += 8 + csize + (csize & 1)
    return None


def _source_name(source) -> str:
    name = getattr(source, "name", None)
    if isinstance(name, (str, bytes, os.PathLike)):
        return os.fsdecode(name) if not isinstance(name, os.PathLike) else os.fspath(name)
    return "<file object>"


def _sf_message(exc: Exception) -> str:
    """libsndfile's own words, without soundfile's "Error opening <object>:" prefix."""
    msg = getattr(exc, "error_string", None) or str(exc)
    return " ".join(str(msg).split())


def _open_error(name: str, exc: Exception) -> AudioError:
    msg = _sf_message(exc)
    low = msg.lower()
    if "format not recognised" in low or "unknown format" in low or "not a valid" in low:
        return AudioError(f"{name}: not a recognised audio file (bitnet reads WAV, FLAC and OGG via libsndfile): {msg}")
    return AudioError(f"{name}: corrupt or unreadable audio file: {msg}")


def _from_file(source, sr, orig_sr, is_path: bool):
    import soundfile as sf  # part of the engine's dependencies; imported on first use

    if orig_sr is not None:
        raise ParameterError("orig_sr is for arrays only; a file's header gives its sample rate")
    if is_path:
        name = os.fsdecode(os.fspath(source))
        if not os.path.exists(name):
            raise AudioError(f"{name}: no such file")
        if os.path.isdir(name):
            raise AudioError(f"{name}: is a directory, not an audio file")
        try:
            size = os.path.getsize(name)
            handle = open(name, "rb")
        except OSError as exc:
            raise AudioError(f"{name}: cannot open: {exc.strerror or exc}") from exc
        if size == 0:
            handle.close()
            raise AudioError(f"{name}: empty file (0 bytes), not audio")
        start = 0
    else:
        name = _source_name(source)
        handle = source
        try:
            start = handle.tell() if handle.seekable() else None
        except (OSError, AttributeError, ValueError):
            start = None
        if start is None:  # soundfile needs to seek: read the rest into memory
            try:
                handle = io.BytesIO(source.read())
            except Exception as exc:
                raise AudioError(f"{name}: cannot read from the file object: {exc}") from exc
            start = 0
        size = handle.seek(0, io.SEEK_END)
        handle.seek(start)
        if size - start <= 0:
            raise AudioError(f"{name}: empty file (0 bytes), not audio")

    try:
        try:
            trunc = _wav_truncation(_Offset(handle, start), size - start)
            handle.seek(start)
        except OSError as exc:
            raise AudioError(f"{name}: cannot read: {exc}") from exc
        if trunc is not None:
            declared, available = trunc
            raise AudioError(
                f"{name}: truncated WAV file: the header promises {declared} bytes of samples, "
                f"the file holds {available}"
            )
        try:
            f = sf.SoundFile(handle)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            raise _open_error(name, exc) from exc
        with f:
            rate = _rate(f.samplerate, name)
            declared = f.frames
            try:
                data = f.read(dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
                raise AudioError(f"{name}: corrupt or truncated audio data: {_sf_message(exc)}") from exc
    finally:
        if is_path:
            handle.close()
    if 0 < data.shape[0] < declared:
        raise AudioError(
            f"{name}: truncated or corrupt file: the header promises {declared} frames, only {data.shape[0]} could be read"
        )
    if data.shape[0] == 0:
        raise AudioError(f"{name}: zero samples (an empty recording)")
    if data.shape[1] == 0:
        raise AudioError(f"{name}: zero channels")
    _finite(data, name, channels_first=False)
    y = _mono(data)
    if sr is None:
        return y, rate
    return _resample(y, rate, sr), sr


class _Offset:
    """A read/seek view of a file object starting at ``base`` (for the RIFF check)."""

    def __init__(self, f, base: int):
        self._f, self._base = f, base

    def read(self, n: int) -> bytes:
        return self._f.read(n)

    def seek(self, pos: int) -> int:
        return self._f.seek(self._base + pos) - self._base


# ---------------------------------------------------------------------------------------


def load_audio(source, sr=None, *, orig_sr=None) -> tuple[np.ndarray, int]:
    """Read audio as mono float32 samples, resampled to ``sr`` if given.

    Parameters
    ----------
    source : str, os.PathLike, binary file object, or numpy.ndarray
        A WAV, FLAC or OGG file (8/16/24/32-bit integer or float samples; anything
        libsndfile reads), an open binary file object holding one, or an array of
        samples: shape ``(samples,)`` or ``(channels, samples)``, integer or float
        dtype (see the module docstring for scaling and layout).
    sr : int, optional
        Target sample rate in Hz; the audio is resampled to it when its own rate
        differs. None keeps the source's rate.
    orig_sr : int, optional
        Arrays only: the rate of the samples. Without it an array is taken to be at
        ``sr`` already; with neither, the rate is unknown and it is an error.

    Returns
    -------
    samples : numpy.ndarray of float32, shape (n_samples,)
        Contiguous, owned by the caller (never a view of ``source``).
    sample_rate : int
        ``sr`` if given, else the source's rate.

    Raises
    ------
    bitnet.AudioError
        Missing file, a directory, not audio, corrupt or truncated file, zero samples,
        NaN/Inf samples, a nonsensical sample rate (in a header or ``orig_sr``), an
        array of the wrong shape or dtype. The message starts with the file name
        (``array`` for arrays).
    bitnet.ParameterError
        A bad ``sr``, or ``orig_sr`` given with a file.

    Examples
    --------
    >>> import numpy as np
    >>> y, rate = load_audio(np.zeros((2, 16000), np.int16), sr=8000, orig_sr=16000)
    >>> y.shape, y.dtype, rate
    ((8000,), dtype('float32'), 8000)
    """
    if sr is not None:
        sr = _rate(sr, "sr", ParameterError)
    if isinstance(source, (str, os.PathLike)):
        return _from_file(source, sr, orig_sr, is_path=True)
    if isinstance(source, (bytes, bytearray, memoryview)):
        raise AudioError(
            "bytes: pass a path, a file object (io.BytesIO(data) for encoded bytes in memory) or a numpy array"
        )
    if hasattr(source, "read"):
        return _from_file(source, sr, orig_sr, is_path=False)
    return _from_array(source, sr, orig_sr)
