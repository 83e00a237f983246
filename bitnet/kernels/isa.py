"""Instruction-set paths of the kernels: one table, chosen once per compiled target.

The block intrinsics of :mod:`._common` are emitted differently for each path, and a
layer's weights are re-tiled for the block widths of the path its kernels were
compiled for. The paths, like XNNPACK's or OpenBLAS's per-CPU micro-kernel tables:

========== =========================================================================
path       popcount of ``x XOR w`` for ``L`` output channels
========== =========================================================================
avx512     ``vpopcntq`` on zmm registers, one 64-bit count per word (AVX-512
           VPOPCNTDQ); L = 16, 32 or 64 (a 64-channel block is 8 zmm registers)
avx2       nibble table lookups (``vpshufb``) into byte counters, widened to 64 bits
           with ``vpsadbw`` once per group of words, not per word; L = 16 or 32
           (32 channels of byte counters are 8 of the 16 ymm registers)
neon       ``cnt.16b`` into byte counters, widened with pairwise adds (``uaddlp``)
           once per group; L = 16 (8 of the 32 q registers; L = 32 spilled, see
           ``benchmarks/isa_estimate.py``)
generic    the same byte counters with LLVM's own byte popcount and a portable
           widening (shifts and masks): correct on any 64-bit CPU; L = 16
========== =========================================================================

Every path computes exactly the same integers (popcounts are exact; the first layer's
float32 sums are exact integers, see :mod:`.qconv`), so outputs are bit-identical
across paths; the tests force each x86 path with ``NUMBA_CPU_NAME``.

Which path: from the target CPU of the compiled code. For numba's JIT that is the host
CPU, or ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` when set; for the ahead-of-time
module (:mod:`bitnet.compile.aot`) the CPU it was built for. :func:`classify` maps a CPU name
and feature string to a path; :func:`active` asks the kernels actually in use (the
``isa_code`` kernel returns the path it was compiled for), so layer preparation and
kernels can never disagree.

This module imports neither numba nor llvmlite at import time.
"""

from __future__ import annotations

import os
import platform

from .layout import GROUPS

#: path -> kernel shapes (see the module docstring). ``lanes``: block widths (output
#: channels per block) of binary layers, smallest first; ``qlanes``: block widths of
#: the first layer (float32 lanes); ``groups``: words per group (a group's byte
#: counters must not overflow: 8 per word, so at most 31 words); ``fma``: the target
#: has fused multiply-add (else multiply then add, the same exact integers);
#: ``registers``: vector registers and their width in bits, for the record.
PATHS = {
    "avx512": dict(code=1, lanes=(16, 32, 64), qlanes=(16, 32, 64), fma=True,
                   popcount="vpopcntq (64-bit counts per word)", registers="32 x zmm (512-bit)"),
    "avx2": dict(code=2, lanes=(16, 32), qlanes=(16, 32), fma=True,
                 popcount="vpshufb nibble table -> byte counters, vpsadbw once per group",
                 registers="16 x ymm (256-bit)"),
    "neon": dict(code=3, lanes=(16,), qlanes=(16, 32), fma=True,
                 popcount="cnt.16b -> byte counters, uaddlp once per group",
                 registers="32 x q (128-bit)"),
    "generic": dict(code=4, lanes=(16,), qlanes=(16,), fma=False,
                    popcount="LLVM byte popcount -> byte counters, shift/mask widening",
                    registers="16 x xmm (128-bit) or the target's"),
}
for _p in PATHS.values():
    _p["groups"] = GROUPS       # words per group of the binary layers, on every path
    # binary weights stored as low/high nibble planes (see layout.nibble_planes)
    _p["nibbles"] = _p is PATHS["avx2"]
BY_CODE = {v["code"]: k for k, v in PATHS.items()}

# x86 CPU names (LLVM's) by what their default features give, for a target named
# without a feature list (``NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=``, or the
# ahead-of-time build, which passes only a CPU name)
_X86_VPOPCNTDQ = {
    "icelake-client", "icelake-server", "tigerlake", "rocketlake", "sapphirerapids",
    "emeraldrapids", "graniterapids", "graniterapids-d", "diamondrapids", "znver4", "znver5",
    "knm", "x86-64-v4-vpopcntdq",
}
_X86_AVX2 = {
    "haswell", "broadwell", "skylake", "skylake-avx512", "cascadelake", "cooperlake",
    "cannonlake", "alderlake", "raptorlake", "meteorlake", "arrowlake", "arrowlake-s",
    "lunarlake", "pantherlake", "gracemont", "sierraforest", "grandridge", "clearwaterforest",
    "znver1", "znver2", "znver3", "bdver4", "x86-64-v3", "x86-64-v4", "core-avx2", "knl",
}


def _features(features: str) -> set:
    """``"+avx2,-avx512f,..."`` -> the set of enabled feature names."""
    out = set()
    for f in (features or "").split(","):
        f = f.strip()
        if f.startswith("+"):
            out.add(f[1:])
        elif f and not f.startswith("-"):
            out.add(f)
    return out


def classify(arch: str, cpu_name: str, features: str = "") -> str:
    """The kernel path for a target.

    Parameters
    ----------
    arch : str
        Machine or triple (``x86_64``, ``aarch64``, ``x86_64-unknown-linux-gnu`` ...).
    cpu_name : str
        LLVM's CPU name (``znver4``, ``haswell``, ``cortex-a72``, ``generic`` ...).
    features : str
        LLVM feature string (``+avx2,+fma,...``); empty means "the CPU's defaults".

    Returns
    -------
    str : one of :data:`PATHS`
    """
    arch = (arch or "").lower()
    name = (cpu_name or "").lower()
    if arch.startswith(("aarch64", "arm64")):
        return "neon"
    if not arch.startswith(("x86_64", "amd64", "x86-64")):
        return "generic"
    feats = _features(features)
    if feats:
        if {"avx512vpopcntdq", "avx512bw"} <= feats:
            return "avx512"
        if {"avx2", "ssse3"} <= feats:
            return "avx2"
        return "generic"
    if name in _X86_VPOPCNTDQ:
        return "avx512"
    if name in _X86_AVX2:
        return "avx2"
    return "generic"


def codegen_target(context) -> tuple[str, str, str]:
    """``(arch, cpu_name, features)`` of the code a numba target context is compiling
    (called from the intrinsics' code generators: llvmlite is loaded then)."""
    import llvmlite.binding as ll
    from numba.core.codegen import AOTCPUCodegen

    cg = context.codegen()
    arch = ll.get_process_triple()
    if isinstance(cg, AOTCPUCodegen):
        # pycc: the CPU it was given ("host" -> LLVM's host name), no extra features
        name = cg._cpu_name or "generic"
        if name == "host":
            name = ll.get_host_cpu_name()
        return arch, name, ""
    return arch, cg._get_host_cpu_name(), cg._tm_features or ""


#: set only by static-analysis tooling (``benchmarks/isa_estimate.py``), which emits
#: another path's code in its own process to compile it for another CPU with LLVM
_forced_path = None


def codegen_path(context) -> str:
    """The path the intrinsics emit for this compilation target."""
    if _forced_path is not None:
        return _forced_path
    return classify(*codegen_target(context))


_active = {}


def active() -> str:
    """The path of the kernels in use (ahead-of-time module or JIT), asked of the
    compiled ``isa_code`` kernel itself. Layer preparation reads this."""
    from ..compile import registry as _registry

    key = _registry.aot_enabled()
    path = _active.get(key)
    if path is None:
        code = int(_registry.get("isa_code")(0))
        path = _active[key] = BY_CODE[code]
    return path


def lanes(path: str | None = None) -> tuple:
    """Block widths of binary layers on ``path`` (default: :func:`active`)."""
    return PATHS[path or active()]["lanes"]


def qlanes(path: str | None = None) -> tuple:
    """Block widths of the first layer on ``path`` (default: :func:`active`)."""
    return PATHS[path or active()]["qlanes"]


def describe() -> dict:
    """What the kernels in use were compiled for: path, block shapes, popcount method,
    CPU, and whether they come from the ahead-of-time module."""
    from ..compile import registry as _registry

    path = active()
    info = dict(PATHS[path])
    info.pop("code")
    info["path"] = path
    info["aot"] = _registry.aot_active()
    info["machine"] = platform.machine()
    if os.environ.get("NUMBA_CPU_NAME"):
        info["cpu_name"] = os.environ["NUMBA_CPU_NAME"]
        info["cpu_features"] = os.environ.get("NUMBA_CPU_FEATURES", "")
    return info


def _reset() -> None:
    _active.clear()
