"""The first graph run of a process: the kernels are compiled or loaded then, once.

With the ahead-of-time module (:mod:`.aot`) the graph's preparation already built or
loaded it (saying so when it had to build). Without it (``BITNET_AOT=0``, no C
compiler) numba compiles the JIT kernels on the first run and caches them itself; a
marker file in the cache directory (:mod:`.cachedir`) says whether that already
happened for this very build, so that bitnet can say once on stderr that the first run
takes a while.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
from pathlib import Path

from .cachedir import cache_dir

__all__ = ["run_graph"]

_run_lock = threading.Lock()
_warm = False

_PKG = Path(__file__).resolve().parent.parent

#: modules of the package that define no kernels (editing them does not invalidate numba's cache)
_NO_KERNELS = frozenset(
    {"model.py", "cli.py", "summary.py", "modelfile.py", "__main__.py", "errors.py", "audio.py",
     "gate.py", "listen.py", "plot.py", "results.py", "resample.py"}
)


def _marker() -> Path:
    """A file whose existence says: the JIT kernels of this very build were compiled here.

    Keyed like numba's own cache: bitnet, numba and Python versions and the size and
    modification time of the package's source files that may hold kernels (numba
    recompiles when a kernel's source file changes).
    """
    from .. import __version__

    numba = sys.modules.get("numba")
    h = hashlib.sha256(f"{__version__}|{getattr(numba, '__version__', '')}|{sys.version}".encode())
    root = _PKG
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fn in sorted(filenames):
            if fn.endswith(".py") and not (dirpath == str(root) and fn in _NO_KERNELS):
                st = os.stat(os.path.join(dirpath, fn))
                h.update(f"{fn}:{st.st_size}:{st.st_mtime_ns};".encode())
    return cache_dir() / f"bitnet-warm-{h.hexdigest()[:20]}"


@contextlib.contextmanager
def _numba_without_scipy_blas():
    """Keep numba from importing scipy.linalg while it starts its compiler context.

    When numba first sets up its target context (on the first kernel call, cached or
    not) ``numba.np.arraymath`` imports ``scipy.linalg.cython_blas``, only to decide
    whether ``np.cov``/``np.corrcoef`` inside jitted code use BLAS. That import costs
    0.1-0.5 s and ~40 MB, a large share of bitnet's start-up. bitnet's kernels use no
    BLAS, so the module is hidden for that moment (numba then takes its loop fallback
    for those two functions); anything that imports it later gets the real module.
    """
    name = "scipy.linalg.cython_blas"
    if "numba.np.arraymath" in sys.modules or name in sys.modules:
        yield
        return
    sys.modules[name] = None  # makes "import scipy.linalg.cython_blas" fail fast
    try:
        yield
    finally:
        if sys.modules.get(name, 0) is None:
            del sys.modules[name]


def _jit_in_use() -> bool:
    """Whether this run compiles or loads numba JIT kernels: no ahead-of-time module
    (it was built or loaded when the graph was prepared)."""
    from . import registry

    return not registry.aot_active()


def run_graph(graph, x):
    """Run the graph; on the first run in a process, check the kernel cache and say if cold."""
    global _warm
    if _warm:
        return graph.run(x)
    with _run_lock:  # the first run compiles (or loads) the kernels: once, serially
        if _warm:
            return graph.run(x)
        try:
            marker = _marker() if _jit_in_use() else None
            cold = marker is not None and not marker.exists()
        except OSError:
            marker, cold = None, False
        if cold and not os.environ.get("BITNET_QUIET"):
            print("bitnet: compiling kernels for this machine (first run only, takes a while)...", file=sys.stderr, flush=True)
        with _numba_without_scipy_blas():
            out = graph.run(x)
        if cold and marker is not None:
            try:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
            except OSError:
                pass
        _warm = True
        return out
