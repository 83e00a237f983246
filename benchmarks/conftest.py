"""Shared machinery of the benchmark suite: what every benchmark records, and how.

Benchmarks are not tests (STYLE #10): they time things, record the machine and the
versions, and compare bitnet with the float models *in the same run*. The default
``pytest`` run (``testpaths = ["tests"]``) never collects this folder; ``pytest
benchmarks`` does. CI runs ``pytest benchmarks -q --benchmark-disable``: every
benchmark then executes its function exactly once (no warm-up, no timing), so the
quick mode proves that each one still runs; nothing here asserts a time.

Convention every benchmark file follows (``benchmarks/report.py`` reads it)
------------------------------------------------------------------------------
Use the ``bench`` fixture below, or set the same fields by hand:

``benchmark.group``
    ``"frontend"``, ``"kernels"``, ``"models"`` or ``"startup"``.
``benchmark.extra_info``
    ``runtime``  : str, one of
        ``"bitnet"``       the engine under test,
        ``"torch-float"``  PyTorch float32 twin, eager, under ``torch.inference_mode()``,
        ``"torch-bnn"``    PyTorch running the binarized trainer model itself,
        ``"ort-float"``    ONNX Runtime float32 twin,
        ``"ort-int8"``     that ONNX model quantised statically to INT8 (QDQ, per channel),
        ``"librosa"``      (frontend group),
        ``"roofline"``     the binary xor+popcount+add roofline microbenchmark.
    ``workload`` : str, a DESIGN §4 name (``"L64"``, ``"L128"``, ``"L256"``,
        ``"LC-BNN"``, ``"KWS-BNN-M"``), ``"default"`` (the bundled model), or a
        frontend case (e.g. ``"1s@16k"``); the roofline uses ``"roofline"``.
    ``batch``    : int, samples per call.
    ``threads``  : int, the thread count the runtime was set to.
    ``macs``     : int, optional, multiply-accumulates per call (binary MACs for bitnet
        and for the roofline: one bit of xor+popcount). The report divides it by the
        median to get MAC/s, and a layer's MAC/s by the roofline's MAC/s *at the same
        thread count and ISA path in the same run* to get "% of roofline".
    ``isa``      : str, set by ``bench`` on ``bitnet`` and ``roofline`` rows: the kernel
        path (``"avx512"``, ``"avx2"``, ``"neon"``, ``"generic"``) from
        :func:`benchmarks.isa_paths.describe_isa`; ``isa_forced`` is True on rows that
        ran in a subprocess with the CPU target forced (``test_isa_bench.py``).

Rows with the same ``(group, workload, batch, threads)`` are paired; speed-up = peer
median / bitnet median. Anything else may go into ``extra_info`` as well.

Warm-up: ``bench`` calls the function up to ``warmup`` (3) times before timing (JIT
compilation, first ONNX Runtime run, allocator warm-up; calls after the first only
while the warm-up has taken < 0.5 s); in ``--benchmark-disable`` mode it skips the
warm-up, because the one call already proves the code runs.
"""

from __future__ import annotations

import os
import platform
import time
import zlib
from importlib import metadata

import numpy as np
import pytest

# OpenMP workers that spin while idle (libgomp's default, used by PyTorch and by numba's
# "omp" threading layer) steal cores from everything else when the machine is busier
# than its core count: on a shared 2-core box with a load average of 5, PyTorch's conv
# at 2 threads measured 54 ms with the default wait policy and 4.4 ms with PASSIVE.
# Idle workers therefore sleep in the whole suite (it has to be set before torch or
# numba start their thread pools, hence here, at collection). This favours the peers,
# if anyone; set OMP_WAIT_POLICY yourself to override it; the run records the value.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

GROUPS = ("frontend", "kernels", "models", "startup", "spread")
RUNTIMES = ("bitnet", "torch-float", "torch-bnn", "ort-float", "ort-int8", "librosa", "roofline")
#: runtimes whose speed depends on bitnet's kernel path: their rows record it
ISA_RUNTIMES = ("bitnet", "roofline")

_VERSIONED = ("numpy", "numba", "scipy", "torch", "onnxruntime", "onnx", "librosa",
              "soundfile", "safetensors", "pytest-benchmark", "bitnet-audio")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """The SIMD flags that matter to the kernels (AVX2, AVX-512 and VPOPCNTDQ)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(f for f in flags if f.startswith(("avx", "popcnt")))
    except OSError:
        pass
    return []


def versions() -> dict[str, str | None]:
    """Installed versions, read from package metadata (nothing is imported)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    if out.get("bitnet-audio") is None:  # running from a checkout, not installed
        try:
            import bitnet

            out["bitnet-audio"] = f"{bitnet.__version__} (source tree)"
        except ImportError:
            pass
    return out


def _git_head() -> str | None:
    """HEAD of the checkout the suite runs from (plus ``-dirty``), or None outside git."""
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", ":/bitnet", ":/benchmarks", ":/trainer"],
                               cwd=here, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + ("-dirty" if dirty else "")) or None


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Merge the forced-ISA subprocesses' rows into this run's JSON, and keep the JSON
    small enough to commit.

    - ``test_isa_bench.test_forced_isa_rows`` times a whole subprocess; its own row
      (``extra_info["placeholder"]``) is replaced by the rows the subprocess recorded
      (``benchmarks.isa_paths.CHILD_RUNS``), and ``machine_info["isa_children"]``
      says what each subprocess was (forced target, ISA description, wall time).
    - Each benchmark's list of raw round times (``stats.data``; the roofline alone has
      ~50 000) is dropped, every statistic kept; ``BITNET_BENCH_KEEP_DATA=1`` keeps them.
    """
    from benchmarks.isa_paths import CHILD_RUNS

    rows = [b for b in output_json.get("benchmarks", []) if not (b.get("extra_info") or {}).get("placeholder")]
    for run in CHILD_RUNS:
        rows.extend(run["benchmarks"])
    output_json["benchmarks"] = rows
    output_json.setdefault("machine_info", {})["isa_children"] = [run["summary"] for run in CHILD_RUNS]
    if os.environ.get("BITNET_BENCH_KEEP_DATA") == "1":
        return
    for b in rows:
        (b.get("stats") or {}).pop("data", None)


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record the CPU model, core count, versions and thread settings of every run."""
    machine_info["cpu_model"] = cpu_model()
    machine_info["cpu_flags"] = cpu_flags()
    machine_info["cpu_count"] = os.cpu_count()
    try:
        machine_info["cpu_affinity"] = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        machine_info["cpu_affinity"] = os.cpu_count()
    try:
        machine_info["loadavg_at_start"] = list(os.getloadavg())
    except OSError:
        machine_info["loadavg_at_start"] = None
    machine_info["versions"] = versions()
    machine_info["thread_env"] = {
        k: os.environ.get(k)
        for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                  "NUMBA_THREADING_LAYER", "BITNET_NUM_THREADS", "NUMBA_CACHE_DIR", "NUMBA_CPU_NAME",
                  "NUMBA_CPU_FEATURES", "BITNET_AOT", "BITNET_BENCH_FORCED_ISA")
    }
    machine_info["source_commit"] = os.environ.get("BITNET_BENCH_COMMIT") or _git_head()
    try:
        from benchmarks.isa_paths import describe_isa

        machine_info["isa"] = describe_isa()
    except Exception as exc:  # bitnet unimportable: the run still records everything else
        machine_info["isa"] = {"path": "unknown", "error": f"{type(exc).__name__}: {exc}"[:200]}
    machine_info["thread_settings"] = (
        "each benchmark sets its own thread count and records it in extra_info['threads']: "
        "torch.set_num_threads(n); onnxruntime SessionOptions intra_op_num_threads=n, "
        "inter_op_num_threads=1; bitnet.set_num_threads(n)"
    )


@pytest.fixture
def rng(request):
    """A NumPy generator seeded from the benchmark's node id (reproducible inputs)."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def bench(benchmark):
    """Time ``fn(*args)`` with the suite's conventions; returns ``fn``'s last result.

    >>> def test_x(bench):                                      # doctest: +SKIP
    ...     bench(model.run, x, group="models", runtime="bitnet",
    ...           workload="KWS-BNN-M", batch=1, threads=1, macs=590_000_000)

    Parameters
    ----------
    fn : callable
        What to time, called as ``fn(*args)``.
    group, runtime, workload : str
        See the module docstring.
    batch, threads : int
        Samples per call and the runtime's thread count (set it before calling).
    macs : int, optional
        Multiply-accumulates per call.
    warmup : int
        Untimed calls before timing, at most: one always, more only while the warm-up
        has taken < 0.5 s (skipped under ``--benchmark-disable``).
    **extra
        More ``extra_info`` fields.
    """

    def run(fn, *args, group, runtime, workload, batch, threads, macs=None, warmup=3, **extra):
        if group not in GROUPS:
            raise ValueError(f"group {group!r} is not one of {GROUPS}")
        benchmark.group = group
        benchmark.extra_info.update(runtime=runtime, workload=workload, batch=int(batch),
                                    threads=int(threads), **extra)
        if macs is not None:
            benchmark.extra_info["macs"] = int(macs)
        if runtime in ISA_RUNTIMES and "isa" not in extra:
            from benchmarks.isa_paths import describe_isa

            described = describe_isa()
            benchmark.extra_info["isa"] = described["path"]
            benchmark.extra_info["isa_forced"] = bool(os.environ.get("BITNET_BENCH_FORCED_ISA"))
        try:
            benchmark.extra_info["loadavg_1min"] = os.getloadavg()[0]
        except OSError:
            pass
        if not benchmark.disabled:
            # at least one call (JIT, first ORT run); more while they stay cheap (<0.5 s)
            t0 = time.perf_counter()
            for i in range(max(warmup, 1)):
                if i and time.perf_counter() - t0 > 0.5:
                    break
                fn(*args)
        return benchmark(fn, *args)

    return run


# ----------------------------------------------------------------------------- skips
# Benchmarks that could not run (a peer or a piece of bitnet missing) are skipped with a
# reason; pytest-benchmark's JSON does not keep them, so they go beside it, in
# ``<json>.skipped.json``, where ``benchmarks/report.py`` lists them.

_SKIPPED: list[dict] = []


def pytest_runtest_logreport(report):
    if report.skipped and report.when in ("setup", "call"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if "Skipping non-benchmark" in reason:  # a plain test (test_report.py) under --benchmark-only
            return
        _SKIPPED.append({"test": report.nodeid, "reason": reason.removeprefix("Skipped: ")})


def pytest_sessionfinish(session, exitstatus):
    import json

    from benchmarks.isa_paths import CHILD_RUNS

    opt = session.config.getoption("benchmark_json", None)
    # pytest-benchmark >= 5.3 gives a path; older versions an open file (its .name is the path)
    path = opt if isinstance(opt, (str, os.PathLike)) else getattr(opt, "name", None)
    if path:
        skipped = _SKIPPED + [s for run in CHILD_RUNS for s in run["summary"].get("skipped", [])]
        with open(os.fspath(path) + ".skipped.json", "w") as out:
            json.dump(skipped, out, indent=1)
