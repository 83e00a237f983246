"""Live listening: cut a stream of audio into utterances and classify each one.

``bitnet listen`` (microphone, through the optional ``sounddevice`` package) and
``bitnet listen -`` (raw PCM or WAV on standard input, e.g. from ``arecord``) both feed
:class:`Segmenter`, which finds utterances with the same frame energies and thresholds
as the speech gate (:mod:`bitnet.gate`):

* the stream is cut into blocks of ``gate.hop`` seconds (10 ms); a block's level is its
  mean-removed power in dBFS;
* the noise floor follows the quietest recent blocks: it drops at once to a quieter
  block and rises by at most ``floor_rise_db`` per second, and it is frozen inside an
  utterance (so speech does not raise it);
* a block is voiced when it is at least ``gate.min_level_db`` dBFS and at least
  ``gate.min_contrast_db`` above the floor; the first voiced block opens an utterance
  (with ``pre_roll`` seconds of audio before it); ``hangover`` seconds without a voiced
  block close it (with ``post_roll`` seconds after the last voiced block); an utterance
  reaching ``max_seconds`` is closed there;
* an utterance with fewer than ``gate.min_speech`` voiced seconds is dropped; the others
  are classified with :meth:`bitnet.Model.predict` (a clip shorter than the model window
  is zero-padded, centred, as in training), which runs the clip-level gate once more.

The command-line entry points (``listen``, ``record``; ``show`` lives in
:mod:`bitnet.plot`) are registered on the ``bitnet`` parser by :func:`add_parsers`.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from dataclasses import dataclass, field

import numpy as np

from .errors import AudioError, DeviceError, ParameterError
from .gate import DEFAULT_GATE, SILENCE_DB, Gate

__all__ = ["Segmenter", "Utterance", "listen", "stdin_chunks", "mic_chunks", "record", "add_parsers"]

#: what to tell a user whose microphone path is missing a piece
FIX_PACKAGE = "pip install 'bitnet-audio[mic]' (the sounddevice package)"
FIX_PORTAUDIO = "install PortAudio, e.g. 'sudo apt-get install libportaudio2' on Debian, Ubuntu or Raspberry Pi OS"


@dataclass
class Utterance:
    """One stretch of speech found in a stream.

    Attributes
    ----------
    start, end : float
        Seconds from the start of the stream (pre- and post-roll included).
    samples : numpy.ndarray of float32
        The audio, at the stream's rate.
    voiced_seconds : float
        Seconds of voiced blocks in it.
    """

    start: float
    end: float
    samples: np.ndarray
    voiced_seconds: float


@dataclass
class Segmenter:
    """Energy-gate endpointer for a mono stream at ``sample_rate`` (see the module docstring).

    Push chunks with :meth:`push` (returns the utterances that ended in them) and call
    :meth:`flush` at the end of the stream. :attr:`level_db` is the level of the last
    block, for a meter.
    """

    sample_rate: int
    gate: Gate = DEFAULT_GATE
    hangover: float = 0.35
    pre_roll: float = 0.15
    post_roll: float = 0.15
    max_seconds: float = 2.0
    floor_rise_db: float = 3.0
    level_db: float = SILENCE_DB
    floor_db: float | None = None
    _pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), repr=False)
    _blocks: list = field(default_factory=list, repr=False)
    _n_blocks: int = 0
    _active: bool = False
    _voiced: int = 0
    _last_voiced: int = -1
    _first: int = 0

    def __post_init__(self):
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, (int, np.integer)) or self.sample_rate <= 0:
            raise ParameterError(f"sample_rate must be a positive integer, got {self.sample_rate!r}")
        self.block = max(1, int(round(self.gate.hop * self.sample_rate)))
        self._pre = int(math.ceil(self.pre_roll / self.gate.hop))
        self._post = int(math.ceil(self.post_roll / self.gate.hop))
        self._hang = max(1, int(math.ceil(self.hangover / self.gate.hop)))
        self._max = max(1, int(self.max_seconds / self.gate.hop))

    @property
    def seconds(self) -> float:
        """Stream time consumed so far, seconds (whole blocks)."""
        return self._n_blocks * self.block / self.sample_rate

    def push(self, chunk) -> list[Utterance]:
        """Add float samples; return the utterances that ended."""
        x = np.asarray(chunk, dtype=np.float32).reshape(-1)
        buf = np.concatenate((self._pending, x)) if self._pending.size else x
        n = buf.shape[0] // self.block
        self._pending = buf[n * self.block :].copy()
        out = []
        for i in range(n):
            u = self._block(buf[i * self.block : (i + 1) * self.block])
            if u is not None:
                out.append(u)
        return out

    def flush(self) -> list[Utterance]:
        """End of stream: close an open utterance (the unfinished last block is dropped)."""
        self._pending = np.zeros(0, np.float32)
        if self._active:
            u = self._close(self._n_blocks)
            return [u] if u is not None else []
        return []

    def _block(self, b: np.ndarray):
        idx = self._n_blocks
        self._n_blocks += 1
        p = float(np.var(b, dtype=np.float64))
        level = max(10 * math.log10(p), SILENCE_DB) if p > 0 else SILENCE_DB
        self.level_db = level
        step = self.floor_rise_db * self.gate.hop
        if self.floor_db is None:
            self.floor_db = level
        elif not self._active:
            self.floor_db = level if level < self.floor_db else min(level, self.floor_db + step)
        g = self.gate
        voiced = level >= g.min_level_db and level >= self.floor_db + g.min_contrast_db
        self._blocks.append(b.copy())
        if not self._active:
            if voiced:
                self._active, self._voiced, self._last_voiced = True, 1, idx
                self._first = max(idx - self._pre, idx - len(self._blocks) + 1)
            else:
                keep = self._pre + 1
                if len(self._blocks) > keep:
                    del self._blocks[: len(self._blocks) - keep]
            return None
        if voiced:
            self._voiced += 1
            self._last_voiced = idx
        if idx - self._last_voiced >= self._hang or idx + 1 - self._first >= self._max:
            return self._close(idx + 1)
        return None

    def _close(self, end_block: int):
        """Close the open utterance; blocks before ``end_block`` are in the buffer."""
        last = min(end_block, self._last_voiced + 1 + self._post)
        buf_first = self._n_blocks - len(self._blocks)  # block index of self._blocks[0]
        take = self._blocks[self._first - buf_first : last - buf_first]
        rest = self._blocks[last - buf_first :]
        voiced = self._voiced
        start = self._first
        self._active, self._voiced = False, 0
        self._blocks = rest[-(self._pre + 1) :] if rest else []
        if voiced * self.gate.hop < self.gate.min_speech or not take:
            return None
        bs = self.block / self.sample_rate
        return Utterance(start * bs, last * bs, np.concatenate(take), voiced * self.gate.hop)


# --------------------------------------------------------------------------- sources


def _pcm_to_float(raw: bytes, fmt: str, channels: int) -> np.ndarray:
    """Interleaved PCM bytes -> mono float32 (full scale ±1)."""
    if fmt == "s16":
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768
    elif fmt == "s32":
        x = np.frombuffer(raw, "<i4").astype(np.float32) / 2147483648
    elif fmt == "u8":
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
    elif fmt == "s24":
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = (np.where(v >= 1 << 23, v - (1 << 24), v)).astype(np.float32) / 8388608
    else:  # f32
        x = np.frombuffer(raw, "<f4").astype(np.float32)
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1)
    if not np.isfinite(x).all():
        raise AudioError("<stdin>: NaN/Inf samples in the stream")
    return x


_WAV_FORMATS = {(1, 8): "u8", (1, 16): "s16", (1, 24): "s24", (1, 32): "s32", (3, 32): "f32"}


def _read_exact(f, n: int) -> bytes:
    out = b""
    while len(out) < n:
        got = f.read(n - len(out))
        if not got:
            break
        out += got
    return out


def _wav_header(f, first: bytes):
    """Parse a RIFF/WAVE header from a pipe (``first`` = the 4 bytes already read).

    Returns (rate, channels, fmt). The data size is ignored: ``arecord`` writing to a
    pipe cannot know it, so the data run to the end of the stream.
    """
    rest = _read_exact(f, 8)
    if len(rest) < 8 or rest[4:8] != b"WAVE":
        raise AudioError("<stdin>: starts with RIFF but is not a WAVE stream")
    fmt = None
    while True:
        hdr = _read_exact(f, 8)
        if len(hdr) < 8:
            raise AudioError("<stdin>: WAV stream ended before its data chunk")
        cid, size = hdr[:4], struct.unpack("<I", hdr[4:])[0]
        if cid == b"data":
            break
        body = _read_exact(f, size + (size & 1))
        if cid == b"fmt ":
            tag, ch, rate = struct.unpack("<HHI", body[:8])
            bits = struct.unpack("<H", body[14:16])[0]
            if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real tag is in the GUID
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = (tag, bits, ch, rate)
    if fmt is None:
        raise AudioError("<stdin>: WAV stream has no fmt chunk")
    tag, bits, ch, rate = fmt
    kind = _WAV_FORMATS.get((tag, bits))
    if kind is None or ch < 1 or rate < 1:
        raise AudioError(f"<stdin>: unsupported WAV format (tag {tag}, {bits} bits, {ch} channels)")
    return rate, ch, kind


def stdin_chunks(f, rate: int = 16000, channels: int = 1, block_seconds: float = 0.1):
    """Read raw S16_LE PCM or a WAV stream from a binary file object.

    Returns
    -------
    (sample_rate, iterator of float32 mono chunks)
        A stream starting with ``RIFF`` is read as WAV (its header gives rate, channels
        and sample format); anything else is raw signed 16-bit little-endian PCM at
        ``rate`` Hz with ``channels`` interleaved channels.
    """
    head = _read_exact(f, 4)
    if head == b"RIFF":
        rate, channels, kind = _wav_header(f, head)
        head = b""
    else:
        kind = "s16"
    width = {"u8": 1, "s16": 2, "s24": 3, "s32": 4, "f32": 4}[kind] * channels
    n_bytes = max(1, int(rate * block_seconds)) * width

    def gen():
        carry = head
        while True:
            raw = f.read(n_bytes)
            if not raw:
                break
            raw = carry + raw
            cut = len(raw) - len(raw) % width
            carry = raw[cut:]
            if cut:
                yield _pcm_to_float(raw[:cut], kind, channels)
        if len(carry) >= width:
            yield _pcm_to_float(carry[: len(carry) - len(carry) % width], kind, channels)

    return rate, gen()


def _sounddevice():
    """Import sounddevice, turning a missing package or PortAudio into one clear DeviceError."""
    try:
        import sounddevice
    except ImportError as e:
        raise DeviceError(f"the microphone needs the sounddevice package: {FIX_PACKAGE}") from e
    except OSError as e:  # sounddevice is there but libportaudio is not
        raise DeviceError(f"PortAudio library not found ({' '.join(str(e).split())}): {FIX_PORTAUDIO}") from e
    return sounddevice


def _device_error(sd, device, e) -> DeviceError:
    msg = " ".join(str(e).split())
    which = f"input device {device!r}" if device is not None else "the default input device"
    return DeviceError(
        f"cannot open {which}: {msg}; list devices with 'python -m sounddevice', pick one with --device, "
        f"or pipe audio in: arecord -f S16_LE -r 16000 -c 1 | bitnet listen -"
    )


def _parse_device(device):
    if device is None:
        return None
    try:
        return int(device)
    except (TypeError, ValueError):
        return device


def mic_chunks(device=None, rate: int | None = None, block_seconds: float = 0.05):
    """Open a microphone through sounddevice.

    Returns
    -------
    (sample_rate, iterator of float32 mono chunks)
        ``rate`` None takes the device's default rate (bitnet resamples each utterance).

    Raises
    ------
    DeviceError
        sounddevice or PortAudio missing, or no usable input device (one line, with the fix).
    """
    sd = _sounddevice()
    device = _parse_device(device)
    try:
        if rate is None:
            info = sd.query_devices(device, "input")
            rate = int(round(float(info["default_samplerate"])))
        blocksize = max(1, int(rate * block_seconds))
        stream = sd.InputStream(samplerate=rate, channels=1, dtype="float32", device=device, blocksize=blocksize)
        stream.start()
    except DeviceError:
        raise
    except Exception as e:  # PortAudioError, ValueError for a bad device name, ...
        raise _device_error(sd, device, e) from None

    def gen():
        try:
            while True:
                data, _overflowed = stream.read(blocksize)
                yield np.asarray(data, dtype=np.float32).reshape(-1)
        finally:
            stream.stop()
            stream.close()

    return rate, gen()


# --------------------------------------------------------------------------- listening


def listen(model, chunks, sample_rate: int, *, gate=None, threshold: float = 0.0, seconds=None, on_level=None, **seg_kw):
    """Classify the utterances in a stream.

    Parameters
    ----------
    model : bitnet.Model
    chunks : iterable of numpy.ndarray
        Mono float32 chunks at ``sample_rate``.
    gate : bitnet.Gate, optional
        Thresholds for the segmenter and the clip gate (default: the default gate).
    threshold : float
        Utterances whose top probability is below it are reported with ``accepted=False``.
    seconds : float, optional
        Stop after this much audio.
    on_level : callable, optional
        Called with ``(seconds, level_dBFS, in_utterance)`` after each chunk (a meter).
    **seg_kw
        Other :class:`Segmenter` settings (``hangover``, ``max_seconds``...).

    Yields
    ------
    dict
        One event per utterance: ``start``, ``end`` (seconds), ``label``,
        ``probability``, ``accepted``, ``top_k`` and ``voiced_seconds``.
    """
    g = DEFAULT_GATE if gate is None else Gate.coerce(gate)
    seg = Segmenter(int(sample_rate), g, **seg_kw)

    def classify(utts):
        for u in utts:
            p = model.predict(u.samples, sample_rate=sample_rate, gate=g)
            if not p.speech:
                continue
            yield {
                "event": "utterance",
                "start": round(u.start, 3),
                "end": round(u.end, 3),
                "label": p.label,
                "probability": round(p.probability, 4),
                "accepted": bool(p.probability >= threshold),
                "top_k": [[lab, round(v, 4)] for lab, v in p.top_k(3)],
                "voiced_seconds": round(u.voiced_seconds, 3),
            }

    for chunk in chunks:
        if seconds is not None:
            room = int(round((seconds - seg.seconds) * sample_rate)) - seg._pending.shape[0]
            if room <= 0:
                break
            chunk = np.asarray(chunk)[:room]
        yield from classify(seg.push(chunk))
        if on_level is not None:
            on_level(seg.seconds, seg.level_db, seg._active)
    yield from classify(seg.flush())


class _Meter:
    """A one-line level meter on a terminal, rewritten in place."""

    def __init__(self, out, width: int = 30, lo: float = -70.0):
        self.out, self.width, self.lo = out, width, lo
        self.shown = False

    def __call__(self, t, db, active):
        frac = min(max((db - self.lo) / -self.lo, 0.0), 1.0)
        n = int(round(frac * self.width))
        bar = ("#" * n).ljust(self.width)
        lvl = "-inf" if db <= SILENCE_DB else f"{db:5.1f}"
        self.out.write(f"\r{t:7.1f}s [{bar}] {lvl} dBFS {'speech' if active else '      '}")
        self.out.flush()
        self.shown = True

    def clear(self):
        if self.shown:
            self.out.write("\r" + " " * (self.width + 32) + "\r")
            self.out.flush()
            self.shown = False


def _format_event(e: dict) -> str:
    if e["accepted"]:
        return f"{e['start']:8.2f}s  {e['label']:>6}  {e['probability']:.3f}"
    alts = ", ".join(f"{lab} {p:.3f}" for lab, p in e["top_k"])
    return f"{e['start']:8.2f}s  {'?':>6}  {e['probability']:.3f}   (unsure: {alts})"


def cmd_listen(args) -> int:
    from .cli import _load_model

    model = _load_model(args.model, getattr(args, "debug", False))
    gate = Gate(min_level_db=args.min_level) if args.min_level is not None else DEFAULT_GATE
    if args.source == "-":
        if args.device is not None:
            raise ParameterError("--device is for the microphone; 'listen -' reads standard input")
        rate, chunks = stdin_chunks(sys.stdin.buffer, rate=args.rate or 16000, channels=args.channels)
    elif args.source is None:
        rate, chunks = mic_chunks(args.device, args.rate)
    else:
        raise ParameterError(f"listen takes '-' (standard input) or nothing (the microphone), got {args.source!r}")
    meter = _Meter(sys.stdout) if sys.stdout.isatty() and not args.json else None
    if not args.json:
        src = "standard input" if args.source == "-" else "the microphone"
        print(f"listening to {src} at {rate} Hz (Ctrl-C to stop)", file=sys.stderr, flush=True)
    count = 0
    try:
        for e in listen(model, chunks, rate, gate=gate, threshold=args.threshold, seconds=args.seconds, on_level=meter):
            count += 1
            if meter is not None:
                meter.clear()
            print(json.dumps(e) if args.json else _format_event(e), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        if meter is not None:
            meter.clear()
    if not args.json:
        print(f"{count} utterance{'s' if count != 1 else ''}", file=sys.stderr, flush=True)
    return 0


# --------------------------------------------------------------------------- record


def record(path, seconds: float, device=None, rate: int = 16000) -> int:
    """Record ``seconds`` of mono audio from a microphone into a 16-bit WAV file; return samples written."""
    import soundfile as sf

    sr, chunks = mic_chunks(device, rate)
    n = int(round(seconds * sr))
    parts, got = [], 0
    for c in chunks:
        parts.append(c[: n - got])
        got += parts[-1].shape[0]
        if got >= n:
            break
    y = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    sf.write(str(path), np.clip(y, -1.0, 1.0), sr, subtype="PCM_16")
    return int(y.shape[0])


def cmd_record(args) -> int:
    n = record(args.out, args.seconds, args.device, args.rate)
    print(f"{args.out}: {n / args.rate:.2f} s at {args.rate} Hz", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- parsers


def add_parsers(sub) -> None:
    """Register ``listen``, ``record`` and ``show`` on the ``bitnet`` sub-command parser."""
    from .cli import _positive_float, _positive_int

    def prob(text):
        v = float(text)
        if not 0 <= v <= 1:
            raise ValueError(text)
        return v

    li = sub.add_parser(
        "listen", help="classify speech from the microphone or standard input, utterance by utterance",
        description="Find utterances with the speech gate and print one line per utterance. "
                    "'bitnet listen' uses the microphone (pip install 'bitnet-audio[mic]'); "
                    "'bitnet listen -' reads raw S16_LE PCM (--rate, --channels) or WAV from standard input, "
                    "e.g. arecord -f S16_LE -r 16000 -c 1 | bitnet listen -",
    )
    li.add_argument("source", nargs="?", metavar="-", help="'-' to read standard input instead of the microphone")
    li.add_argument("--model", "-m", metavar="M", help="model file (default: the bundled spoken-digit model)")
    li.add_argument("--device", "-d", metavar="D", help="input device, number or name (python -m sounddevice lists them)")
    li.add_argument("--threshold", "-t", type=prob, default=0.5, metavar="P",
                    help="report utterances below this probability as unsure '?' (default 0.5)")
    li.add_argument("--rate", "-r", type=_positive_int, metavar="HZ",
                    help="sample rate of raw PCM on stdin (default 16000) or of the microphone (default: the device's)")
    li.add_argument("--channels", "-c", type=_positive_int, default=1, metavar="N", help="channels of raw PCM on stdin (default 1)")
    li.add_argument("--seconds", type=_positive_float, metavar="S", help="stop after S seconds of audio")
    li.add_argument("--min-level", type=float, metavar="DBFS", help="gate: quietest voiced frame, dBFS (default %g)" % DEFAULT_GATE.min_level_db)
    li.add_argument("--json", action="store_true", help="one JSON object per utterance")
    li.add_argument("--debug", action="store_true", help="show tracebacks")
    li.set_defaults(func=cmd_listen)

    rec = sub.add_parser("record", help="record a clip from the microphone into a WAV file")
    rec.add_argument("out", metavar="OUT.wav", help="file to write (16-bit PCM WAV)")
    rec.add_argument("--seconds", "-s", type=_positive_float, default=2.0, metavar="S", help="length (default 2)")
    rec.add_argument("--device", "-d", metavar="D", help="input device, number or name")
    rec.add_argument("--rate", "-r", type=_positive_int, default=16000, metavar="HZ", help="sample rate (default 16000)")
    rec.add_argument("--debug", action="store_true", help="show tracebacks")
    rec.set_defaults(func=cmd_record)

    sh = sub.add_parser("show", help="plot the log-mel a model sees and its class probabilities over time",
                        description="Draw the log-mel the model sees and the per-window class probabilities over "
                                    "time with the predicted label (needs matplotlib: pip install 'bitnet-audio[plot]').")
    sh.add_argument("path", metavar="CLIP", help="audio file")
    sh.add_argument("--output", "-o", metavar="PNG", help="image to write (default: CLIP with .png)")
    sh.add_argument("--model", "-m", metavar="M", help="model file (default: the bundled model)")
    sh.add_argument("--debug", action="store_true", help="show tracebacks")
    sh.set_defaults(func=_cmd_show)


def _cmd_show(args) -> int:
    from .plot import cmd_show

    return cmd_show(args)
