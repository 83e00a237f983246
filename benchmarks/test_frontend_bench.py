"""Frontend benchmarks: bitnet.log_mel beside librosa, same input, same run.

DESIGN §5 goal: <= 0.2 ms for 1 s of 16 kHz audio (n_fft 400, hop 160, 40 mels), one
thread. Both runtimes are held to one BLAS/OpenMP thread with threadpoolctl where it is
installed (librosa's one matrix product would otherwise spread over the cores; bitnet's
products are small enough that OpenBLAS keeps them on one thread anyway). Nothing here
asserts a time.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from bitnet import log_mel

CASES = {
    # workload name: (sample rate, n_fft, hop, n_mels)
    "1s@16k": (16000, 400, 160, 40),
    "1s@8k-fsdd": (8000, 256, 80, 40),
}


@contextlib.contextmanager
def one_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # not installed: record that BLAS threads were not limited
        yield False
        return
    with threadpool_limits(limits=1):
        yield True


def noise(rng, sr):
    return (0.1 * rng.standard_normal(sr)).astype(np.float32)


@pytest.mark.parametrize("workload", list(CASES))
def test_bitnet_log_mel(bench, rng, workload):
    sr, n_fft, hop, n_mels = CASES[workload]
    y = noise(rng, sr)
    with one_thread() as limited:
        out = bench(
            lambda: log_mel(y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels),
            group="frontend", runtime="bitnet", workload=workload, batch=1, threads=1,
            blas_threads_limited=limited, seconds_of_audio=1.0,
        )
    assert out.shape == (n_mels, 1 + sr // hop)


@pytest.mark.parametrize("workload", list(CASES))
def test_librosa_log_mel(bench, rng, workload):
    librosa = pytest.importorskip("librosa")
    sr, n_fft, hop, n_mels = CASES[workload]
    y = noise(rng, sr)

    def run():
        S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels)
        return librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=80.0)

    with one_thread() as limited:
        out = bench(
            run, group="frontend", runtime="librosa", workload=workload, batch=1, threads=1,
            blas_threads_limited=limited, seconds_of_audio=1.0,
        )
    assert out.shape == (n_mels, 1 + sr // hop)
