"""Where bitnet keeps what it compiles: one resolver for every cache file.

``$BITNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/bitnet`` or ``~/.cache/bitnet``; a
temporary directory when none of those is writable. Never the package directory.
The ahead-of-time module (:mod:`.aot`) and the first-run marker of the JIT kernels
(:mod:`.notice`) both live there.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "writable"]


def writable(d: Path) -> bool:
    """True if ``d`` exists or can be made, and files can be written in it."""
    try:
        d.mkdir(parents=True, exist_ok=True)
        return os.access(d, os.W_OK | os.X_OK)
    except OSError:
        return False


def cache_dir() -> Path:
    """The cache directory (see the module docstring)."""
    env = os.environ.get("BITNET_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    d = Path(base) / "bitnet"
    if writable(d):
        return d
    import tempfile

    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"bitnet-cache-{uid}"
