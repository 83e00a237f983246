"""Test conditions made from FSDD clips: noise at an SNR, babble, level, clipping, placement.

Every function takes a seeded ``numpy.random.Generator`` where it draws anything, so a
condition is the same numbers on every run. Signals are mono float32 at 8 kHz (FSDD's
rate) unless said otherwise.

Definitions
-----------
SNR
    ``10·log10(P_speech / P_noise)`` with both powers the mean square over the clip's
    own length (FSDD clips are trimmed close to the word, so this is close to the
    speech-active SNR).
Pink noise
    White Gaussian noise shaped to a 1/f power spectrum in the frequency domain.
Babble
    The sum of ``talkers`` (default 4) clips of *other* speakers' training takes
    (takes 5-49), each looped to the clip's length with a random start, so the test
    speaker's voice and the test takes never appear in the noise.
Level
    A gain in dB applied to the clean clip (−30 dB: a quiet talker far from the mic).
Clipping
    The clip amplified so its peak is 4× full scale (+12 dB) and hard-clipped at ±1.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
SR = 8000
_FSDD_RE = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


@dataclass(frozen=True)
class Clip:
    path: Path
    digit: int
    speaker: str
    take: int


def fsdd_clips(root=None) -> list[Clip]:
    """Every FSDD clip, sorted by file name."""
    p = Path(root or os.environ.get("BITNET_FSDD") or (REPO.parent / "shared" / "data" / "fsdd"))
    if (p / "recordings").is_dir():
        p = p / "recordings"
    if not p.is_dir():
        raise SystemExit(f"FSDD not found at {p}; set BITNET_FSDD")
    out = []
    for f in sorted(p.iterdir()):
        m = _FSDD_RE.match(f.name)
        if m:
            out.append(Clip(f, int(m.group(1)), m.group(2), int(m.group(3))))
    return out


def official_test(clips):
    """The official test takes 0-4 (300 clips)."""
    return [c for c in clips if c.take <= 4]


def training_takes(clips):
    """Takes 5-49 (2,700 clips): the only clips used to fit anything (temperature, babble)."""
    return [c for c in clips if c.take >= 5]


def read(clip: Clip) -> np.ndarray:
    y, sr = sf.read(str(clip.path), dtype="float32", always_2d=True)
    if sr != SR:
        raise SystemExit(f"{clip.path}: expected {SR} Hz, got {sr}")
    return y.mean(axis=1).astype(np.float32)


def power(y) -> float:
    return float(np.mean(np.asarray(y, np.float64) ** 2))


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-power pink (1/f power) Gaussian noise, ``n`` samples."""
    m = max(n, 2)
    spec = np.fft.rfft(rng.standard_normal(m))
    f = np.fft.rfftfreq(m)
    f[0] = f[1]
    spec /= np.sqrt(f)
    x = np.fft.irfft(spec, m)[:n]
    x -= x.mean()
    return (x / np.sqrt(max(power(x), 1e-20))).astype(np.float32)


def babble(n: int, pool: list[np.ndarray], rng: np.random.Generator, talkers: int = 4) -> np.ndarray:
    """Unit-power babble: ``talkers`` clips from ``pool`` summed, each looped to ``n`` samples."""
    x = np.zeros(n, np.float64)
    for i in rng.choice(len(pool), size=talkers, replace=False):
        s = pool[i]
        s = s / np.sqrt(max(power(s), 1e-20))
        reps = -(-(n + s.size) // s.size)
        loop = np.tile(s, reps)
        start = int(rng.integers(0, s.size))
        x += loop[start : start + n]
    return (x / np.sqrt(max(power(x), 1e-20))).astype(np.float32)


def mix(y: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``y`` plus unit-power ``noise`` scaled to ``snr_db`` below ``y``'s power."""
    scale = np.sqrt(power(y) / 10 ** (snr_db / 10))
    return (y + scale * noise[: y.size]).astype(np.float32)


def gain(y: np.ndarray, db: float) -> np.ndarray:
    return (y * np.float32(10 ** (db / 20))).astype(np.float32)


def clip_hard(y: np.ndarray, over: float = 4.0) -> np.ndarray:
    """Amplify so the peak is ``over`` × full scale, then clip at ±1."""
    peak = float(np.abs(y).max()) or 1.0
    return np.clip(y * (over / peak), -1.0, 1.0).astype(np.float32)


def place(y: np.ndarray, seconds: float, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """``y`` at a uniformly random position in ``seconds`` of digital silence; returns (signal, offset)."""
    n = int(round(seconds * SR))
    out = np.zeros(max(n, y.size), np.float32)
    off = int(rng.integers(0, out.size - y.size + 1))
    out[off : off + y.size] = y
    return out, off


def resample(y: np.ndarray, sr_to: int, sr_from: int = SR) -> np.ndarray:
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(sr_to, sr_from)
    return resample_poly(y.astype(np.float64), sr_to // g, sr_from // g).astype(np.float32)


def babble_pool(clips, exclude_speaker: str | None = None, per_speaker: int = 60, seed: int = 0):
    """Training-take clips (takes 5-49) of speakers other than ``exclude_speaker``, read."""
    rng = np.random.default_rng(seed)
    by = {}
    for c in training_takes(clips):
        if c.speaker != exclude_speaker:
            by.setdefault(c.speaker, []).append(c)
    pool = []
    for spk in sorted(by):
        cs = by[spk]
        for i in rng.choice(len(cs), size=min(per_speaker, len(cs)), replace=False):
            pool.append(read(cs[i]))
    return pool
