"""Ahead-of-time compiled kernels: build once per machine, load without numba.

``import numba`` alone costs ~90 MB and ~0.3 s (it loads LLVM), and starting numba and
loading its cached kernels another ~55 MB. So the serial kernels of
:func:`bitnet.compile.table.kernels` are also compiled ahead of time with
``numba.pycc`` into one CPython extension module, for this very CPU
(``target_cpu="host"``: AVX-512 ``vpopcntq`` and the explicit zmm intrinsics), with
the JIT's options (``error_model="numpy"``, GIL released). Importing that module
imports neither numba nor llvmlite: a process that loads a model and classifies with
one thread then stays at ~40 MB.

Where: :func:`bitnet.compile.cachedir.cache_dir` (``$BITNET_CACHE_DIR``, else
``$XDG_CACHE_HOME/bitnet`` or ``~/.cache/bitnet``; never the package directory). The file is
``bitnet_aot_<key>.<ext-suffix>``, ``key`` a hash of things that are cheap to read at
start-up: the kernel sources, the bitnet, numba, llvmlite, NumPy and Python versions,
and the CPU (``/proc/cpuinfo`` model name and flags, or ``platform.processor()``).
Beside it, ``bitnet_aot_<key>.json`` records the build (LLVM's host CPU name and
features, versions, time) or its failure.

When: the first process that needs a kernel and finds no module for its key says so on
stderr and builds it (in a subprocess, so that numba stays out of the caller's
memory; a lock file keeps concurrent first runs from building twice; the module is
written to a temporary directory and renamed into place). ``bitnet compile`` (or
``python -m bitnet compile``) builds ahead, e.g. in a Dockerfile. A failed build
(no C compiler, unsupported platform) prints one warning and is remembered: later runs
use the JIT kernels for that key without retrying (``bitnet compile`` retries).
``BITNET_AOT=0`` turns the whole thing off (JIT only, numba's own on-disk cache).

More than one thread (:func:`bitnet.set_num_threads`) runs the same compiled kernels
on parts of the rows from Python threads (:mod:`bitnet._threads`): no numba either.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from pathlib import Path

from .cachedir import cache_dir, writable
from .options import aot_enabled

# subprocess, shutil, tempfile, time: imported where needed (a warm start-up needs none)

_PKG = Path(__file__).resolve().parent.parent
#: the files whose contents key the module: every kernel, the op definitions (they
#: hold the signatures) and the compile machinery
_SOURCES = ("compile", "kernels", "ops")
_PREFIX = "bitnet_aot_"

_loaded: dict = {}          # cache dir -> module or None, per process
_warned: set = set()


def _say(msg: str) -> None:
    if not os.environ.get("BITNET_QUIET"):
        print(f"bitnet: {msg}", file=sys.stderr, flush=True)


def _version_stamp(pkg: str) -> str:
    """A cheap stand-in for ``importlib.metadata.version`` (~20 ms): the contents of the
    package's ``_version.py`` or the size and time of its ``__init__.py``, found
    without importing it."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(pkg)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        return "-"
    root = Path(spec.origin).parent
    for name in ("_version.py", "version.py"):
        try:
            return hashlib.sha256((root / name).read_bytes()).hexdigest()[:16]
        except OSError:
            pass
    st = os.stat(spec.origin)
    return f"{spec.origin}:{st.st_size}:{st.st_mtime_ns}"


def _cpu_stamp() -> str:
    """Model name and ISA flags of this CPU, without llvmlite."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            keep = {}
            for line in f:
                if not line.strip():
                    break       # the first processor is enough
                k, _, v = line.partition(":")
                k = k.strip()
                if k in ("model name", "flags", "Features", "CPU part", "vendor_id", "cpu family", "model"):
                    keep[k] = v.strip()
            if keep:
                return json.dumps(keep, sort_keys=True)
    except OSError:
        pass
    return f"{platform.machine()}|{platform.processor()}|{platform.platform()}"


def cache_key() -> str:
    """Hash of everything the compiled module depends on (cheap: a few KB of reads)."""
    from .. import __version__

    h = hashlib.sha256()
    files = []
    for entry in _SOURCES:
        p = _PKG / entry
        files.extend(sorted(p.glob("*.py")) if p.is_dir() else [p])
    for f in files:
        h.update(f"{f.relative_to(_PKG)}\0".encode())
        h.update(f.read_bytes())
    h.update(f"|{__version__}|{sys.version}|{sys.platform}|{platform.machine()}".encode())
    for pkg in ("numba", "llvmlite", "numpy"):
        h.update(f"|{pkg}={_version_stamp(pkg)}".encode())
    h.update(_cpu_stamp().encode())
    return h.hexdigest()[:20]


def _ext_suffix() -> str:
    import importlib.machinery

    return importlib.machinery.EXTENSION_SUFFIXES[0]


def paths(directory: Path | None = None, key: str | None = None):
    """``(module name, extension path, JSON path, lock path)`` for this machine."""
    d = cache_dir() if directory is None else Path(directory)
    name = _PREFIX + (cache_key() if key is None else key)
    return name, d / (name + _ext_suffix()), d / (name + ".json"), d / (name + ".lock")


def _read_json(p: Path):
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def _write_json(p: Path, data) -> None:
    tmp = p.with_name(p.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, p)


def _import(name: str, so: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, so)
    if spec is None:
        raise ImportError(f"not an extension module: {so}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------- loading


def load(build: bool = True):
    """The compiled module for this machine, building it first if needed and allowed;
    ``None`` when unavailable (disabled, a remembered failed build, a broken module
    that could not be rebuilt): the callers then use the JIT kernels."""

    if not aot_enabled():
        return None
    d = cache_dir()
    if d in _loaded:
        return _loaded[d]
    mod = None
    try:
        mod = _load(d, build)
    except Exception as e:      # never let the cache break inference: JIT instead
        _warn_once(d, f"compiled kernels unavailable ({type(e).__name__}: {_one_line(e)}); using the JIT kernels")
    if mod is not None or build:    # a final answer for this process
        _loaded[d] = mod
    return mod


def _one_line(e) -> str:
    return " ".join(str(e).split())[:300]


def _warn_once(d, msg):
    if d not in _warned:
        _warned.add(d)
        _say(msg)


def _load(d: Path, build: bool):
    name, so, js, _ = paths(d)
    info = _read_json(js)
    if info is not None and info.get("status") == "failed":
        return None             # remembered: do not retry every run (bitnet compile does)
    if so.exists():
        try:
            return _import(name, so)
        except ImportError as e:
            _say(f"cached compiled kernels {so} could not be loaded ({_one_line(e)}); rebuilding")
            try:
                so.unlink()
            except OSError:
                pass
    if not build:
        return None
    if not writable(d):
        _warn_once(d, f"cannot write the compiled kernels to {d} (set BITNET_CACHE_DIR); using the JIT kernels")
        return None
    ok = _build_subprocess(d)
    if not ok:
        return None
    try:
        return _import(name, so)
    except ImportError as e:
        _say(f"the freshly compiled kernels could not be loaded ({_one_line(e)}); using the JIT kernels")
        _record_failure(js, f"load: {_one_line(e)}")
        return None


def _estimate(d: Path) -> str:
    """How long the last build on this machine took, for the first-run notice."""
    secs = []
    for p in d.glob(_PREFIX + "*.json"):
        s = (_read_json(p) or {}).get("build_seconds")
        if isinstance(s, (int, float)):
            secs.append(s)
    return f"~{max(secs):.0f} s" if secs else "~20 s"


def _build_subprocess(d: Path) -> bool:
    """Build for :func:`load`, saying so; True on success (else warn, remembered)."""
    _say(f"compiling kernels for this machine (first run only, {_estimate(d)})...")
    try:
        build(d)
        return True
    except RuntimeError as e:
        _say(f"could not compile the kernels ahead of time ({str(e)[:200]}); "
             "using the JIT kernels (run 'bitnet compile' to retry)")
        return False


def build(directory: Path | None = None, force: bool = False) -> Path:
    """Compile the module for this machine into ``directory`` (default
    :func:`cache_dir`) and return its path; a no-op if a good one is there (unless
    ``force``; a remembered failure is retried). The compilation runs in a child
    process: numba stays out of this one, and a fresh numba cache there keeps pycc
    from linking cached object code. Raises RuntimeError on failure (remembered in the
    JSON file, so that :func:`load` does not retry every run)."""
    import subprocess

    d = cache_dir() if directory is None else Path(directory)
    name, so, js, _ = paths(d)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from bitnet.compile.aot import _child; "
            "raise SystemExit(_child(sys.argv[2], sys.argv[3] == '1'))")
    env = dict(os.environ)
    env.pop("BITNET_AOT", None)
    try:
        r = subprocess.run([sys.executable, "-c", code, str(_PKG.parent), str(d), "1" if force else "0"],
                           env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, errors="replace")
        out, rc = r.stdout, r.returncode
    except OSError as e:
        out, rc = str(e), -1
    info = _read_json(js) or {}
    if rc == 0 and so.exists() and info.get("status") == "ok":
        return so
    if info.get("status") != "failed":
        tail = " | ".join(out.strip().splitlines()[-3:])
        _record_failure(js, f"build process exited with {rc}: {tail}")
        info = _read_json(js) or {}
    raise RuntimeError(info.get("error") or f"build process exited with {rc}")


def _record_failure(js: Path, error: str) -> None:
    import time

    try:
        js.parent.mkdir(parents=True, exist_ok=True)
        _write_json(js, {"status": "failed", "error": error, "time": time.time()})
    except OSError:
        pass


def _child(directory: str, force: bool = False) -> int:
    """Entry point of the build subprocess."""
    try:
        _build_here(Path(directory), force)
    except Exception as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- building


class _Lock:
    """An exclusive lock on a file (``flock``; no lock where fcntl is missing)."""

    def __init__(self, path: Path):
        self.path = path
        self.f = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:
            return self
        self.f = open(self.path, "a+")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.f is not None:
            import fcntl

            fcntl.flock(self.f, fcntl.LOCK_UN)
            self.f.close()


def _build_here(d: Path, force: bool = False, verbose: bool = False) -> Path:
    """The build itself, in this process (the child of :func:`build`): under the lock,
    into a temporary directory, renamed into place; failures recorded."""
    import shutil
    import tempfile
    import time

    d.mkdir(parents=True, exist_ok=True)
    name, so, js, lock = paths(d)
    with _Lock(lock):
        info = _read_json(js)
        if not force and so.exists() and info is not None and info.get("status") == "ok":
            return so           # built meanwhile by another process
        t0 = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=d))
        try:
            _compile(name, tmp, verbose)
            built = tmp / (name + _ext_suffix())
            if not built.exists():
                raise RuntimeError(f"pycc wrote no {built.name}")
            os.replace(built, so)
        except Exception as e:
            _record_failure(js, f"{type(e).__name__}: {_one_line(e)}")
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _write_json(js, dict(_build_facts(), status="ok", file=so.name,
                             build_seconds=round(time.perf_counter() - t0, 1), time=time.time()))
    _prune(d, keep=name)
    return so


#: modules kept per cache directory (older keys: other versions, edited sources)
KEEP = 8


def _prune(d: Path, keep: str) -> None:
    """Remove all but the :data:`KEEP` most recently built modules of ``d``."""
    try:
        entries = sorted(d.glob(_PREFIX + "*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for js in entries[KEEP:]:
            name = js.name[:-len(".json")]
            if name == keep:
                continue
            for p in (js, js.with_name(name + _ext_suffix()), js.with_name(name + ".lock")):
                try:
                    p.unlink()
                except OSError:
                    pass
    except OSError:
        pass


def _build_facts() -> dict:
    import importlib.metadata as md

    import llvmlite.binding as llb

    from .. import __version__

    from ..kernels import isa

    feats = llb.get_host_cpu_features()
    return {"bitnet": __version__, "python": sys.version, "numpy": md.version("numpy"),
            "numba": md.version("numba"), "llvmlite": md.version("llvmlite"),
            "cpu_name": llb.get_host_cpu_name(),
            # the kernel path pycc's target (the host CPU by name) gets, see kernels.isa
            "isa_path": isa.classify(llb.get_process_triple(), llb.get_host_cpu_name(), ""),
            "cpu_features": sorted(k for k, v in feats.items() if v) if hasattr(feats, "items") else str(feats)}


def _compile(name: str, out_dir: Path, verbose: bool) -> None:
    # numba's on-disk cache would hand pycc object code it cannot link: start empty
    os.environ["NUMBA_CACHE_DIR"] = str(out_dir / "numba-cache")
    import importlib
    import warnings

    from numba.core import compiler as _ncompiler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # pycc is deprecated (still in numba 0.68)
        from numba.pycc import CC, compiler as pycc_compiler

    from .options import JIT_OPTIONS
    from .table import kernels

    class _Flags(_ncompiler.Flags):
        """pycc's flags with the JIT's options: numpy error model, GIL released."""

        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.error_model = JIT_OPTIONS.get("error_model", "python")
            self.release_gil = bool(JIT_OPTIONS.get("nogil", False))

    cc = CC(name)
    cc.output_dir = str(out_dir)
    cc.target_cpu = "host"
    cc.verbose = verbose
    for kname, (modname, attr, sig) in kernels().items():
        disp = getattr(importlib.import_module(modname), attr)
        cc.export(kname, sig)(disp.py_func)
    saved = pycc_compiler.Flags
    pycc_compiler.Flags = _Flags
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cc.compile()
    finally:
        pycc_compiler.Flags = saved


def status() -> dict:
    """Where the compiled module is and what state it is in (for ``bitnet compile``)."""

    name, so, js, _ = paths()
    info = _read_json(js) or {}
    return {"enabled": aot_enabled(), "path": str(so), "exists": so.exists(),
            "status": info.get("status", "missing"), "error": info.get("error"),
            "cpu_name": info.get("cpu_name"), "isa_path": info.get("isa_path"),
            "build_seconds": info.get("build_seconds"),
            "size_bytes": so.stat().st_size if so.exists() else None}
