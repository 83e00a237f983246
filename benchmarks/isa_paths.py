"""Which instruction-set path bitnet's kernels take, and how to force another one.

Every bitnet row of the benchmark JSON carries the ISA path its kernels ran on
(``extra_info["isa"]``, the description in ``extra_info["isa_info"]``), and the run's
``machine_info["isa"]`` describes the host's. :func:`describe_isa` is the one place
that finds it out: it asks the engine (``bitnet.kernels.isa.describe()``) and, where
the engine does not say (a build without that module), works it out here from the
target numba compiles for (``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES``, else the host
CPU as LLVM sees it), saying which of the two answered in ``"source"``.

Forced paths (:data:`FORCED`): the same benchmarks re-run in a subprocess whose JIT
targets another CPU: ``NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=`` (AVX2, no AVX-512,
no VPOPCNTDQ) or ``x86-64`` (the baseline: SSE2 only), with ``BITNET_AOT=0`` (the
ahead-of-time module is built for the host CPU, so it must not be used) and a numba
cache directory of its own per path (:func:`forced_env`).
"""

from __future__ import annotations

import json
import os
import platform
from functools import lru_cache
from pathlib import Path

#: forced path -> the numba target that selects it (LLVM CPU names; an empty feature
#: string means "that CPU's default features")
FORCED = {
    "avx2": {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": ""},
    "generic": {"NUMBA_CPU_NAME": "x86-64", "NUMBA_CPU_FEATURES": ""},
}

# LLVM x86 CPU names by the path their default features give (fallback only: the
# engine's own bitnet.kernels.isa decides when it exists)
_AVX512_VPOPCNTDQ = {"icelake-client", "icelake-server", "tigerlake", "rocketlake", "sapphirerapids",
                     "emeraldrapids", "graniterapids", "graniterapids-d", "diamondrapids", "znver4", "znver5"}
_AVX2 = {"haswell", "broadwell", "skylake", "skylake-avx512", "cascadelake", "cooperlake", "cannonlake",
         "alderlake", "raptorlake", "meteorlake", "arrowlake", "lunarlake", "znver1", "znver2", "znver3",
         "x86-64-v3", "x86-64-v4", "core-avx2"}


def is_x86_64() -> bool:
    """True on an x86-64 host (the only one where the forced x86 paths make sense)."""
    return platform.machine().lower() in ("x86_64", "amd64")


def _numba_target() -> tuple[str, str]:
    """(CPU name, feature string) numba's JIT compiles for, as numba itself decides:
    ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` when set, else LLVM's host CPU."""
    name = os.environ.get("NUMBA_CPU_NAME")
    feats = os.environ.get("NUMBA_CPU_FEATURES")
    try:
        import llvmlite.binding as ll

        if not name:
            name = ll.get_host_cpu_name()
        if feats is None and not os.environ.get("NUMBA_CPU_NAME"):
            hf = ll.get_host_cpu_features()
            feats = ",".join(("+" if on else "-") + k for k, on in sorted(hf.items()))
    except Exception:  # llvmlite missing or too old: say what is known
        name = name or "unknown"
    return name, feats or ""


def _guess_path(name: str, features: str) -> str:
    """The path a target would take, guessed from its CPU name and features."""
    if not is_x86_64():
        return "neon" if platform.machine().lower() in ("aarch64", "arm64") else "generic"
    on = {f[1:] for f in features.split(",") if f.startswith("+")}
    if on:
        if {"avx512vpopcntdq", "avx512bw"} <= on:
            return "avx512"
        return "avx2" if "avx2" in on else "generic"
    if name in _AVX512_VPOPCNTDQ:
        return "avx512"
    return "avx2" if name in _AVX2 else "generic"


def _jsonable(obj):
    """A copy of ``obj`` that ``json.dumps`` accepts (tuples become lists, the rest str)."""
    return json.loads(json.dumps(obj, default=str))


@lru_cache(maxsize=None)
def describe_isa() -> dict:
    """The ISA path bitnet's kernels take in this process, and how that was found.

    Returns
    -------
    dict
        ``"path"``: ``"avx512"``, ``"avx2"``, ``"neon"``, ``"generic"`` (the engine's
        names); ``"source"``: ``"bitnet.kernels.isa.describe()"`` or ``"guessed by
        benchmarks/isa_paths.py"``; ``"numba_cpu_name"``, ``"numba_cpu_features"``
        (the environment, None when unset), ``"llvm_target"`` (the CPU name numba
        compiles for), ``"bitnet_aot"`` (``BITNET_AOT``); and, when the engine answered,
        everything its ``describe()`` returned (block shapes, popcount method, ...) under
        ``"engine"``.
    """
    name, feats = _numba_target()
    info = {
        "numba_cpu_name": os.environ.get("NUMBA_CPU_NAME"),
        "numba_cpu_features": os.environ.get("NUMBA_CPU_FEATURES"),
        "llvm_target": name,
        "bitnet_aot": os.environ.get("BITNET_AOT"),
        "machine": platform.machine(),
    }
    try:
        from bitnet.kernels import isa  # the engine's own answer, where it exists

        described = isa.describe()
    except Exception as exc:  # not there yet (ImportError), or it failed: say so, guess
        info.update(path=_guess_path(name, feats), source="guessed by benchmarks/isa_paths.py",
                    engine_error=f"{type(exc).__name__}: {exc}"[:200])
        return info
    if isinstance(described, dict):
        path = described.get("path") or described.get("name") or described.get("isa")
    else:
        path = str(described).split()[0] if str(described).strip() else None
    info.update(path=str(path or _guess_path(name, feats)), source="bitnet.kernels.isa.describe()",
                engine=_jsonable(described))
    return info


def isa_label() -> str:
    """Just the path name of :func:`describe_isa` (``"avx512"``, ``"avx2"``, ...)."""
    return describe_isa()["path"]


def forced_cache_dir(path: str) -> Path:
    """numba's cache directory for a forced path: its own, kept between runs (a cold
    compile of every kernel for another CPU takes a minute or more), under
    ``$BITNET_CACHE_DIR`` or ``~/.cache/bitnet``."""
    base = os.environ.get("BITNET_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "bitnet")
    return Path(base) / f"bench-numba-{path}-{FORCED[path]['NUMBA_CPU_NAME']}"


def forced_env(path: str, base: dict | None = None) -> dict:
    """The environment of a subprocess whose bitnet kernels take the forced ``path``."""
    if path not in FORCED:
        raise ValueError(f"unknown forced ISA path {path!r}; known: {sorted(FORCED)}")
    env = dict(os.environ if base is None else base)
    env.update(FORCED[path])
    env["BITNET_AOT"] = "0"
    env["NUMBA_CACHE_DIR"] = str(forced_cache_dir(path))
    env["BITNET_BENCH_FORCED_ISA"] = path
    return env


#: what ``test_isa_bench.test_forced_isa_rows`` collected from its subprocesses in this
#: session: ``{"summary": {...}, "benchmarks": [pytest-benchmark rows]}``, merged into
#: the run's JSON by ``conftest.pytest_benchmark_update_json``
CHILD_RUNS: list[dict] = []
