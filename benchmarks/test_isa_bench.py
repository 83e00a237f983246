"""Other ISA paths in the same run, and the spread of medians across fresh processes.

Forced ISA rows (``test_forced_isa_rows``)
    bitnet's own benchmarks (``test_kernels_bench.py``: L64/L128/L256, the roofline,
    LC-BNN, KWS-BNN-M; ``test_default_bench.py``: the bundled model on features) re-run
    in a subprocess whose kernels are compiled for another CPU
    (:data:`benchmarks.isa_paths.FORCED`: ``avx2`` = ``NUMBA_CPU_NAME=haswell``,
    ``generic`` = ``x86-64``; ``BITNET_AOT=0``, a numba cache of its own per path), with
    this run's timing options. Its rows go into this run's JSON (``conftest.py``,
    ``pytest_benchmark_update_json``) with ``extra_info["isa"]`` = the path they took
    and ``isa_forced`` = True; the report sets them beside this run's peers. The peers
    themselves run once, on the host, with their own run-time dispatch (PyTorch and ONNX
    Runtime pick their AVX-512 kernels on an AVX-512 host), so the ratios of a forced
    row say how the forced bitnet path compares with the peers *on this host*.

Cross-process spread (``test_process_spread``)
    For L64, L128, L256 and KWS-BNN-M (batch 1, one thread), on the host path and on
    every forced path: N fresh processes one after another (``_spread_probe.py``), each
    warming up and then taking a median; ``extra_info["process_medians"]`` has the N
    medians, the report their min / median / max. The benchmark's own timing is the
    wall time of one whole process (group ``spread``; the report does not use it).

Time box. Under ``--benchmark-disable`` (CI quick mode) every benchmark executes once
and nothing is timed: the forced-path subprocess runs only the 1-thread, batch-1 cases
of the ``avx2`` path (the first run compiles every kernel for haswell, ~40-80 s on two
busy cores; later runs load numba's cache, a few seconds), and each spread case runs a
single process with a single call. A timed run does every case, on ``avx2`` and
``generic``, with ``BITNET_BENCH_PROCESSES`` (default 5) processes per spread case.
``BITNET_BENCH_ISAS`` (comma-separated, e.g. ``avx2`` or ``avx2,generic``; empty for
none) chooses the forced paths in either mode. This run's ``-k`` expression is passed
on to the subprocess: ``-k "L128 or forced"`` times L128 on every chosen path.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from benchmarks import isa_paths

REPO = Path(__file__).resolve().parents[1]
SPREAD_WORKLOADS = ["L64", "L128", "L256", "KWS-BNN-M"]
PROCESSES = int(os.environ.get("BITNET_BENCH_PROCESSES", "5"))
CHILD_TIMEOUT_S = 1800.0

# what a forced-path subprocess runs: every bitnet benchmark of the workloads ...
CHILD_TESTS = ["benchmarks/test_kernels_bench.py",
               "benchmarks/test_default_bench.py::test_default_model_bitnet"]
# ... or, in quick mode, one execution of each kernel family at 1 thread, batch 1
CHILD_TESTS_QUICK = [
    "benchmarks/test_kernels_bench.py::test_roofline[1]",
    *[f"benchmarks/test_kernels_bench.py::test_layer[{w}-1]" for w in ("L64", "L128", "L256")],
    *[f"benchmarks/test_kernels_bench.py::test_model[{w}-1-1]" for w in ("LC-BNN", "KWS-BNN-M")],
    "benchmarks/test_default_bench.py::test_default_model_bitnet[b1-t1]",
]


def forced_paths(quick: bool) -> list[str]:
    """The forced paths of this run (``BITNET_BENCH_ISAS``, else the mode's default)."""
    env = os.environ.get("BITNET_BENCH_ISAS")
    if env is None:
        return ["avx2"] if quick else ["avx2", "generic"]
    names = [n.strip() for n in env.split(",") if n.strip()]
    unknown = [n for n in names if n not in isa_paths.FORCED]
    if unknown:
        raise ValueError(f"BITNET_BENCH_ISAS: unknown path(s) {unknown}; known: {sorted(isa_paths.FORCED)}")
    return names


def _skip_unless_chosen(path: str, quick: bool) -> None:
    if not isa_paths.is_x86_64():
        pytest.skip(f"forced {path} path: the host is not x86-64")
    if path not in forced_paths(quick):
        env = os.environ.get("BITNET_BENCH_ISAS")
        why = (f"BITNET_BENCH_ISAS={env!r}" if env is not None else
               "the default of " + ("quick mode is avx2 only" if quick else "a timed run is avx2,generic"))
        pytest.skip(f"forced {path} path not chosen for this run ({why})")


def _timing_args(config, quick: bool) -> list[str]:
    """This run's pytest-benchmark timing options, for the subprocess."""
    if quick:
        return ["--benchmark-disable"]
    args = ["--benchmark-only"]
    for opt in ("min_rounds", "max_time", "min_time", "warmup", "warmup_iterations", "disable_gc"):
        val = config.getoption(f"benchmark_{opt}", None)
        if val is None or val is False:
            continue
        flag = "--benchmark-" + opt.replace("_", "-")
        args.append(flag if val is True else f"{flag}={val}")
    return args


def _child_env(path: str) -> dict:
    env = isa_paths.forced_env(path)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("BITNET_BENCH_KEEP_DATA", None)  # the rows are merged; their raw data is not needed
    return env


@pytest.mark.parametrize("path", list(isa_paths.FORCED))
def test_forced_isa_rows(benchmark, request, path):
    """bitnet's benchmarks with the kernels compiled for another CPU (one subprocess)."""
    quick = benchmark.disabled
    _skip_unless_chosen(path, quick)
    benchmark.group = "spread"
    benchmark.extra_info.update(placeholder=True, runtime="bitnet", workload=f"forced-{path}", batch=1, threads=1)
    tests = CHILD_TESTS_QUICK if quick else CHILD_TESTS
    with tempfile.TemporaryDirectory(prefix=f"bitnet-isa-{path}-") as tmp:
        out = Path(tmp) / "child.json"
        cmd = [sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider",
               *_timing_args(request.config, quick)]
        keyword = request.config.getoption("keyword", "")
        if keyword:  # `-k L128 or forced` here runs the L128 cases there
            cmd += ["-k", keyword]
        if not quick:
            cmd.append(f"--benchmark-json={out}")
        result = {}

        def run_child():
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=REPO, env=_child_env(path), capture_output=True, text=True,
                                  timeout=CHILD_TIMEOUT_S)
            result.update(rc=proc.returncode, wall_s=time.perf_counter() - t0,
                          tail=(proc.stdout + proc.stderr)[-4000:])

        benchmark.pedantic(run_child, rounds=1, iterations=1)
        if result["rc"] == 5 and keyword:  # pytest's "no tests collected"
            pytest.skip(f"forced {path} path: -k {keyword!r} selects none of its benchmarks")
        if result["rc"] != 0:
            pytest.fail(f"forced {path} subprocess failed (exit {result['rc']}): {' '.join(cmd)}\n"
                        f"{result['tail']}")
        summary = {"path": path, "env": isa_paths.FORCED[path] | {"BITNET_AOT": "0"},
                   "numba_cache_dir": str(isa_paths.forced_cache_dir(path)), "wall_s": result["wall_s"],
                   "tests": tests, "quick": quick}
        if quick:
            isa_paths.CHILD_RUNS.append({"summary": summary, "benchmarks": []})
            return
        data = json.loads(out.read_text())
        rows = data.get("benchmarks", [])
        if not rows:
            pytest.fail(f"forced {path} subprocess timed nothing:\n{result['tail']}")
        described = (data.get("machine_info") or {}).get("isa") or {}
        summary["isa"] = described
        for b in rows:
            b["name"] = f"{b['name']}@{path}"
            b["fullname"] = f"{b['fullname']}@{path}"
            info = b.setdefault("extra_info", {})
            info.setdefault("isa", described.get("path", path))
            info["isa_forced"] = True
            info["forced_as"] = path
        summary["benchmarks"] = len(rows)
        skipped = Path(str(out) + ".skipped.json")
        if skipped.is_file():  # the subprocess's own skips, said in this run's list
            summary["skipped"] = [dict(s, test=f"{s['test']}@{path}") for s in json.loads(skipped.read_text())]
        isa_paths.CHILD_RUNS.append({"summary": summary, "benchmarks": rows})


def _spread_cases():
    return [(isa, w) for isa in ("host", *isa_paths.FORCED) for w in SPREAD_WORKLOADS]


@pytest.mark.parametrize("isa,workload", _spread_cases(), ids=[f"{i}-{w}" for i, w in _spread_cases()])
def test_process_spread(benchmark, isa, workload):
    """N fresh processes one after another, each a median of its own timed calls."""
    quick = benchmark.disabled
    if isa != "host":
        _skip_unless_chosen(isa, quick)
        env = _child_env(isa)
    else:
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    spec = {"workload": workload, "min_time": 0.0 if quick else 0.3, "min_calls": 1 if quick else 20,
            "max_calls": 1 if quick else 100_000}
    results = []

    def once():
        proc = subprocess.run([sys.executable, "-m", "benchmarks._spread_probe", json.dumps(spec)], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=600)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"spread probe {isa} {workload} failed (exit {proc.returncode}):\n"
                               f"{proc.stderr[-3000:]}")
        results.append(json.loads(lines[-1]))

    benchmark.group = "spread"
    benchmark.pedantic(once, rounds=1 if quick else PROCESSES, iterations=1)
    medians = [r["median"] for r in results]
    paths = sorted({r["isa"] for r in results})
    benchmark.extra_info.update(
        runtime="bitnet", workload=workload, batch=1, threads=1, isa=paths[0] if len(paths) == 1 else paths,
        isa_forced=isa != "host", processes=len(results), process_medians=medians,
        process_calls=[r["calls"] for r in results], spread_min=min(medians),
        spread_median=statistics.median(medians), spread_max=max(medians),
    )
