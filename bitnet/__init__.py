"""bitnet: bit-packed binarized neural networks for audio classification on CPUs.

The engine needs NumPy, Numba, SciPy and soundfile only, never a deep-learning
framework. Heavy modules (numba kernels, scipy) are imported lazily, on first use, so
``import bitnet`` stays cheap.

>>> import bitnet
>>> model = bitnet.load()                      # the bundled spoken-digit model
>>> model.predict("examples/7_jackson_0.wav").label   # doctest: +SKIP
'7'
"""

from __future__ import annotations

import importlib

from .errors import AudioError, BitnetError, DeviceError, ModelFileError, ParameterError

__version__ = "0.1.0"

# public name -> module that defines it; resolved on first attribute access
_LAZY = {
    "load_audio": ".audio",
    "log_mel": ".frontend",
    "LogMelStream": ".frontend",
    "mel_filterbank": ".frontend",
    "load": ".model",
    "infer": ".model",
    "Model": ".model",
    "Prediction": ".results",
    "Segment": ".results",
    "Gate": ".gate",
    "GateResult": ".gate",
    "NO_SPEECH": ".gate",
    "set_num_threads": ".parallel",
    "get_num_threads": ".parallel",
    "batch": ".batch",
    "Ensemble": ".ensemble",
    "save_ensemble": ".ensemble",
    "bundled_models": ".model",
}

__all__ = [
    "AudioError",
    "BitnetError",
    "DeviceError",
    "ModelFileError",
    "ParameterError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bitnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
