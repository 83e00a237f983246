"""Temporary stand-in for ``bitnet.features`` (librosa), used only until the engine's
frontend exists. Exported models never use it: the exporter requires bitnet's frontend,
and the feature cache key names the implementation, so the two never mix."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__version__ = "librosa-fallback"


@dataclass
class FrontendConfig:
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
    ref: str = "max"
    frames: int = 101

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**d)

    @property
    def window_samples(self):
        return (self.frames - 1) * self.hop_length if self.center else \
            (self.frames - 1) * self.hop_length + self.n_fft


def fit_length(y, n, offset=None):
    y = np.asarray(y, dtype=np.float32)
    if len(y) >= n:
        off = (len(y) - n) // 2 if offset is None else offset
        return y[off:off + n]
    out = np.zeros(n, np.float32)
    s = (n - len(y)) // 2 if offset is None else offset
    out[s:s + len(y)] = y
    return out


def clip_features(y, cfg):
    import librosa

    y = fit_length(y, cfg.window_samples)
    S = librosa.feature.melspectrogram(
        y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
        win_length=cfg.win_length, center=cfg.center, pad_mode=cfg.pad_mode,
        power=cfg.power, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax, htk=cfg.htk,
        norm=cfg.norm)
    ref = np.max if cfg.ref == "max" else 1.0
    return librosa.power_to_db(S, ref=ref, amin=cfg.amin, top_db=cfg.top_db).astype(np.float32)


def load_audio(path, sr=None):
    import soundfile as sf

    y, rate = sf.read(str(path), dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    if sr is not None and sr != rate:
        import librosa

        y = librosa.resample(y, orig_sr=rate, target_sr=sr)
        rate = sr
    return y.astype(np.float32), rate
