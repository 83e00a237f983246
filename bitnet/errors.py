"""The one exception family of bitnet.

Every error the engine raises on purpose is a :class:`BitnetError`; callers can catch
that one class. Messages name the file or value at fault and, where there is one, the
fix, on a single line.
"""

from __future__ import annotations

__all__ = ["BitnetError", "AudioError", "ModelFileError", "ParameterError", "DeviceError"]


class BitnetError(Exception):
    """Base class of every error bitnet raises on purpose."""


class AudioError(BitnetError, ValueError):
    """Audio that cannot be read or used: missing, corrupt, empty, non-finite, bad rate."""


class ModelFileError(BitnetError, ValueError):
    """A model file that is missing, truncated, altered, of an unknown version or inconsistent."""


class ParameterError(BitnetError, ValueError):
    """A bad argument: wrong dtype, shape, range or an unsupported combination."""


class DeviceError(BitnetError, RuntimeError):
    """No usable audio device: the sounddevice package or PortAudio missing, no such input."""
