"""Datasets, the clip-length policy, feature caching and waveform augmentation.

Data sources (``--data``)
-------------------------
``fsdd``
    The Free Spoken Digit Dataset, from ``$BITNET_FSDD`` or ``../shared/data/fsdd``
    relative to the repository (either the dataset folder or its ``recordings/``).
    Splits (``--split``): ``official`` (takes 0-4 of every digit and speaker are the
    test set, 300 clips; takes 5-49 train, 2,700 clips), ``validation`` (inside the
    official training takes: takes 5-9 validate, 10-49 train; for choosing recipes
    without touching the test takes) or ``speaker:NAME`` (leave-one-speaker-out: NAME's
    500 clips are the test set).
a folder
    One sub-folder per class holding audio files (``.wav``, ``.flac``, ``.ogg``). Split
    ``random:0.1`` (default; stratified, seeded) holds out that fraction as the test set.
a ``.csv`` manifest
    Columns ``path,label[,fold]`` (a header row is optional; relative paths are relative to
    the CSV). Split ``fold:K`` holds fold K out (ESC-50 style), ``random:F`` as above.
``esc10``
    ESC-10 (``$BITNET_DATA/esc10`` or ``../shared/data/esc10``): its ``esc10.csv`` with the
    5 given folds (clips of one source recording share a fold). Split ``fold:K``.
``speech_commands``
    The Speech Commands v0.02 12-class test set (``$BITNET_DATA/speech_commands_v2_test``
    or ``../shared/data/speech_commands_v2_test``; any folder holding ``_silence_`` and
    ``_unknown_`` sub-folders is read the same way). Split **by speaker**: a speaker's
    hash (from the file name) goes to bucket ``sha1(speaker) mod 100``; buckets 0-19 are
    the fixed test part, buckets 20-99 four cross-validation folds of 20 buckets each.
    Split ``test`` trains on folds 1-4 and tests on the test part; ``fold:K`` (K = 1..4)
    trains on the other three folds and validates on fold K (the test part unused). No
    speaker is ever on both sides. ``_silence_`` clips (background-noise segments) have
    no speaker; each is bucketed by its file name.

Clip-length policy
------------------
The model sees a fixed window of ``frontend.frames`` frames (``window_samples`` samples).
Features are always computed by ``bitnet.features.clip_features`` (the engine's own
function), so training and inference see the same numbers. For evaluation every clip is
given to ``clip_features`` unchanged (it pads or windows the clip with its documented
default policy). In training, as augmentation, a clip shorter than the window is placed
at a random position inside a silent window (time shift) and a clip longer than the
window is cropped at a random offset (``fit_length(y, n, offset)``).

Clean (unaugmented) features are cached per clip in ``runs/cache/<frontend hash>/``
(the frontend settings and feature implementation), each keyed by the clip's path, size
and modification time, so every split and fold of a dataset reuses them; decoded
waveforms are memoised in the process (``load_waves``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
AUDIO_EXT = (".wav", ".flac", ".ogg", ".aiff", ".aif")
FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")

__all__ = [
    "ClipSet",
    "load_dataset",
    "fsdd_root",
    "Featurizer",
    "frontend_config",
]


# ---------------------------------------------------------------------------------------
# Frontend: bitnet's own (the only one used for exported models)


def frontend_config(**kwargs):
    """A ``bitnet.features.FrontendConfig`` from keyword arguments."""
    from bitnet.features import FrontendConfig

    return FrontendConfig(**kwargs)


class Featurizer:
    """Waveform -> model input, exactly as the engine computes it.

    Wraps ``bitnet.features.clip_features`` / ``fit_length`` / ``bitnet.load_audio``.
    """

    def __init__(self, cfg):
        from bitnet import features

        self.cfg = cfg
        self._features = features
        self.impl = f"{features.__name__}/{getattr(features, '__version__', '1')}"

    @property
    def cfg_shape(self) -> tuple:
        """``(n_mels, frames)`` of one window."""
        return (int(self.cfg.n_mels), int(self.cfg.frames))

    @property
    def window(self) -> int:
        return int(self.cfg.window_samples)

    def load(self, path) -> np.ndarray:
        from bitnet import load_audio

        y, _ = load_audio(str(path), sr=self.cfg.sample_rate)
        return np.asarray(y, dtype=np.float32)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        return self._features.clip_features(np.asarray(y, dtype=np.float32), self.cfg)

    def random_window(self, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random placement (short clip) or random crop (long clip) to the window."""
        n = self.window
        if len(y) > n:
            return self._features.fit_length(y, n, offset=int(rng.integers(0, len(y) - n + 1)))
        out = np.zeros(n, dtype=np.float32)
        start = int(rng.integers(0, n - len(y) + 1))
        out[start:start + len(y)] = y
        return out


# ---------------------------------------------------------------------------------------
# Datasets


@dataclass
class ClipSet:
    """A list of audio files with integer labels (and optional groups, e.g. speakers)."""

    paths: list
    labels: np.ndarray
    label_names: list
    groups: list = field(default_factory=list)

    def __len__(self):
        return len(self.paths)

    def subset(self, idx):
        idx = np.asarray(idx, dtype=np.int64)
        g = [self.groups[i] for i in idx] if self.groups else []
        return ClipSet([self.paths[i] for i in idx], self.labels[idx], self.label_names, g)


def fsdd_root(path=None) -> Path:
    """The FSDD ``recordings`` folder (env ``BITNET_FSDD`` or ``../shared/data/fsdd``)."""
    p = Path(path or os.environ.get("BITNET_FSDD") or (REPO.parent / "shared" / "data" / "fsdd"))
    if (p / "recordings").is_dir():
        p = p / "recordings"
    if not p.is_dir():
        raise FileNotFoundError(f"FSDD not found at {p}; set BITNET_FSDD or pass --data PATH")
    return p


_FSDD_RE = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


def _fsdd(split: str, root=None):
    root = fsdd_root(root)
    paths, labels, speakers, takes = [], [], [], []
    for f in sorted(root.iterdir()):
        m = _FSDD_RE.match(f.name)
        if m:
            paths.append(f)
            labels.append(int(m.group(1)))
            speakers.append(m.group(2))
            takes.append(int(m.group(3)))
    if not paths:
        raise FileNotFoundError(f"no FSDD recordings in {root}")
    full = ClipSet(paths, np.array(labels), [str(d) for d in range(10)], speakers)
    takes = np.array(takes)
    speakers = np.array(speakers)
    if split in ("official", "", None):
        test = takes <= 4
        desc = "FSDD official split (takes 0-4 test: 300 clips; takes 5-49 train: 2700)"
    elif split == "validation":
        # carved from the official TRAINING takes only: tune here, never on takes 0-4
        keep = takes >= 5
        full, takes, speakers = full.subset(np.flatnonzero(keep)), takes[keep], speakers[keep]
        test = takes <= 9
        desc = "FSDD validation split of the official training takes (takes 5-9 validate: 300; 10-49 train: 2400)"
    elif split.startswith("speaker:"):
        spk = split.split(":", 1)[1]
        if spk not in set(speakers):
            raise ValueError(f"speaker {spk!r} not in FSDD; choose one of {sorted(set(speakers))}")
        test = speakers == spk
        desc = f"FSDD leave-one-speaker-out: {spk} held out ({test.sum()} test clips)"
    else:
        raise ValueError(f"split {split!r}: for FSDD use 'official', 'validation' or 'speaker:NAME'")
    return full.subset(np.flatnonzero(~test)), full.subset(np.flatnonzero(test)), desc


def _random_split(full: ClipSet, frac: float, seed: int):
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(full.labels):
        idx = np.flatnonzero(full.labels == c)
        rng.shuffle(idx)
        test.extend(idx[: max(1, int(round(frac * len(idx))))])
    mask = np.zeros(len(full), bool)
    mask[test] = True
    return full.subset(np.flatnonzero(~mask)), full.subset(np.flatnonzero(mask))


def _folder(root: Path, split: str, seed: int):
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise ValueError(f"{root}: expected one sub-folder per class")
    paths, labels = [], []
    for i, c in enumerate(classes):
        for f in sorted((root / c).rglob("*")):
            if f.suffix.lower() in AUDIO_EXT:
                paths.append(f)
                labels.append(i)
    full = ClipSet(paths, np.array(labels), classes)
    frac = float(split.split(":", 1)[1]) if split and split.startswith("random:") else 0.1
    tr, te = _random_split(full, frac, seed)
    return tr, te, f"folder {root} ({len(classes)} classes), random {frac:.0%} held out (seed {seed})"


_PATH_COLS = ("path", "filename", "file", "slice_file_name")
_LABEL_COLS = ("label", "category", "class", "target", "classid")
_FOLD_COLS = ("fold",)


def _manifest(csv_path: Path, split: str, seed: int):
    """Rows ``path,label[,fold]``; a header row naming its columns may reorder them.

    Recognised header names: path/filename/file, label/category/class/target, fold, so
    ESC-50's ``meta/esc50.csv`` (``filename,fold,target,category,...``, audio in
    ``../audio/``) and UrbanSound8K-style sheets work unchanged. Relative paths are
    looked up next to the CSV, then in ``../audio/`` and ``audio/``.
    """
    with open(csv_path, newline="") as fh:
        all_rows = [r for r in csv.reader(fh) if r and not r[0].startswith("#")]
    if not all_rows:
        raise ValueError(f"{csv_path}: no rows")
    ip, il, ifold = 0, 1, 2
    head = [c.strip().lower() for c in all_rows[0]]
    if any(c in _PATH_COLS for c in head):
        def col(names, default):
            for n in names:
                if n in head:
                    return head.index(n)
            return default
        ip = col(_PATH_COLS, 0)
        il = col(("label", "category", "class"), None)
        if il is None:
            il = col(("target", "classid"), 1)
        ifold = col(_FOLD_COLS, None)
        all_rows = all_rows[1:]
    rows = all_rows
    if not rows:
        raise ValueError(f"{csv_path}: no rows")
    base = csv_path.parent

    def resolve(p):
        p = Path(p)
        if p.is_absolute():
            return p
        for cand in (base / p, base.parent / "audio" / p, base / "audio" / p):
            if cand.exists():
                return cand
        return base / p

    labels_s = [r[il].strip() for r in rows]
    classes = sorted(set(labels_s), key=lambda s: (0, int(s), s) if s.isdigit() else (1, 0, s))
    index = {c: i for i, c in enumerate(classes)}
    paths = [resolve(r[ip].strip()) for r in rows]
    labels = np.array([index[c] for c in labels_s])
    folds = [r[ifold].strip() if ifold is not None and len(r) > ifold else "" for r in rows]
    full = ClipSet(paths, labels, classes, folds)
    if split and split.startswith("fold:"):
        k = split.split(":", 1)[1]
        mask = np.array([f == k for f in folds])
        if not mask.any():
            raise ValueError(f"{csv_path}: no rows in fold {k!r} (folds: {sorted(set(folds))})")
        return (full.subset(np.flatnonzero(~mask)), full.subset(np.flatnonzero(mask)),
                f"manifest {csv_path}, fold {k} held out")
    frac = float(split.split(":", 1)[1]) if split and split.startswith("random:") else 0.1
    tr, te = _random_split(full, frac, seed)
    return tr, te, f"manifest {csv_path}, random {frac:.0%} held out (seed {seed})"


def data_root(name: str) -> Path:
    """A shared dataset folder: ``$BITNET_DATA/NAME`` or ``../shared/data/NAME``."""
    base = os.environ.get("BITNET_DATA")
    p = Path(base) / name if base else REPO.parent / "shared" / "data" / name
    if not p.is_dir():
        raise FileNotFoundError(f"dataset {name!r} not found at {p}; set BITNET_DATA or pass a path")
    return p


SC_TEST_BUCKETS = 20  # buckets 0..19 of 100: the fixed speaker-disjoint test part
SC_FOLDS = 4


def speaker_of(path) -> str:
    """The speaker of a Speech Commands clip (``[WORD_]SPEAKER_nohash_N``), or
    ``"noise:<file>"`` for a ``_silence_`` segment."""
    p = Path(path)
    if p.parent.name == "_silence_" or "_nohash_" not in p.name:
        return f"noise:{p.stem}"
    return p.name.split("_nohash_")[0].split("_")[-1]


def speaker_bucket(speaker: str) -> int:
    """``sha1(speaker) mod 100``: stable across machines and Python versions."""
    return int(hashlib.sha1(speaker.encode()).hexdigest(), 16) % 100


def speaker_fold(speaker: str) -> int:
    """0 for the test part, else the cross-validation fold 1..4."""
    b = speaker_bucket(speaker)
    if b < SC_TEST_BUCKETS:
        return 0
    return 1 + (b - SC_TEST_BUCKETS) * SC_FOLDS // (100 - SC_TEST_BUCKETS)


def _speech_commands(root: Path, split: str):
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    paths, labels, groups = [], [], []
    for i, c in enumerate(classes):
        for f in sorted((root / c).iterdir()):
            if f.suffix.lower() in AUDIO_EXT:
                paths.append(f)
                labels.append(i)
                groups.append(speaker_of(f))
    full = ClipSet(paths, np.array(labels), classes, groups)
    fold = np.array([speaker_fold(g) for g in groups])
    split = split or "test"
    if split == "test":
        tr, te = fold > 0, fold == 0
        desc = (f"Speech Commands v0.02 test set ({root}), 12 classes, split by speaker hash: "
                "folds 1-4 train, the fixed test part (20% of speakers) test")
    elif split.startswith("fold:") and split[5:].isdigit() and 1 <= int(split[5:]) <= SC_FOLDS:
        k = int(split[5:])
        tr, te = (fold > 0) & (fold != k), fold == k
        desc = (f"Speech Commands v0.02 test set ({root}), 12 classes, split by speaker hash: "
                f"validation fold {k} of {SC_FOLDS} (test part unused)")
    else:
        raise ValueError(f"split {split!r}: for speech_commands use 'test' or 'fold:K' (K = 1..{SC_FOLDS})")
    train, test = full.subset(np.flatnonzero(tr)), full.subset(np.flatnonzero(te))
    assert not set(train.groups) & set(test.groups), "a speaker on both sides"
    return train, test, desc + "; Speech Commands (Warden 2018), CC BY 4.0"


def load_dataset(data: str = "fsdd", split: str = "official", seed: int = 0):
    """Return ``(train, test, description)`` ClipSets for a data source (see module doc)."""
    if data == "esc10":
        tr, te, desc = _manifest(data_root("esc10") / "esc10.csv", split, seed)
        return tr, te, "ESC-10 (Piczak 2015), CC BY 3.0: " + desc
    if data == "speech_commands":
        return _speech_commands(data_root("speech_commands_v2_test"), split)
    if data == "fsdd" or data.startswith("fsdd:"):
        root = data.split(":", 1)[1] if ":" in data else None
        return _fsdd(split, root)
    p = Path(data)
    if p.suffix.lower() == ".csv":
        return _manifest(p, split, seed)
    if p.is_dir():
        if any(_FSDD_RE.match(f.name) for f in p.glob("*.wav")) or (p / "recordings").is_dir():
            return _fsdd(split, p)
        if (p / "_silence_").is_dir() and (p / "_unknown_").is_dir():
            return _speech_commands(p, split)
        return _folder(p, split, seed)
    raise ValueError(f"--data {data!r}: expected 'fsdd', 'esc10', 'speech_commands', a folder of "
                     "class folders or a .csv")


# ---------------------------------------------------------------------------------------
# Feature cache


def _frontend_key(feat: Featurizer) -> str:
    h = hashlib.sha1()
    h.update(json.dumps(feat.cfg.to_dict(), sort_keys=True).encode())
    h.update(feat.impl.encode())
    return h.hexdigest()[:16]


def _clip_key(path) -> str:
    st = os.stat(path)
    return hashlib.sha1(f"{Path(path).resolve()}|{st.st_size}|{int(st.st_mtime)}".encode()).hexdigest()[:20]


# Decoded waveforms, per process: a --folds run (and the BN pass after each fold) reads
# every clip once, not once per fold. Keyed by (path, size, mtime, sample rate).
_WAVES: dict = {}


def load_waves(feat: Featurizer, clips: ClipSet) -> list:
    """Mono float32 waveforms at the frontend's rate (memoised for this process)."""
    out = []
    for p in clips.paths:
        key = (_clip_key(p), int(feat.cfg.sample_rate))
        y = _WAVES.get(key)
        if y is None:
            y = _WAVES[key] = feat.load(p)
        out.append(y)
    return out


def clean_features(feat: Featurizer, clips: ClipSet, cache_dir=None, waves=None) -> np.ndarray:
    """Features of every clip, ``(N, n_mels, frames)`` float32, cached on disk.

    The cache holds one array per clip under ``<cache_dir>/<frontend hash>/``, keyed by
    the clip's path, size and modification time, so that every split and fold of a
    dataset (``--folds``) shares the log-mels computed once per frontend setting.
    """
    root = Path(cache_dir or REPO / "runs" / "cache") / _frontend_key(feat)
    root.mkdir(parents=True, exist_ok=True)
    keys = [_clip_key(p) for p in clips.paths]
    out = np.empty((len(keys), *feat.cfg_shape), np.float32) if keys else \
        np.zeros((0, *feat.cfg_shape), np.float32)
    for i, k in enumerate(keys):
        f = root / f"{k}.npy"
        if f.exists():
            out[i] = np.load(f)
            continue
        y = waves[i] if waves is not None else load_waves(feat, clips.subset([i]))[0]
        out[i] = feat(y)
        # written under a temporary name and renamed: processes training together (--ddp)
        # may fill the same cache entry at once, and a reader must never see half a file
        tmp = f.with_name(f"{k}.{os.getpid()}.tmp.npy")
        np.save(tmp, out[i])
        os.replace(tmp, f)
    return out


# ---------------------------------------------------------------------------------------
# Waveform augmentation (training only)


@dataclass
class WaveAug:
    """Augmentation applied around the frontend (the leave-one-speaker-out levers).

    Waveform domain, in this order: speed perturbation or pitch shift (resampling),
    synthetic-room reverberation, time shift / random crop into the window, gain, DC
    offset, additive noise. Feature domain (on the log-mel the engine would compute):
    tempo (stretch of the frame axis) and vocal-tract-length warping (stretch of the mel
    axis). Every factor is drawn uniformly in ``[1 - x, 1 + x]``; 0 turns a lever off.

    With ``ref="max"`` features a pure gain changes nothing; it matters together with
    noise (the noise level is drawn relative to a fixed reference, not to the clip).
    """

    shift: bool = True
    gain_db: float = 6.0  # uniform in [-gain_db, +gain_db]
    gain_range: tuple | None = None  # (low, high) dB instead, e.g. (-35, 6): quiet recordings
    noise_prob: float = 0.3
    snr_db: tuple = (20.0, 50.0)
    speed: float = 0.0  # resample: tempo and pitch change together (Ko et al. 2015)
    pitch: float = 0.0  # resample, then stretch the frames back: pitch and formants move, duration kept
    tempo: float = 0.0  # frame-axis stretch: duration moves, spectrum kept
    vtlp: float = 0.0  # mel-axis warp (vocal tract length perturbation, Jaitly & Hinton 2013)
    reverb_prob: float = 0.0
    rt60: tuple = (0.15, 0.7)  # seconds, synthetic exponentially decaying room responses
    dc: float = 0.0  # DC offset, uniform in +-dc x the clip's peak
    noise: str = "white"  # "white": in the window after gain; "mixed": white, pink or babble on the clip
    pool: list | None = field(default=None, repr=False)  # babble sources (training waveforms)

    def wave(self, y: np.ndarray, feat: Featurizer, rng: np.random.Generator):
        """The waveform part; returns ``(window, frame stretch still to apply)``."""
        stretch = 1.0
        if self.speed:
            y = resample_linear(y, rng.uniform(1 - self.speed, 1 + self.speed))
        if self.pitch:
            f = rng.uniform(1 - self.pitch, 1 + self.pitch)
            y, stretch = resample_linear(y, f), f
        if self.reverb_prob and rng.random() < self.reverb_prob:
            y = reverberate(y, int(feat.cfg.sample_rate), rng.uniform(*self.rt60), rng)
        if self.noise == "mixed" and self.noise_prob and rng.random() < self.noise_prob:
            kinds = ("white", "pink", "babble") if self.pool else ("white", "pink")
            y = add_noise(y, kinds[int(rng.integers(len(kinds)))], rng.uniform(*self.snr_db), rng, self.pool)
        if self.shift:
            y = feat.random_window(y, rng)
        lo, hi = self.gain_range if self.gain_range is not None else (-self.gain_db, self.gain_db)
        y = y * np.float32(10 ** (rng.uniform(lo, hi) / 20))
        if self.dc:
            y = y + np.float32(rng.uniform(-self.dc, self.dc) * (float(np.max(np.abs(y))) + 1e-9))
        if self.noise == "white" and self.noise_prob and rng.random() < self.noise_prob:
            p = float(np.mean(y.astype(np.float64) ** 2)) + 1e-12
            snr = rng.uniform(*self.snr_db)
            y = y + rng.standard_normal(len(y)).astype(np.float32) * np.float32(
                np.sqrt(p / 10 ** (snr / 10)))
        return y.astype(np.float32), stretch

    def __call__(self, y: np.ndarray, feat: Featurizer, rng: np.random.Generator):
        """Augmented model input ``(n_mels, frames)`` for one clip."""
        w, stretch = self.wave(y, feat, rng)
        x = feat(w)
        if self.tempo:
            stretch *= rng.uniform(1 - self.tempo, 1 + self.tempo)
        if stretch != 1.0:
            x = stretch_axis(x, stretch, axis=1)
        if self.vtlp:
            x = stretch_axis(x, rng.uniform(1 - self.vtlp, 1 + self.vtlp), axis=0, anchor="low")
        return x


def add_noise(y: np.ndarray, kind: str, snr_db: float, rng: np.random.Generator, pool=None) -> np.ndarray:
    """``y`` plus white, pink (1/f) or babble noise (4 other clips of ``pool`` summed) at
    ``snr_db`` below the clip's power, over the clip's length."""
    n = len(y)
    if kind == "white":
        z = rng.standard_normal(n)
    elif kind == "pink":
        m = max(n, 2)
        spec = np.fft.rfft(rng.standard_normal(m))
        f = np.fft.rfftfreq(m)
        f[0] = f[1]
        z = np.fft.irfft(spec / np.sqrt(f), m)[:n]
    elif kind == "babble":
        z = np.zeros(n)
        for i in rng.choice(len(pool), size=min(4, len(pool)), replace=False):
            s = np.asarray(pool[i], np.float64)
            s = s / np.sqrt(np.mean(s ** 2) + 1e-20)
            loop = np.tile(s, -(-(n + s.size) // max(s.size, 1)))
            start = int(rng.integers(0, max(s.size, 1)))
            z += loop[start:start + n]
    else:
        raise ValueError(f"noise kind must be white, pink or babble, got {kind!r}")
    z = z - z.mean()
    p_y = float(np.mean(np.asarray(y, np.float64) ** 2)) + 1e-20
    z *= np.sqrt(p_y / 10 ** (snr_db / 10) / (float(np.mean(z ** 2)) + 1e-20))
    return (y + z).astype(np.float32)


def resample_linear(y: np.ndarray, factor: float) -> np.ndarray:
    """Play ``y`` ``factor`` times faster (linear interpolation): length / factor."""
    n = max(1, int(round(len(y) / factor)))
    t = np.arange(n, dtype=np.float64) * factor
    return np.interp(t, np.arange(len(y)), y).astype(np.float32)


def reverberate(y: np.ndarray, sr: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with a synthetic room response: a direct path plus Gaussian noise under a
    60 dB-per-``rt60`` exponential decay (tail kept up to 0.3 s, peak level preserved)."""
    from scipy.signal import fftconvolve

    n = max(2, int(rt60 * sr))
    t = np.arange(n) / sr
    h = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60) * 0.3
    h[0] = 1.0
    out = fftconvolve(y.astype(np.float64), h)[:len(y) + int(0.3 * sr)]
    peak = float(np.max(np.abs(out))) + 1e-12
    return (out * (float(np.max(np.abs(y))) / peak)).astype(np.float32)


def stretch_axis(x: np.ndarray, factor: float, axis: int, anchor: str = "centre") -> np.ndarray:
    """Stretch a log-mel along one axis by ``factor`` (linear interpolation, same shape).

    ``anchor="centre"`` keeps the middle fixed (time); ``"low"`` keeps index 0 fixed
    (mel bands: a formant at band m moves to m x factor). Where the source falls outside,
    the frame axis gets the clip's floor value and the mel axis its last band.
    """
    n = x.shape[axis]
    c = (n - 1) / 2 if anchor == "centre" else 0.0
    src = c + (np.arange(n) - c) / factor
    xm = np.moveaxis(x, axis, 0)
    if anchor == "centre":
        floor = float(x.min())
        padded = np.concatenate([np.full((1,) + xm.shape[1:], floor, xm.dtype), xm,
                                 np.full((1,) + xm.shape[1:], floor, xm.dtype)])
        pos = np.clip(src + 1, 0, n + 1)
    else:
        padded, pos = xm, np.clip(src, 0, n - 1)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, len(padded) - 1)
    w = (pos - i0).astype(np.float32).reshape((-1,) + (1,) * (xm.ndim - 1))
    out = padded[i0] * (1 - w) + padded[i1] * w
    return np.moveaxis(out.astype(x.dtype), 0, axis)


def augmented_features(feat: Featurizer, waves: list, aug: WaveAug, rng) -> np.ndarray:
    """One epoch's worth of freshly augmented features, ``(N, n_mels, frames)``."""
    return np.stack([aug(y, feat, rng) for y in waves]).astype(np.float32)
