"""``import bitnet`` stays light: no torch ever, no scipy.signal until resampling."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_import_bitnet_is_light():
    out = run(
        """
        import sys
        import bitnet
        print("torch" in sys.modules, "scipy.signal" in sys.modules, "librosa" in sys.modules)
        """
    )
    assert out.split() == ["False", "False", "False"]


def test_log_mel_and_load_audio_never_import_torch(tmp_path):
    wav = tmp_path / "tone.wav"
    out = run(
        f"""
        import sys
        import numpy as np
        import soundfile as sf
        import bitnet
        y = (0.1 * np.sin(np.arange(8000) / 3.0)).astype(np.float32)
        sf.write({str(wav)!r}, y, 8000)
        z, sr = bitnet.load_audio({str(wav)!r})
        feats = bitnet.log_mel(z, sr=sr, n_fft=256, hop_length=80, n_mels=40)
        assert feats.shape == (40, 101), feats.shape
        print("torch" in sys.modules, "scipy.signal" in sys.modules, "librosa" in sys.modules)
        bitnet.load_audio({str(wav)!r}, sr=16000)  # resampling pulls in scipy.signal, lazily
        print("torch" in sys.modules, "scipy.signal" in sys.modules)
        """
    )
    first, second = out.splitlines()
    assert first.split() == ["False", "False", "False"]
    assert second.split() == ["False", "True"]


def test_frontend_and_features_import_no_scipy():
    out = run(
        """
        import sys
        import bitnet.frontend, bitnet.features, bitnet.audio
        print(sorted(m for m in ("torch", "scipy", "scipy.signal", "librosa", "numba") if m in sys.modules))
        """
    )
    assert out.strip() == "[]"
