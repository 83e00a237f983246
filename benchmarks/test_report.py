"""The report's bookkeeping on a small synthetic run (not a benchmark: nothing is timed).

Checks what the report promises: forced-path rows are set against the same peer rows as
the host's, "% of roofline" divides by the fastest roofline *of the same ISA path*
(a roofline's path comes from its forced subprocess, else from its name), every row where
a peer is faster gets its own line, and the cross-process spread is summarised from the
per-process medians. Runs in quick mode and plain ``pytest benchmarks``; skipped by
``--benchmark-only``.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("matplotlib", reason="the report draws its charts with matplotlib")

from benchmarks import report  # noqa: E402


def _row(name, group, runtime, workload, median, threads=1, batch=1, **info):
    info.update(runtime=runtime, workload=workload, batch=batch, threads=threads)
    return {"name": name, "fullname": name, "group": group, "extra_info": info,
            "stats": {"median": median, "iqr": median * 0.01, "rounds": 10}}


def _run(tmp_path):
    mi = {"isa": {"path": "avx512", "source": "test", "llvm_target": "znver4"},
          "isa_children": [{"path": "avx2", "env": {"NUMBA_CPU_NAME": "haswell"},
                            "isa": {"path": "avx2", "source": "test", "llvm_target": "haswell"}}]}
    macs = 1_000_000_000
    rows = [
        _row("test_layer[L128-1]", "kernels", "bitnet", "L128", 1e-3, macs=macs, isa="avx512"),
        _row("test_layer[L128-1]@avx2", "kernels", "bitnet", "L128", 4e-3, macs=macs, isa="avx2", isa_forced=True),
        _row("test_layer_peers[L128-ort-int8-t1]", "kernels", "ort-int8", "L128", 3e-3, model_bytes=150_000),
        _row("test_layer_peers[L128-ort-float-t1]", "kernels", "ort-float", "L128", 6e-3, model_bytes=590_000),
        # host roofline 2 T/s; avx2: LLVM's default 0.5 T/s (forced) and a better method 1 T/s (by name)
        _row("test_roofline[1]", "kernels", "roofline", "roofline", 1e-6, macs=2_000_000, isa="avx512"),
        _row("test_roofline[1]@avx2", "kernels", "roofline", "roofline", 4e-6, macs=2_000_000, isa="avx2",
             isa_forced=True),
        _row("test_roofline_avx2_harley_seal[1]", "kernels", "roofline", "roofline", 2e-6, macs=2_000_000,
             isa="avx512"),
        _row("test_process_spread[host-L128]", "spread", "bitnet", "L128", 1.0, isa="avx512",
             process_medians=[1e-3, 2e-3, 1.5e-3]),
    ]
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"machine_info": mi, "benchmarks": rows}))
    return path


def test_forced_rows_pair_with_host_peers_and_their_own_roofline(tmp_path):
    data, rows = report.load_rows(_run(tmp_path))
    idx = report.index(rows)
    cell = idx["kernels"][("L128", 1, 1)]
    assert set(cell) == {"bitnet", "bitnet@avx2", "ort-int8", "ort-float"}
    roofs = report.rooflines(rows)
    assert report.best_roofline(roofs, "avx512") == {1: pytest.approx(2e12)}
    assert report.best_roofline(roofs, "avx2") == {1: pytest.approx(1e12)}  # the named method wins
    assert len(roofs["avx2"][1]) == 2
    text = "\n".join(report.section_isa(idx, roofs, data, "avx512"))
    # host: 1 T binary MAC/s of its 2 T roofline; avx2: 0.25 T of the 1 T (best avx2) roofline
    assert "| L128 | 1 | 1 | avx512 | 1 ms | — | 6× | 3× | 1000 | 50% |" in text
    assert "| L128 | 1 | 1 | avx2 (forced) | 4 ms | — | 1.5× | **0.75×** | 250 | 25% |" in text


def test_every_peer_win_is_a_line(tmp_path):
    data, rows = report.load_rows(_run(tmp_path))
    lines, compared = report.slower_lines(report.index(rows), "avx512")
    assert compared == 4  # (host, avx2) x (ort-int8, ort-float)
    assert lines == ["- **bitnet's avx2 path (forced) is slower than ONNX Runtime INT8 on L128, batch 1, "
                     "1 thread: 4 ms vs 3 ms (0.75×).**"]


def test_spread_and_sizes(tmp_path):
    data, rows = report.load_rows(_run(tmp_path))
    idx = report.index(rows)
    spread = "\n".join(report.section_spread(rows, idx))
    assert "| L128 | avx512 | 3 | 1 ms | 1.5 ms | 2 ms | 2.00× |" in spread
    sizes = "\n".join(report.section_sizes(idx))
    assert "150 KB" in sizes and "590 KB" in sizes


def test_whole_report_and_charts(tmp_path):
    out = report.build_report(_run(tmp_path), tmp_path / "out")
    md = out.read_text()
    assert "## bitnet per ISA path" in md and "## Spread across processes" in md
    assert (tmp_path / "out" / "kernels.png").is_file()
