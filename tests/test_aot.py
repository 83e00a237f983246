"""Ahead-of-time compiled kernels (bitnet.compile.aot): same results as the JIT kernels, a
process that runs a model without importing numba, and clean fallbacks.

The module is built once per session into the cache directory the rest of the suite
uses too (a no-op where it is already there); tests that damage a cache work on copies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bitnet.compile import aot as _aot
from bitnet.compile import registry as _registry
from bitnet.graph import Graph
from bitnet.testing.workloads import WORKLOADS, random_input

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("*.wav"))


@pytest.fixture(scope="session")
def aot_module():
    """``(module name, .so path)`` of this machine's module, built once if missing."""
    saved = os.environ.pop("BITNET_AOT", None)
    try:
        try:
            so = _aot.build()
        except RuntimeError as e:
            pytest.skip(f"no ahead-of-time build on this machine: {e}")
        name, so2, _, _ = _aot.paths()
        assert so == so2
        return name, so
    finally:
        if saved is not None:
            os.environ["BITNET_AOT"] = saved


@pytest.fixture
def aot_on(aot_module, monkeypatch):
    monkeypatch.delenv("BITNET_AOT", raising=False)
    assert _registry.aot_active()
    return aot_module


def _graphs(monkeypatch, *args, **kw):
    """The same graph with ahead-of-time kernels and with JIT kernels."""
    monkeypatch.delenv("BITNET_AOT", raising=False)
    ga = Graph(*args, **kw)
    monkeypatch.setenv("BITNET_AOT", "0")
    gj = Graph(*args, **kw)
    monkeypatch.delenv("BITNET_AOT")
    return ga, gj


def test_registry_serves_aot_and_jit(aot_on, monkeypatch):
    for name in _registry.KERNELS:
        assert _registry.is_aot(_registry.get(name)), name
    monkeypatch.setenv("BITNET_AOT", "0")
    for name in _registry.KERNELS:
        assert not _registry.is_aot(_registry.get(name)), name


@pytest.mark.parametrize("workload", ["LC-BNN", "KWS-BNN-M", "L64"])
def test_aot_equals_jit_on_workloads(aot_on, monkeypatch, workload):
    build, kind = WORKLOADS[workload]
    layers, tensors, shape = build()
    ga, gj = _graphs(monkeypatch, layers, tensors, shape, input_kind=kind)
    for seed in range(2):
        x = random_input(shape, kind, batch=2, seed=seed)
        np.testing.assert_array_equal(ga.run(x), gj.run(x))          # fused plan
        ya, va = ga.run(x, return_values=True)                        # every value
        yj, vj = gj.run(x, return_values=True)
        assert va.keys() == vj.keys()
        for k in va:
            assert va[k].dtype == vj[k].dtype, k
            np.testing.assert_array_equal(va[k], vj[k], err_msg=k)


def test_aot_equals_jit_on_default_model(aot_on, monkeypatch):
    import bitnet.model as model_mod

    assert EXAMPLES
    ma = model_mod.load()
    monkeypatch.setenv("BITNET_AOT", "0")
    mj = model_mod.load()
    monkeypatch.delenv("BITNET_AOT")
    for path in EXAMPLES:
        pa, pj = ma.predict(path), mj.predict(path)
        assert pa.label == pj.label == path.name.split("_")[0]
        np.testing.assert_array_equal(pa.window_probabilities, pj.window_probabilities)


def _run(code, env_extra, timeout=300):
    env = dict(os.environ)
    env.pop("BITNET_AOT", None)
    env["PYTHONPATH"] = str(REPO)
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


INFER = ("import sys, bitnet; p = bitnet.infer(sys.argv[1] if len(sys.argv) > 1 else 'examples/7_jackson_0.wav'); "
         "print(p.label, [m for m in ('numba', 'llvmlite') if m in sys.modules])")


def test_warm_process_never_imports_numba(aot_on):
    r = _run(INFER, {"BITNET_CACHE_DIR": str(aot_on[1].parent)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0] == "7 []", r.stdout
    assert r.stderr == ""           # no first-run notice, no warning


def test_aot_off_uses_jit(aot_on):
    r = _run(INFER, {"BITNET_CACHE_DIR": str(aot_on[1].parent), "BITNET_AOT": "0"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("7 ['numba', 'llvmlite']"), r.stdout


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty cache directory for this test; the registry forgets what it resolved."""
    d = tmp_path / "cache"
    monkeypatch.setenv("BITNET_CACHE_DIR", str(d))
    monkeypatch.delenv("BITNET_AOT", raising=False)
    monkeypatch.delenv("BITNET_QUIET", raising=False)
    _registry._reset()
    yield d
    _aot._loaded.pop(d, None)
    _aot._warned.discard(d)
    _registry._reset()


def test_first_run_builds_and_says_so(aot_on, fresh_cache, monkeypatch, capsys):
    calls = []

    def fake_build(d, force=False):          # a copy of the session's module: no compile
        calls.append(d)
        name, so, js, _ = _aot.paths(d)
        Path(d).mkdir(parents=True, exist_ok=True)
        shutil.copy(aot_on[1], so)
        shutil.copy(aot_on[1].with_name(aot_on[0] + ".json"), js)
        return so

    monkeypatch.setattr(_aot, "build", fake_build)
    mod = _aot.load()
    assert mod is not None and calls == [fresh_cache]
    assert "compiling kernels for this machine (first run only" in capsys.readouterr().err
    assert _aot.load() is mod
    assert _registry.is_aot(_registry.get("bconv"))
    assert capsys.readouterr().err == ""


def test_corrupt_module_falls_back(aot_on, fresh_cache, monkeypatch, capsys):
    name, so, js, _ = _aot.paths(fresh_cache)
    fresh_cache.mkdir(parents=True)
    so.write_bytes(b"\x7fELF this is not a shared object" * 10)
    shutil.copy(aot_on[1].with_name(aot_on[0] + ".json"), js)
    tried = []

    def failing_build(d, force=False):
        tried.append(d)
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(_aot, "build", failing_build)
    assert _aot.load() is None
    err = capsys.readouterr().err
    assert "could not be loaded" in err and "using the JIT kernels" in err
    assert tried == [fresh_cache]
    assert not so.exists()
    # the graph runs on the JIT kernels, with the same results as the reference
    layers, tensors, shape = WORKLOADS["LC-BNN"][0]()
    g = Graph(layers, tensors, shape)
    assert not _registry.is_aot(_registry.get("bconv"))
    x = random_input(shape)
    np.testing.assert_allclose(g.run(x), g.run_reference(x), atol=1e-5)


def test_failed_build_is_remembered(fresh_cache, monkeypatch, capsys):
    name, so, js, _ = _aot.paths(fresh_cache)
    fresh_cache.mkdir(parents=True)
    _aot._record_failure(js, "RuntimeError: no compiler")

    def must_not_build(d, force=False):
        raise AssertionError("a remembered failure must not be retried")

    monkeypatch.setattr(_aot, "build", must_not_build)
    assert _aot.load() is None
    assert capsys.readouterr().err == ""
    assert not _registry.is_aot(_registry.get("sign"))


def test_cache_dir_never_the_package(monkeypatch, tmp_path):
    monkeypatch.delenv("BITNET_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _aot.cache_dir() == tmp_path / "xdg" / "bitnet"
    name, so, js, lock = _aot.paths()
    assert _aot._PKG not in so.parents
    assert so.name.startswith(name) and so.suffix in (".so", ".pyd")
    monkeypatch.setenv("BITNET_CACHE_DIR", str(tmp_path / "mine"))
    assert _aot.cache_dir() == tmp_path / "mine"


def test_key_follows_kernel_sources(monkeypatch, tmp_path):
    """Editing a kernel source, or an op definition (it holds the kernels' signatures),
    gives another module (never a stale one)."""
    k1 = _aot.cache_key()
    assert k1 == _aot.cache_key()
    pkg = tmp_path / "bitnet"
    shutil.copytree(_aot._PKG, pkg, ignore=shutil.ignore_patterns("__pycache__", "models"))
    monkeypatch.setattr(_aot, "_PKG", pkg)
    assert _aot.cache_key() == k1
    with open(pkg / "kernels" / "bconv.py", "a") as f:
        f.write("\n# edited\n")
    k2 = _aot.cache_key()
    assert k2 != k1
    with open(pkg / "ops" / "bconv.py", "a") as f:
        f.write("\n# edited\n")
    assert _aot.cache_key() != k2


#: an instruction that only the popcount of each path emits, as objdump spells it
_PATH_MARK = {"avx512": "vpopcntq", "avx2": "vpshufb", "neon": "cnt\tv", "generic": None}


def test_exported_code_takes_this_cpus_path(aot_module):
    """The module is compiled for this CPU, and its kernels say which path they took:
    the one :func:`bitnet.kernels.isa.classify` gives this CPU, with that path's
    popcount instruction in the machine code (vpopcntq on AVX-512 VPOPCNTDQ, vpshufb
    on AVX2, cnt on ARM64)."""
    import llvmlite.binding as ll

    from bitnet.kernels import isa

    expect = isa.classify(ll.get_process_triple(), ll.get_host_cpu_name(), "")
    assert _aot._read_json(_aot.paths()[2])["isa_path"] == expect
    isa._reset()
    assert isa.active() == expect
    mark = _PATH_MARK[expect]
    objdump = shutil.which("objdump")
    if mark is None or objdump is None:
        pytest.skip("needs objdump and a path with a distinctive popcount instruction")
    r = subprocess.run([objdump, "-d", str(aot_module[1])], capture_output=True, text=True)
    assert mark in r.stdout


def test_concurrent_builds_compile_once(fresh_cache, monkeypatch):
    """The lock file: first runs that start together compile once, the others wait."""
    import threading
    import time

    compiled = []

    def fake_compile(name, out_dir, verbose):
        compiled.append(name)
        time.sleep(0.3)
        (out_dir / (name + _aot._ext_suffix())).write_bytes(b"stub")

    monkeypatch.setattr(_aot, "_compile", fake_compile)
    monkeypatch.setattr(_aot, "_build_facts", lambda: {})
    threads = [threading.Thread(target=_aot._build_here, args=(fresh_cache,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    name, so, js, _ = _aot.paths(fresh_cache)
    assert compiled == [name]
    assert so.read_bytes() == b"stub" and _aot._read_json(js)["status"] == "ok"
    assert not list(fresh_cache.glob(".build-*"))      # temporary directories removed


def test_compile_command(aot_on):
    r = _run("from bitnet.cli import main; raise SystemExit(main(['compile', '--json']))",
             {"BITNET_CACHE_DIR": str(aot_on[1].parent)})
    assert r.returncode == 0, r.stderr
    import json

    st = json.loads(r.stdout)
    assert st["status"] == "ok" and st["exists"] and st["path"] == str(aot_on[1])


def test_unwritable_cache_dir_uses_jit_without_building(fresh_cache, monkeypatch, capsys):
    fresh_cache.parent.mkdir(parents=True, exist_ok=True)
    fresh_cache.write_text("a file where the directory should be")

    def must_not_build(d, force=False):
        raise AssertionError("no build into an unwritable directory")

    monkeypatch.setattr(_aot, "build", must_not_build)
    assert _aot.load() is None
    assert "cannot write the compiled kernels" in capsys.readouterr().err
    assert not _registry.is_aot(_registry.get("quantize"))
