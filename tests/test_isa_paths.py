"""The instruction-set table (bitnet.kernels.isa) and the thread pool (bitnet._threads).

Bit-exactness of every path against the references is tested by running the kernel
tests under forced targets (tests/test_isa.py); here: which path a CPU gets, that
layers are re-tiled for the path their kernels were compiled for, and the pool.
"""

from __future__ import annotations

import numpy as np
import pytest

from bitnet import _threads
from bitnet.parallel import get_num_threads, set_num_threads
from bitnet.kernels import isa
from bitnet.kernels.layout import aligned, block_width, nibble_planes


@pytest.fixture
def threads():
    old = get_num_threads()
    yield set_num_threads
    set_num_threads(old)


@pytest.mark.parametrize("arch,name,features,path", [
    ("x86_64-unknown-linux-gnu", "znver4", "", "avx512"),
    ("x86_64-unknown-linux-gnu", "icelake-server", "", "avx512"),
    ("x86_64-unknown-linux-gnu", "haswell", "", "avx2"),
    ("x86_64-unknown-linux-gnu", "znver3", "", "avx2"),
    ("x86_64-unknown-linux-gnu", "skylake-avx512", "", "avx2"),     # AVX-512 but no VPOPCNTDQ
    ("x86_64-unknown-linux-gnu", "x86-64", "", "generic"),
    ("x86_64-unknown-linux-gnu", "some-future-cpu", "", "generic"),
    ("x86_64-unknown-linux-gnu", "znver4", "+avx2,+ssse3,-avx512vpopcntdq,-avx512bw", "avx2"),
    ("x86_64-unknown-linux-gnu", "haswell", "+avx512vpopcntdq,+avx512bw,+avx2,+ssse3", "avx512"),
    ("x86_64-unknown-linux-gnu", "generic", "+sse2,+ssse3", "generic"),
    ("aarch64-unknown-linux-gnu", "cortex-a72", "", "neon"),
    ("aarch64-unknown-linux-gnu", "cortex-a76", "+neon", "neon"),
    ("riscv64-unknown-linux-gnu", "generic-rv64", "", "generic"),
])
def test_classify(arch, name, features, path):
    assert isa.classify(arch, name, features) == path


def test_every_path_has_consistent_shapes():
    codes = set()
    for name, p in isa.PATHS.items():
        assert p["lanes"] == tuple(sorted(p["lanes"])) and set(p["lanes"]) <= {16, 32, 64}
        assert set(p["qlanes"]) <= {16, 32, 64}
        assert max(p["groups"]) * 8 <= 255          # byte counters cannot overflow
        codes.add(p["code"])
        assert isa.BY_CODE[p["code"]] == name
    assert len(codes) == len(isa.PATHS)


def test_active_path_matches_the_kernels():
    """Layers are re-tiled for the block widths of the kernels actually loaded."""
    from bitnet.kernels.bconv_layer import BConv
    from bitnet.packing import pack_signs

    path = isa.active()
    assert path in isa.PATHS
    d = isa.describe()
    assert d["path"] == path and d["lanes"] == isa.PATHS[path]["lanes"]
    rng = np.random.default_rng(0)
    for c_out in (1, 17, 33, 64, 65, 130):
        w = pack_signs(rng.standard_normal((c_out, 3, 3, 64)))
        conv = BConv(w, 64, output="int")
        L = block_width(c_out, isa.lanes())
        assert conv.lanes == L
        planes = 2 if isa.PATHS[path]["nibbles"] else 1
        assert conv.wt.shape == (-(-c_out // L), 9, planes * L)
        assert conv.wt.ctypes.data % 64 == 0


def test_nibble_planes_keep_the_popcount():
    rng = np.random.default_rng(1)
    w = rng.integers(0, 2**63, size=(2, 3, 16), dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    x = rng.integers(0, 2**63, size=(), dtype=np.uint64)
    p = nibble_planes(w)
    assert p.shape == (2, 3, 32)
    m = np.uint64(0x0F0F0F0F0F0F0F0F)
    xl, xh = x & m, (x >> np.uint64(4)) & m

    def pc(a):
        return np.array([bin(int(v)).count("1") for v in a.ravel()]).reshape(a.shape)

    assert np.array_equal(pc(p[..., :16] ^ xl) + pc(p[..., 16:] ^ xh), pc(w ^ x))
    assert (p & ~m == 0).all()


def test_aligned():
    for dtype, shape in ((np.uint64, (3, 5, 7)), (np.float32, (13,)), (np.int64, (1,))):
        a = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
        b = aligned(a)
        assert b.ctypes.data % 64 == 0 and b.flags.c_contiguous
        assert b.dtype == a.dtype and np.array_equal(a, b)


def test_pool_runs_parts_in_other_threads_and_reraises():
    import threading

    pool = _threads.pool(2)
    seen = []

    def part(i):
        seen.append((i, threading.get_ident()))

    before = pool.jobs
    for _ in range(50):
        pool.run([(part, (0,)), (part, (1,))])
    assert pool.jobs == before + 50
    assert {i for i, _ in seen} == {0, 1}
    assert len({t for i, t in seen if i == 0}) == 1
    assert {t for i, t in seen if i == 0}.isdisjoint({t for i, t in seen if i == 1})

    def boom():
        raise ValueError("part failed")

    with pytest.raises(ValueError, match="part failed"):
        pool.run([(part, (0,)), (boom, ())])
    pool.run([(part, (0,)), (part, (1,))])          # still usable


def test_two_threads_use_the_pool_and_match_one(threads):
    """A large convolution with 2 threads runs through the pool (its job counter moves)
    and gives the same bits as one thread."""
    from bitnet.graph import Graph
    from bitnet.testing.workloads import l64, random_input

    layers, tensors, shp = l64(seed=3)
    g = Graph(layers, tensors, shp, input_kind="bits")
    x = random_input(shp, kind="bits", batch=2, seed=3)
    one = g.run(x)
    threads(2)
    if get_num_threads() < 2:
        pytest.skip("this process may run on one CPU only")
    before = _threads.pool(2).jobs
    two = g.run(x)
    threads(1)
    assert _threads.pool(2).jobs == before + 1
    np.testing.assert_array_equal(one, two)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork()")
def test_pool_works_in_a_forked_child():
    """A child made by fork() after the pool started gets pools of its own (the parent's
    threads do not exist there)."""
    import os

    p = _threads.pool(2)
    p.run([(lambda: None, ()), (lambda: None, ())])
    pid = os.fork()
    if pid == 0:        # child: must not hang; exit code says whether it worked
        try:
            q = _threads.pool(2)
            q.run([(lambda: None, ()), (lambda: None, ())])
            os._exit(0 if q is not p else 3)
        except BaseException:
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
