"""The user-facing model: load a ``.bnn`` file, classify audio.

>>> import bitnet
>>> model = bitnet.load()                       # the bundled spoken-digit model
>>> p = model.predict("examples/7_jackson_0.wav")  # doctest: +SKIP
>>> p.label, p.top_k(3)                          # doctest: +SKIP
('7', [('7', 0.97), ('1', 0.01), ('9', 0.005)])

Clip policy
-----------
A model sees fixed windows of ``frames`` log-mel frames (``Model.window_seconds``, 1 s for
the digits model). Every input is first converted to mono float32 and resampled to the
model's sample rate (polyphase, :func:`bitnet.load_audio`). Then:

* **a clip no longer than the window** is zero-padded, centred, to exactly one window
  (:func:`bitnet.features.clip_features`), and classified once;
* **a longer clip** is cut into sliding windows (:func:`bitnet.features.sliding_windows`,
  hop = half a window by default, ``hop=`` in seconds to change it); every window is
  classified and the clip's probabilities are the **mean of the per-window
  probabilities over the windows that hold speech** (arithmetic mean of softmax outputs;
  with the speech gate on, windows with less than ``Gate.min_speech`` of voiced frames
  are left out, :attr:`Prediction.window_speech`; all windows where none holds speech or
  the gate is off). A mean of probabilities (rather than of log-probabilities) keeps one
  confidently wrong window from vetoing a class that other windows are sure of, and
  leaving silent windows out keeps a short word in a long recording from being
  outvoted by the silence around it. The per-window probabilities and
  start times are kept in :attr:`Prediction.window_probabilities` and
  :attr:`Prediction.window_starts`.

Batches (a list of inputs) put every window of every clip through one graph run and
give the same results as predicting each clip alone.

Threads: a :class:`Model` holds no mutable state after loading; ``predict`` may be called
from several Python threads at once (the kernels release the GIL) and gives the same
results as serial calls. ``bitnet.set_num_threads(n)`` sets how many threads one call
uses (1 by default).

First run: the kernels are compiled ahead of time for this machine on the first run
after installation (:mod:`bitnet.compile.aot`; ``bitnet compile`` does it beforehand) and
cached on disk, so that later processes run without importing numba; without that
module (``BITNET_AOT=0``, no C compiler) numba compiles them and caches them itself.
Either way bitnet says so once on stderr when it finds the cache cold
(:mod:`bitnet.compile.notice`). The result types are in :mod:`bitnet.results`.
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path

import numpy as np

from .audio import StreamResampler, pcm_to_float
from .compile.notice import run_graph
from .errors import AudioError, BitnetError, ModelFileError, ParameterError
from .gate import NO_SPEECH
from .modelfile import read_model
from .results import Prediction, Segment, softmax

__all__ = ["load", "infer", "Model", "Prediction", "Segment", "DEFAULT_MODEL", "bundled_models", "resolve"]

#: The bundled default model.
DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "default.bnn"

UNTRAINED_MARK = "untrained"


# --------------------------------------------------------------------------- the model


def _is_source(x) -> bool:
    return isinstance(x, (str, os.PathLike, np.ndarray)) or hasattr(x, "read")


def _source_name(x) -> str | None:
    if isinstance(x, (str, os.PathLike)):
        return os.fspath(x)
    name = getattr(x, "name", None)
    return name if isinstance(name, str) else None


class Model:
    """A loaded, validated model. Make one with :func:`bitnet.load`.

    Attributes
    ----------
    path : pathlib.Path
        The file it was loaded from (the bundled file for the default model).
    labels : tuple of str
        Class labels, in logit order.
    frontend : bitnet.features.FrontendConfig
        Sample rate and log-mel settings; ``frontend.frames`` is the window in frames.
    header : dict
        The full model header (``docs/graph.md``).
    provenance : dict
        Dataset, split, accuracy, training command, creation date.
    graph : bitnet.graph.Graph
        The validated layer graph.
    """

    def __init__(self, header: dict, tensors: dict, path: Path, graph, frontend):
        self.header = header
        self.tensors = tensors
        self.path = path
        self.graph = graph
        self.frontend = frontend
        self.labels = tuple(header["labels"])
        self.provenance = dict(header["provenance"])

    # ---------------------------------------------------------------- properties

    @property
    def sample_rate(self) -> int:
        """The rate audio is resampled to, Hz."""
        return int(self.frontend.sample_rate)

    @property
    def window_samples(self) -> int:
        """Samples in one model window at :attr:`sample_rate`."""
        return int(self.frontend.window_samples)

    @property
    def window_seconds(self) -> float:
        """The model window in seconds."""
        return self.window_samples / self.sample_rate

    @property
    def untrained(self) -> bool:
        """True when the provenance marks the model an untrained placeholder."""
        status = self.provenance.get("status")
        if isinstance(status, str) and UNTRAINED_MARK in status.lower():
            return True
        return any(isinstance(v, str) and "untrained placeholder" in v.lower() for v in self.provenance.values())

    def __repr__(self) -> str:
        return f"Model({str(self.path)!r}, labels={len(self.labels)}, sample_rate={self.sample_rate})"

    # ---------------------------------------------------------------- building blocks

    def _hop_frames(self, hop) -> int:
        if hop is None:
            return max(1, int(self.frontend.frames) // 2)
        if isinstance(hop, bool) or not isinstance(hop, (int, float, np.number)) or not math.isfinite(hop) or hop <= 0:
            raise ParameterError(f"hop must be a positive number of seconds, got {hop!r}")
        return max(1, int(round(hop * self.sample_rate / self.frontend.hop_length)))

    def read_audio(self, audio, sample_rate=None) -> np.ndarray:
        """Load one input as mono float32 at the model's rate (see :func:`bitnet.load_audio`)."""
        from .audio import load_audio

        if isinstance(audio, np.ndarray) or (isinstance(audio, (list, tuple)) and audio and not _is_source(audio[0])):
            if sample_rate is None:
                raise ParameterError(
                    "an array needs its sample rate: predict(samples, sample_rate=16000)"
                )
            y, _ = load_audio(np.asarray(audio), sr=self.sample_rate, orig_sr=sample_rate)
        elif isinstance(audio, (str, os.PathLike)) or hasattr(audio, "read"):
            y, _ = load_audio(audio, sr=self.sample_rate)
        else:
            raise ParameterError(
                f"audio must be a path, a file object, a 1-D array (with sample_rate) or a list of these, "
                f"got {type(audio).__name__}"
            )
        return y

    def windows(self, y: np.ndarray, hop=None) -> tuple[np.ndarray, np.ndarray]:
        """Cut mono samples at the model rate into model windows, per the clip policy.

        Returns
        -------
        features : numpy.ndarray of float32, shape (n_windows, n_mels, frames)
        starts : numpy.ndarray of float64, shape (n_windows,)
            Window start times in seconds.
        """
        from .features import sliding_windows

        hop_frames = self._hop_frames(hop)
        feats = sliding_windows(y, self.frontend, hop_frames)
        return feats, self._starts(y.shape[0], hop_frames)

    def _starts(self, n_samples: int, hop_frames: int) -> np.ndarray:
        """Start times (s) of the windows ``sliding_windows`` makes from ``n_samples`` samples."""
        from .features import _window_starts
        from .frontend import n_frames

        fe = self.frontend
        if n_samples <= self.window_samples:
            return np.zeros(1)
        total = n_frames(n_samples, fe.n_fft, fe.hop_length, fe.center)
        starts = _window_starts(total, int(fe.frames), hop_frames)
        return np.asarray(starts, dtype=np.float64) * fe.hop_length / self.sample_rate

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Run the graph: float32 ``(N, n_mels, frames)`` log-mel windows → ``(N, n_classes)`` logits."""
        x = np.ascontiguousarray(features, dtype=np.float32)
        if x.ndim == 2:
            x = x[None]
        want = (int(self.header["input"]["shape"][0]), int(self.header["input"]["shape"][1]))
        if x.ndim != 3 or x.shape[1:] != want:
            raise ParameterError(f"features must have shape (N, {want[0]}, {want[1]}), got {x.shape}")
        if x.shape[0] == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return run_graph(self.graph, x)

    def _result(self, probs: np.ndarray, starts: np.ndarray, source, gate=None, window_speech=None) -> Prediction:
        use = probs
        if window_speech is not None and window_speech.any():
            use = probs[window_speech]
        mean = use.mean(axis=0)
        mean = (mean / mean.sum()).astype(np.float32)
        idx = int(np.argmax(mean))
        speech = gate is None or gate.speech
        return Prediction(
            label=self.labels[idx] if speech else NO_SPEECH,
            index=idx if speech else -1,
            probabilities=mean,
            labels=self.labels,
            window_probabilities=probs.astype(np.float32),
            window_starts=np.asarray(starts, dtype=np.float64),
            window_seconds=self.window_seconds,
            source=source,
            speech=speech,
            gate=gate,
            window_speech=window_speech,
        )

    # ---------------------------------------------------------------- public API

    def predict(self, audio, sample_rate=None, *, hop=None, gate=True):
        """Classify one clip or a batch of clips.

        Parameters
        ----------
        audio : str, os.PathLike, file object, numpy.ndarray, or a list of these
            A file (WAV/FLAC/OGG…), a file object, or samples: float or int array of
            shape ``(samples,)`` or ``(channels, samples)`` (mixed to mono). A Python
            list or tuple is a batch.
        sample_rate : int, optional
            Rate of array inputs (required for them); files carry their own rate.
        hop : float, optional
            Hop between sliding windows for clips longer than the window, seconds
            (default: half a window).
        gate : bool or bitnet.Gate, default True
            The speech gate (:mod:`bitnet.gate`): a clip without speech gets
            ``speech=False`` and the label :data:`bitnet.NO_SPEECH` instead of a digit.
            ``False`` turns it off; a :class:`bitnet.Gate` sets its thresholds. A model
            whose file says ``"gate": false`` (sound-event models such as ``esc10``) runs
            without it unless a :class:`bitnet.Gate` is given.

        Returns
        -------
        Prediction, or list of Prediction for a list input.

        Raises
        ------
        AudioError
            Audio that cannot be read or used (the message names the file).
        ParameterError
            A bad argument (an array without ``sample_rate``, a bad hop).

        Examples
        --------
        >>> model.predict("examples/7_jackson_0.wav").label       # doctest: +SKIP
        '7'
        >>> [p.label for p in model.predict([y1, y2], sample_rate=8000)]  # doctest: +SKIP
        ['3', '9']
        """
        from .gate import Gate

        if gate is True and self.header.get("gate") is False:  # a sound-event model: no speech gate
            gate = False
        g = Gate.coerce(gate)
        batch = isinstance(audio, (list, tuple))
        items = list(audio) if batch else [audio]
        if batch and not items:
            return []
        feats, starts, names, gates, voiced = [], [], [], [], []
        for item in items:
            y = self.read_audio(item, sample_rate)
            f, s = self.windows(y, hop)
            feats.append(f)
            starts.append(s)
            names.append(_source_name(item))
            if not g.enabled:
                gr, mask = None, None
            elif f.shape[0] > 1:  # one pass over the frame levels: the clip's decision and its speech windows
                gr, mask = g.check_windows(y, self.sample_rate, s, self.window_seconds)
            else:
                gr, mask = g.check(y, self.sample_rate), None
            gates.append(gr)
            voiced.append(mask)
        probs = softmax(self.logits(np.concatenate(feats) if len(feats) > 1 else feats[0]))
        out, pos = [], 0
        for f, s, name, gr, v in zip(feats, starts, names, gates, voiced):
            out.append(self._result(probs[pos : pos + f.shape[0]], s, name, gr, v))
            pos += f.shape[0]
        return out if batch else out[0]

    def stream(self, chunks, sample_rate=None, *, hop=None):
        """Classify a stream of audio chunks window by window.

        Parameters
        ----------
        chunks : iterable of numpy.ndarray
            Consecutive pieces of one mono signal (any sizes, float or int samples).
        sample_rate : int, optional
            Rate of the chunks (default: the model's). Other rates are resampled on the
            fly with the same polyphase filter as :func:`bitnet.load_audio`.
        hop : float, optional
            Hop between windows, seconds (default half a window).

        Yields
        ------
        Prediction
            One per window, as soon as the window is complete, with ``window_starts``
            holding its start time in seconds from the start of the stream. The windows
            are those of ``sliding_windows`` on the whole signal: for a signal longer
            than the window, the same windows and probabilities as
            ``predict(whole).window_probabilities`` (exactly, at the model's rate).
        """
        from .features import WindowStream

        sr = self.sample_rate if sample_rate is None else sample_rate
        if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
            raise ParameterError(f"sample_rate must be a positive integer, got {sample_rate!r}")
        hop_frames = self._hop_frames(hop)
        step = hop_frames * self.frontend.hop_length / self.sample_rate
        ws = WindowStream(self.frontend, hop_frames)
        rs = StreamResampler(int(sr), self.sample_rate) if int(sr) != self.sample_rate else None
        count = 0
        n_samples = 0

        def emit(windows, final=False):
            nonlocal count
            if windows is None or len(windows) == 0:
                return []
            probs = softmax(self.logits(windows))
            if final:  # the last windows: the end-aligned tail window starts off the grid
                starts = self._starts(n_samples, hop_frames)[count : count + len(probs)]
            else:
                starts = (count + np.arange(len(probs))) * step
            count += len(probs)
            return [self._result(row[None], np.array([t]), None) for row, t in zip(probs, starts)]

        for chunk in chunks:
            x = np.asarray(chunk)
            if x.ndim != 1:
                raise AudioError(f"stream chunks must be 1-D (mono) arrays, got shape {x.shape}")
            x = pcm_to_float(x, "stream chunk")
            if not np.isfinite(x).all():
                raise AudioError("stream chunk holds NaN or infinite samples")
            if rs is not None:
                x = rs.push(x)
            n_samples += x.shape[0]
            yield from emit(ws.push(x))
        if rs is not None:
            x = rs.flush()
            n_samples += x.shape[0]
            yield from emit(ws.push(x))
        yield from emit(ws.flush(), final=True)

    def timeline(self, audio, window=None, hop=None, sample_rate=None) -> list[Segment]:
        """Label a long recording segment by segment.

        Parameters
        ----------
        audio : path, file object or array
            One recording.
        window : float, optional
            Segment length in seconds (default: the model window). Each segment is
            classified with the clip policy (padded if shorter than the model window,
            sliding windows averaged if longer).
        hop : float, optional
            Step between segment starts in seconds (default: half the segment).
        sample_rate : int, optional
            Rate of array input.

        Returns
        -------
        list of Segment
            ``(start, end, label, probability)`` per segment, times in seconds.
        """
        for name, v in (("window", window), ("hop", hop)):
            if v is not None and (
                isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not math.isfinite(v) or v <= 0
            ):
                raise ParameterError(f"{name} must be a positive number of seconds, got {v!r}")
        y = self.read_audio(audio, sample_rate)
        sr = self.sample_rate
        win = self.window_samples if window is None else max(1, int(round(window * sr)))
        step = max(1, win // 2) if hop is None else max(1, int(round(hop * sr)))
        n = y.shape[0]
        starts = list(range(0, max(n - win, 0) + 1, step))
        if starts[-1] + win < n:  # cover the tail
            starts.append(starts[-1] + step)
        feats, counts = [], []
        for s in starts:
            f, _ = self.windows(y[s : s + win])
            feats.append(f)
            counts.append(f.shape[0])
        probs = softmax(self.logits(np.concatenate(feats)))
        out, pos = [], 0
        for s, c in zip(starts, counts):
            p = probs[pos : pos + c].mean(axis=0)
            pos += c
            i = int(np.argmax(p))
            out.append(Segment(s / sr, min(s + win, n) / sr, self.labels[i], float(p[i] / p.sum())))
        return out

    def summary(self, as_dict: bool = False):
        """The per-layer table with labels and provenance (a str), or a dict of rows and
        totals; both say which kernels run it (instruction-set path, block widths)."""
        from .kernels import isa
        from .summary import format_summary, summarize, totals

        kern = isa.describe()
        if as_dict:
            rows = summarize(self.header["layers"], self.tensors, self.header["input"]["shape"])
            return {
                "path": str(self.path),
                "frontend": dict(self.header["frontend"]),
                "layers": [dict(r, input_shape=list(r["input_shape"]), output_shape=list(r["output_shape"])) for r in rows],
                "totals": totals(rows),
                "labels": list(self.labels),
                "provenance": self.provenance,
                "kernels": kern,
            }
        return format_summary(self.header, self.tensors, self.path) + (
            f"\nkernels: {kern['path']} ({kern['popcount']}; blocks of {'/'.join(map(str, kern['lanes']))} "
            f"channels; {'compiled ahead of time' if kern['aot'] else 'numba JIT'})")


# --------------------------------------------------------------------------- loading


#: Bundled models by name (files under ``bitnet/models/``); ``digits`` is the default.
#: ``digits-robust`` was a separate noise-robust model until that recipe became the default.
MODELS_DIR = DEFAULT_MODEL.parent
_ALIASES = {"digits": "default", "default": "default", "digits-robust": "default"}


def bundled_models() -> dict:
    """Names of the bundled models and their files: ``{"digits": Path(...), ...}``."""
    out = {"digits": DEFAULT_MODEL}
    for f in sorted(MODELS_DIR.glob("*.bnn")):
        if f.stem != "default":
            out[f.stem] = f
    return out


def resolve(path) -> Path:
    """A model path from a file path or a bundled model's name (``"keywords"``).

    A string that names no existing file, has no directory part and no ``.bnn``
    suffix is looked up among the bundled models; an unknown name is a
    :class:`ModelFileError` listing the available ones.
    """
    if path is None:
        return DEFAULT_MODEL
    p = Path(path)
    if isinstance(path, str) and not p.exists() and p.name == path and p.suffix == "":
        models = bundled_models()
        name = _ALIASES.get(path, path)
        hit = models.get(name) or (DEFAULT_MODEL if name == "default" else None)
        if hit is None:
            raise ModelFileError(f"{path}: no such model file and no bundled model of that name "
                                 f"(bundled: {', '.join(models)})")
        return hit
    return p


def load(path=None) -> Model:
    """Load and fully validate a model file, a bundled model, or an ensemble.

    Parameters
    ----------
    path : str, os.PathLike or list of these, optional
        A ``.bnn`` file; the name of a bundled model (``"digits"``, ``"keywords"``,
        ``"esc10"``: :func:`bundled_models`); or a list of these, loaded as one
        :class:`bitnet.ensemble.Ensemble` whose probabilities are the mean of the
        members'. ``None`` loads the bundled default spoken-digit model. A file holding
        several members (:func:`bitnet.save_ensemble`) loads as an ensemble too.

    Returns
    -------
    Model

    Raises
    ------
    ModelFileError
        Missing, truncated, altered or corrupt files, unknown versions, graphs whose
        tensors or shapes do not fit, an unknown bundled name, ensemble members that do
        not share frontend and labels. The message names the file.

    Examples
    --------
    >>> bitnet.load("keywords").labels[:3]              # doctest: +SKIP
    ('_silence_', '_unknown_', 'down')
    >>> bitnet.load(["a.bnn", "b.bnn"]).predict(y, sample_rate=16000)   # doctest: +SKIP
    """
    if isinstance(path, (list, tuple)):
        from .ensemble import ensemble_of

        return ensemble_of([load(p) for p in path])
    path = resolve(path)
    header, tensors = read_model(path)
    if "members" in header:
        from .ensemble import from_file

        return from_file(header, tensors, path)
    return _model_from_parts(header, tensors, path)


def _model_from_parts(header: dict, tensors: dict, path: Path, where=None) -> Model:
    """Check a header's frontend and graph against its tensors; build the :class:`Model`."""
    where = str(path) if where is None else where

    from .features import FrontendConfig
    from .graph import Graph

    try:
        frontend = FrontendConfig.from_dict(header["frontend"])
    except BitnetError as e:
        raise ModelFileError(f"{where}: bad frontend settings: {e}") from None
    except (TypeError, ValueError, KeyError) as e:
        raise ModelFileError(f"{where}: bad frontend settings: {type(e).__name__}: {e}") from None
    n_mels, frames, _ = header["input"]["shape"]
    if int(frontend.n_mels) != n_mels or int(frontend.frames) != frames:
        raise ModelFileError(
            f"{where}: input shape {header['input']['shape']} does not match the frontend "
            f"({frontend.n_mels} mels × {frontend.frames} frames)"
        )
    used = {t for layer in header["layers"] for t in (layer.get("tensors") or {}).values()}
    stray = sorted(set(tensors) - used)
    if stray:
        raise ModelFileError(f"{where}: tensors {stray} are not used by any layer (corrupt or mis-exported file)")
    missing = sorted(t for t in used if t not in tensors)
    if missing:
        raise ModelFileError(f"{where}: layers need tensors {missing[:5]} that the file does not hold")
    try:
        graph = Graph(header["layers"], tensors, input_shape=tuple(header["input"]["shape"]), output=header["output"])
    except BitnetError as e:
        raise ModelFileError(f"{where}: {_one_line(e)}") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError) as e:
        raise ModelFileError(f"{where}: malformed graph: {type(e).__name__}: {_one_line(e)}") from None
    n_out = _n_classes(graph, header)
    if n_out == -1:
        raise ModelFileError(f"{where}: the graph output {header['output']!r} is not a vector of logits")
    if n_out is not None and n_out != len(header["labels"]):
        raise ModelFileError(f"{where}: the graph makes {n_out} logits but the file has {len(header['labels'])} labels")
    return Model(header, tensors, path, graph, frontend)


def _one_line(e) -> str:
    return " ".join(str(e).split())


def _n_classes(graph, header):
    info = getattr(graph, "value_info", {}).get(header["output"])
    if info is None:
        return None
    shape = info.logical_shape
    if len(shape) != 1 or info.kind != "real":
        return -1  # logits must be a real vector per example
    return int(shape[0])


_default_lock = threading.Lock()
_models: dict = {}


def _cached(path) -> Model:
    if isinstance(path, (list, tuple)):
        return load(path)
    path = None if path is None else resolve(path)
    key = None if path is None else os.path.realpath(os.fspath(path))
    try:
        stamp = os.stat(DEFAULT_MODEL if key is None else key).st_mtime_ns
    except OSError:
        stamp = None
    with _default_lock:
        hit = _models.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        model = load(path)
        _models[key] = (stamp, model)
        return model


def infer(audio, model=None, sample_rate=None, *, hop=None, gate=True):
    """Classify audio in one call.

    Parameters
    ----------
    audio : path, file object, array, or list of these
        As for :meth:`Model.predict`.
    model : Model, str or os.PathLike, optional
        A loaded model or a model file (loaded once and cached); ``None`` uses the
        bundled default model (cached).
    sample_rate : int, optional
        Rate of array inputs.
    gate : bool or bitnet.Gate, default True
        The speech gate, as for :meth:`Model.predict`.

    Returns
    -------
    Prediction, or list of Prediction for a list input.

    Examples
    --------
    >>> bitnet.infer("examples/7_jackson_0.wav").label   # doctest: +SKIP
    '7'
    """
    if not isinstance(model, Model):
        model = _cached(model)
    return model.predict(audio, sample_rate, hop=hop, gate=gate)
