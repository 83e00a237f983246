"""Turn one pytest-benchmark JSON file into ``benchmarks/results/REPORT.md`` and charts.

Usage (from the repository root)::

    pytest benchmarks --benchmark-only --benchmark-json=benchmarks/results/latest.json
    python -m benchmarks.report [--json PATH] [--out DIR]

Without ``--json`` the report reads ``benchmarks/results/latest.json``, or else the
newest file pytest-benchmark's ``--benchmark-autosave`` wrote under ``.benchmarks/``.
It writes ``REPORT.md``, ``models.png``, ``kernels.png``, ``startup.png`` (and
``frontend.png`` when the frontend group ran) into ``--out`` (default
``benchmarks/results/``).

Every ratio is computed between rows of the *same* run (the same JSON file): rows are
paired by ``(group, workload, batch, threads)`` from each benchmark's ``extra_info``
(conventions in ``benchmarks/conftest.py``). speed-up = peer median / bitnet median, so
a number above 1 means bitnet is faster. Wherever bitnet (on any ISA path) is slower
than a peer the report says so in a line of its own.

bitnet rows carry the ISA path their kernels took (``extra_info["isa"]``); rows from a
forced-path subprocess (``isa_forced``, ``test_isa_bench.py``) become runtimes
``bitnet@<path>`` here and are set against the same peer rows as the host's. Roofline
rows are grouped by path (:func:`rooflines`), and "% of roofline" always divides by a
roofline of the same path. The cross-process spread is group ``spread``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_JSON = HERE / "results" / "latest.json"

PEERS = ("torch-float", "torch-bnn", "ort-float", "ort-int8")
#: the peers every ISA path is set against (the ISA table)
ISA_PEERS = ("torch-float", "ort-float", "ort-int8")
LABELS = {
    "bitnet": "bitnet",
    "torch-float": "PyTorch float32",
    "torch-bnn": "PyTorch binarized",
    "ort-float": "ONNX Runtime float32",
    "ort-int8": "ONNX Runtime INT8",
    "librosa": "librosa",
    "roofline": "binary roofline",
}
COLORS = {"bitnet": "#1b9e77", "torch-float": "#d95f02", "torch-bnn": "#e7298a",
          "ort-float": "#7570b3", "ort-int8": "#e6ab02", "librosa": "#666666",
          "bitnet@avx512": "#66c2a5", "bitnet@avx2": "#1f78b4", "bitnet@generic": "#a6cee3",
          "bitnet@neon": "#b2df8a"}
#: kernel path names (bitnet.kernels.isa); a roofline row whose name contains one
#: belongs to that path
ISA_TOKENS = ("avx512", "avx2", "neon", "generic")
WORKLOAD_ORDER = ["L64", "L128", "L256", "LC-BNN", "KWS-BNN-M", "default", "default-clip", "AST"]
NOISY_IQR = 0.25  # rows whose IQR exceeds this fraction of the median get a dagger


# ----------------------------------------------------------------------------- loading


def find_json(path: str | None) -> Path:
    if path:
        p = Path(path)
        if not p.is_file():
            sys.exit(f"report: {p} does not exist; run pytest benchmarks --benchmark-json={p} first")
        return p
    if DEFAULT_JSON.is_file():
        return DEFAULT_JSON
    saved = sorted((REPO / ".benchmarks").glob("*/*.json"), key=lambda q: q.stat().st_mtime)
    if saved:
        return saved[-1]
    sys.exit(f"report: no benchmark JSON found; run\n  pytest benchmarks --benchmark-only "
             f"--benchmark-json={DEFAULT_JSON.relative_to(REPO)}")


def label(runtime: str) -> str:
    """Display name of a runtime; ``bitnet@avx2`` is bitnet's forced avx2 path."""
    if runtime.startswith("bitnet@"):
        return f"bitnet, {runtime.split('@', 1)[1]} path (forced)"
    return LABELS.get(runtime, runtime)


def _roofline_isa(name: str, info: dict, host: str) -> str:
    """The ISA path of a roofline row: the forced path of a subprocess row, else the path
    its benchmark name contains (``test_roofline_avx2_...``), else the row's own
    ``extra_info["isa"]``, else the host's."""
    if info.get("isa_forced") and info.get("isa"):
        return str(info["isa"])
    base = name.split("@", 1)[0].lower()
    for token in ISA_TOKENS:
        if token in base:
            return token
    return str(info.get("isa") or host)


def _guess(bench: dict, key: str):
    """Fallback for rows that lack an extra_info key: the test's parameters, its name."""
    params = bench.get("params") or {}
    if key in params:
        return params[key]
    name = bench.get("name", "")
    if key == "threads":
        m = re.search(r"[\[-]t(\d+)\b", name) or re.search(r"threads?[=-]?(\d+)", name)
        return int(m.group(1)) if m else 1
    if key == "batch":
        m = re.search(r"[\[-]b(\d+)\b", name) or re.search(r"batch[=-]?(\d+)", name)
        return int(m.group(1)) if m else 1
    if key == "runtime":
        if "roofline" in name:
            return "roofline"
        if "librosa" in name:
            return "librosa"
        return "bitnet"
    if key == "workload":
        for w in WORKLOAD_ORDER:
            if re.search(rf"\b{re.escape(w)}\b", name, flags=re.I):
                return w
        return params.get("layer") or params.get("model") or name
    return None


def host_isa(data: dict) -> str:
    """The ISA path of this run's own bitnet rows (``machine_info["isa"]["path"]``)."""
    return str(((data.get("machine_info") or {}).get("isa") or {}).get("path") or "host")


def load_rows(path: Path) -> tuple[dict, list[dict]]:
    text = path.read_text()
    if not text.strip():
        sys.exit(f"report: {path} is empty (runs with --benchmark-disable, or where every benchmark "
                 "was skipped, time nothing and write no data)")
    data = json.loads(text)
    host = host_isa(data)
    rows = []
    for b in data.get("benchmarks", []):
        info = dict(b.get("extra_info") or {})
        stats = b.get("stats") or {}
        if not stats.get("median"):
            continue
        row = {
            "group": b.get("group") or "other",
            "name": b.get("name", ""),
            "runtime": info.get("runtime") or _guess(b, "runtime"),
            "workload": info.get("workload") or _guess(b, "workload"),
            "batch": int(info.get("batch") or _guess(b, "batch")),
            "threads": int(info.get("threads") or _guess(b, "threads")),
            "median": float(stats["median"]),
            "iqr": float(stats.get("iqr") or 0.0),
            "rounds": int(stats.get("rounds") or 0),
            "info": info,
            "forced": bool(info.get("isa_forced")),
        }
        if row["runtime"] == "roofline":
            row["isa"] = _roofline_isa(row["name"], info, host)
        else:
            row["isa"] = str(info.get("isa") or host) if row["runtime"] == "bitnet" else None
        if row["runtime"] == "bitnet" and row["forced"] and row["group"] != "spread":
            row["runtime"] = f"bitnet@{row['isa']}"
        rows.append(row)
    return data, rows


# ----------------------------------------------------------------------------- formatting


def fmt_time(s: float | None) -> str:
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "—"
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "—"
    txt = f"{r:.3g}×" if r < 100 else f"{r:.0f}×"
    return f"**{txt}**" if r < 1 else txt


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "—"
    for unit, size in (("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"


def _sort_key(w: str):
    return (WORKLOAD_ORDER.index(w) if w in WORKLOAD_ORDER else len(WORKLOAD_ORDER), w)


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return out


# ----------------------------------------------------------------------------- analysis


def index(rows):
    """{group: {(workload, batch, threads): {runtime: row}}}; bitnet's forced paths are
    runtimes ``bitnet@<path>``. Roofline rows (see :func:`rooflines`) and the
    cross-process spread (group ``spread``) are not in it."""
    idx: dict = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        if r["runtime"] == "roofline" or r["group"] == "spread":
            continue
        idx[r["group"]][(r["workload"], r["batch"], r["threads"])][r["runtime"]] = r
    return idx


def cell(row) -> str:
    if row is None:
        return "—"
    noisy = row["iqr"] > NOISY_IQR * row["median"]
    return fmt_time(row["median"]) + (" †" if noisy else "")


def _bitnet_runtimes(runs) -> list[str]:
    """bitnet's runtimes in one cell of the index: the host path, then forced paths."""
    return sorted((rt for rt in runs if rt == "bitnet" or rt.startswith("bitnet@")), key=lambda r: (r != "bitnet", r))


def slower_lines(idx, host: str = "host") -> tuple[list[str], int]:
    """One sentence per (row, bitnet path, peer) where bitnet's median is above the
    peer's, and the number of such pairs compared."""
    out, compared = [], 0
    for group in ("kernels", "models", "frontend"):
        for key in sorted(idx.get(group, {}), key=lambda k: (_sort_key(k[0]), k[1], k[2])):
            runs = idx[group][key]
            peers = PEERS if group != "frontend" else ("librosa",)
            for brt in _bitnet_runtimes(runs):
                b = runs[brt]
                who = (f"bitnet ({host} path)" if brt == "bitnet" and group != "frontend" else
                       "bitnet" if brt == "bitnet" else f"bitnet's {brt.split('@', 1)[1]} path (forced)")
                for p in peers:
                    compared += p in runs
                    if p in runs and runs[p]["median"] < b["median"]:
                        w, batch, threads = key
                        out.append(
                            f"- **{who} is slower than {LABELS[p]} on {w}, batch {batch}, "
                            f"{threads} thread{'s' if threads > 1 else ''}: {fmt_time(b['median'])} vs "
                            f"{fmt_time(runs[p]['median'])} ({runs[p]['median'] / b['median']:.2f}×).**")
    return out, compared


def unpaired_lines(idx) -> list[str]:
    """Rows where a peer ran but bitnet did not (or the reverse): said, not hidden."""
    out = []
    for group in ("kernels", "models", "frontend"):
        for key in sorted(idx.get(group, {}), key=lambda k: (_sort_key(k[0]), k[1], k[2])):
            runs = idx[group][key]
            if key[0] in ("roofline", "default-clip"):
                continue
            peers = [p for p in runs if p != "bitnet"]
            if "bitnet" not in runs and peers:
                out.append(f"{key[0]} b{key[1]} {key[2]}T")
    if not out:
        return []
    return [f"- No bitnet median in this run for: {', '.join(out)} (the peers ran; no ratio there)."]


def rooflines(rows) -> dict[str, dict[int, list[tuple[float, dict]]]]:
    """Roofline microbenchmarks of the run: {ISA path: {threads: [(binary MAC/s, row)]}},
    fastest first. A path may have several (e.g. the best popcount method found for it
    and LLVM's default ``ctpop``); "% of roofline" is taken against the fastest."""
    out: dict = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["runtime"] == "roofline" and r["info"].get("macs"):
            out[r["isa"]][r["threads"]].append((r["info"]["macs"] / r["median"], r))
    for by_threads in out.values():
        for lst in by_threads.values():
            lst.sort(key=lambda t: -t[0])
    return out


def roofline_method(row) -> str:
    """What a roofline row measured: ``extra_info["method"]``, else its test name."""
    info = row["info"]
    return str(info.get("method") or info.get("roofline_method") or row["name"].split("@", 1)[0])


def best_roofline(roofs, isa: str) -> dict[int, float]:
    """{threads: binary MAC/s of the fastest roofline of ``isa``}."""
    return {t: lst[0][0] for t, lst in roofs.get(isa, {}).items() if lst}


def pct_of_roofline(rate: float | None, roof: dict[int, float], threads: int) -> tuple[str, bool]:
    """("87%", over-100%?) or ("—", False) when there is no roofline at that thread count."""
    if not rate or threads not in roof:
        return "—", False
    frac = rate / roof[threads]
    return f"{100 * frac:.0f}%" + (" ‡" if frac > 1 else ""), frac > 1


def section_models(idx, group="models") -> list[str]:
    g = idx.get(group)
    if not g:
        return [f"No `{group}` benchmarks in this run."]
    runtimes = [rt for rt in ("bitnet", *PEERS) if any(rt in v for v in g.values())]
    peers = [p for p in PEERS if p in runtimes]
    header = ["workload", "batch", "threads", *[LABELS[r] for r in runtimes],
              *[f"speed-up vs {LABELS[p]}" for p in peers]]
    lines = []
    for key in sorted(g, key=lambda k: (_sort_key(k[0]), k[1], k[2])):
        runs = g[key]
        b = runs.get("bitnet")
        ratios = [fmt_ratio(runs[p]["median"] / b["median"]) if b and p in runs else "—" for p in peers]
        lines.append([key[0], str(key[1]), str(key[2]), *[cell(runs.get(r)) for r in runtimes], *ratios])
    return _table(header, lines)


def section_kernels(idx, roofs, host: str) -> list[str]:
    g = idx.get("kernels")
    if not g:
        return ["No `kernels` benchmarks in this run."]
    roof = best_roofline(roofs, host)
    layer_keys = [k for k in g if k[0] != "roofline"]
    runtimes = [rt for rt in ("bitnet", *ISA_PEERS) if any(rt in g[k] for k in layer_keys)]
    peers = [p for p in ISA_PEERS if p in runtimes]
    header = ["layer", "batch", "threads", *[LABELS[r] for r in runtimes],
              *[f"speed-up vs {LABELS[p]}" for p in peers], "bitnet binary GMAC/s", "% of roofline"]
    lines, over = [], False
    for key in sorted(layer_keys, key=lambda k: (_sort_key(k[0]), k[1], k[2])):
        runs = g[key]
        b = runs.get("bitnet")
        ratios = [fmt_ratio(runs[p]["median"] / b["median"]) if b and p in runs else "—" for p in peers]
        macs = (b or {}).get("info", {}).get("macs") if b else None
        if macs is None:
            macs = next((r["info"].get("macs") for r in runs.values() if r["info"].get("macs")), None)
        rate = macs / b["median"] if b and macs else None
        pct, above = pct_of_roofline(rate, roof, key[2])
        over = over or above
        lines.append([key[0], str(key[1]), str(key[2]), *[cell(runs.get(r)) for r in runtimes], *ratios,
                      f"{rate / 1e9:.0f}" if rate else "—", pct])
    out = _table(header, lines)
    if roof:
        out += ["", f"Binary roofline of the host's {host} path (the fastest xor+popcount+add "
                    "microbenchmark of that path, same run; all of them per path are under "
                    "\"bitnet per ISA path\"): " + ", ".join(
            f"{t} thread{'s' if t > 1 else ''}: {v / 1e12:.3g} T binary MAC/s" for t, v in sorted(roof.items())) + "."]
        if over:
            out += ["", "‡ Above 100%: the roofline microbenchmark at that thread count ran slower than the "
                        "layer itself (one roofline call is a few microseconds of work, so thread hand-off "
                        "and a busy machine dominate it); that percentage is not meaningful."]
    else:
        out += ["", "No roofline microbenchmark in this run, so no % of roofline."]
    return out


def _isa_text(isa: dict, forced_env: dict | None) -> tuple[str, str]:
    """(how the path was selected, what its kernels are) for the ISA table."""
    target = isa.get("llvm_target") or "?"
    if forced_env:
        how = ("forced in a subprocess: " + " ".join(f"{k}={v}" for k, v in forced_env.items())
               + f" (LLVM target {target}; JIT kernels, numba cache of its own)")
    else:
        aot = (isa.get("engine") or {}).get("aot")
        how = (f"this process: LLVM host CPU {target}"
               + (", ahead-of-time module" if aot else ", JIT kernels" if aot is False else "")
               + (f", BITNET_AOT={isa['bitnet_aot']}" if isa.get("bitnet_aot") else ""))
    eng = isa.get("engine")
    if isinstance(eng, dict):
        keys = ("lanes", "qlanes", "groups", "popcount", "registers")
        what = "; ".join(f"{k} {eng[k]}" for k in keys if k in eng) or json.dumps(eng)[:200]
        what += " (bitnet.kernels.isa.describe())"
    elif eng is not None:
        what = f"{eng} (bitnet.kernels.isa.describe())"
    else:
        what = (f"path {isa.get('source', 'guessed')}: this bitnet build does not describe its kernels "
                "(no bitnet.kernels.isa)")
    return how, what


def isa_paths_of(data: dict, host: str) -> list[tuple[str, str, str]]:
    """[(path, how selected, kernels)] for the host and every forced subprocess."""
    mi = data.get("machine_info") or {}
    out = [(host, *_isa_text(mi.get("isa") or {}, None))]
    for child in mi.get("isa_children") or []:
        isa = child.get("isa") or {}
        path = isa.get("path") or child.get("path", "?")
        out.append((path, *_isa_text(isa, child.get("env") or {})))
    return out


def section_isa(idx, roofs, data, host: str) -> list[str]:
    """Every bitnet path of the run beside the same run's peers, with % of roofline."""
    paths = isa_paths_of(data, host)
    out = _table(["path", "how it was selected", "kernels"],
                 [[f"{p}{' (host)' if i == 0 else ''}", how, what] for i, (p, how, what) in enumerate(paths)])
    if len(paths) == 1:
        out += ["", "No forced-path subprocess in this run (`test_isa_bench.py`; skipped, deselected, "
                    "or not an x86-64 host): only the host path below."]
    out += ["", "The peers ran once, on the host, with their own run-time CPU dispatch; every path is "
                "compared with those same rows. speed-up = peer median / bitnet median (**bold**: the "
                "peer is faster). % of roofline: the layer's binary MAC/s over the fastest roofline "
                "microbenchmark *of the same path* at the same thread count.", ""]
    lines, over = [], False
    bests = {p: best_roofline(roofs, p) for p in roofs}
    for group in ("kernels", "models"):
        g = idx.get(group, {})
        for key in sorted(g, key=lambda k: (_sort_key(k[0]), k[1], k[2])):
            runs = g[key]
            for brt in _bitnet_runtimes(runs):
                b = runs[brt]
                path = b["isa"] or host
                ratios = [fmt_ratio(runs[p]["median"] / b["median"]) if p in runs else "—" for p in ISA_PEERS]
                macs = b["info"].get("macs")
                rate = macs / b["median"] if macs else None
                pct, above = ("—", False)
                if group == "kernels":
                    pct, above = pct_of_roofline(rate, bests.get(path, {}), key[2])
                over = over or above
                lines.append([key[0], str(key[1]), str(key[2]), path + ("" if brt == "bitnet" else " (forced)"),
                              cell(b), *ratios, f"{rate / 1e9:.0f}" if rate and group == "kernels" else "—", pct])
    if not lines:
        return out + ["No bitnet rows in this run."]
    out += _table(["workload", "batch", "threads", "path", "bitnet", *[f"vs {LABELS[p]}" for p in ISA_PEERS],
                   "binary GMAC/s", "% of roofline"], lines)
    if over:
        out += ["", "‡ Above 100%: that path's roofline microbenchmark ran slower than the layer at that "
                    "thread count (a roofline call is microseconds of work; thread hand-off and a busy "
                    "machine dominate it); not meaningful."]
    out += ["", *section_rooflines(roofs)]
    return out


def section_rooflines(roofs) -> list[str]:
    if not roofs:
        return ["No roofline microbenchmark in this run."]
    lines = []
    for path in sorted(roofs):
        for threads in sorted(roofs[path]):
            several = len(roofs[path][threads]) > 1
            for i, (rate, r) in enumerate(roofs[path][threads]):
                lines.append([path + (" (forced)" if r["forced"] else ""), str(threads), roofline_method(r),
                              fmt_time(r["median"]), f"{rate / 1e12:.3g}" + (" (best)" if i == 0 and several else "")])
    return ["Roofline microbenchmarks per path (xor+popcount+add over an L1-resident array; a path "
            "is taken from the row's forced path, else from the benchmark name, else from the "
            "process it ran in):", "",
            *_table(["path", "threads", "microbenchmark", "median", "T binary MAC/s"], lines)]


def section_spread(rows, idx) -> list[str]:
    """Min / median / max of per-process medians, beside the spread within one process."""
    spread = [r for r in rows if r["group"] == "spread" and r["info"].get("process_medians")]
    if not spread:
        return ["No cross-process spread in this run (`test_isa_bench.py::test_process_spread`)."]
    lines = []
    for r in sorted(spread, key=lambda r: (_sort_key(r["workload"]), r["forced"], str(r["info"].get("isa")))):
        i = r["info"]
        isa = i.get("isa")
        path = ", ".join(isa) if isinstance(isa, list) else str(isa)
        meds = i["process_medians"]
        rt = f"bitnet@{isa}" if r["forced"] and isinstance(isa, str) else "bitnet"
        inproc = idx.get("kernels" if r["workload"] in ("L64", "L128", "L256") else "models", {}).get(
            (r["workload"], 1, 1), {}).get(rt)
        inproc_txt = (f"{fmt_time(inproc['median'])}, IQR {100 * inproc['iqr'] / inproc['median']:.0f}%"
                      if inproc else "—")
        lines.append([r["workload"], path + (" (forced)" if r["forced"] else ""), str(len(meds)),
                      fmt_time(min(meds)), fmt_time(statistics.median(meds)), fmt_time(max(meds)),
                      f"{max(meds) / min(meds):.2f}×", inproc_txt, " ".join(fmt_time(m) for m in meds)])
    return [
        "Each process (a new Python process, one after another) builds the workload, warms up, times "
        "its own calls (≥ 0.3 s and ≥ 20 calls) and reports their median; the table gives the spread "
        "of those medians across processes. \"In one process\" is the pytest-benchmark row of the "
        "same path (median and interquartile range within that process). Batch 1, one thread.", "",
        *_table(["workload", "path", "processes", "min", "median", "max", "max / min",
                 "in one process (median, IQR)", "per-process medians, in order"], lines)]


def section_sizes(idx) -> list[str]:
    """Model sizes per workload: bitnet's parameters, the float files, the INT8 file."""
    sizes: dict = defaultdict(dict)
    for g in ("kernels", "models"):
        for (w, _, _), runs in idx.get(g, {}).items():
            for rt, r in runs.items():
                if rt.startswith("bitnet@"):
                    continue
                n = r["info"].get("model_bytes") or r["info"].get("param_bytes")
                if n:
                    sizes[w].setdefault(rt, int(n))
    if not sizes:
        return ["No model sizes recorded in this run."]
    cols = [rt for rt in ("bitnet", "torch-float", "ort-float", "ort-int8") if any(rt in v for v in sizes.values())]
    lines = []
    for w in sorted(sizes, key=_sort_key):
        v = sizes[w]
        lines.append([w, *[fmt_bytes(v.get(rt)) for rt in cols],
                      f"{v['ort-int8'] / v['bitnet']:.1f}×" if "ort-int8" in v and "bitnet" in v else "—"])
    return ["bitnet: the `.bnn` file for `default`, else the bytes of the workload's tensors (packed "
            "weights, thresholds, first-layer and head floats; a `.bnn` adds a JSON header of a few KB). "
            "PyTorch: `torch.save(state_dict)`. ONNX Runtime: the `.onnx` file it ran (INT8: after "
            "quantisation).", "",
            *_table(["workload", *[LABELS[rt] for rt in cols], "INT8 file / bitnet"], lines)]


def section_threads(idx) -> list[str]:
    lines = []
    for group in ("kernels", "models"):
        g = idx.get(group, {})
        for (w, batch, threads), runs in sorted(g.items(), key=lambda kv: (_sort_key(kv[0][0]), kv[0][1])):
            if threads != 1 or "bitnet" not in runs:
                continue
            two = g.get((w, batch, 2), {}).get("bitnet")
            if two:
                lines.append([w, str(batch), fmt_time(runs["bitnet"]["median"]), fmt_time(two["median"]),
                              f"{runs['bitnet']['median'] / two['median']:.2f}×"])
    if not lines:
        return ["No bitnet rows at both 1 and 2 threads."]
    return _table(["workload", "batch", "1 thread", "2 threads", "2-thread speed-up (goal ≥ 1.8×)"], lines) + [
        "", "Two threads on a machine whose cores are busy with other work measure contention as much "
        "as scaling; compare with the load average under Noise below."]


def section_frontend(idx) -> list[str]:
    g = idx.get("frontend")
    if not g:
        return ["No `frontend` benchmarks in this run."]
    runtimes = sorted({rt for v in g.values() for rt in v}, key=lambda r: (r != "bitnet", r))
    peers = [r for r in runtimes if r != "bitnet"]
    header = ["case", "batch", "threads", *[LABELS.get(r, r) for r in runtimes],
              *[f"speed-up vs {LABELS.get(p, p)}" for p in peers]]
    lines = []
    for key in sorted(g):
        runs = g[key]
        b = runs.get("bitnet")
        ratios = [fmt_ratio(runs[p]["median"] / b["median"]) if b and p in runs else "—" for p in peers]
        lines.append([str(key[0]), str(key[1]), str(key[2]), *[cell(runs.get(r)) for r in runtimes], *ratios])
    return _table(header, lines)


def section_startup(idx) -> tuple[list[str], list[str]]:
    g = idx.get("startup")
    if not g:
        return ["No `startup` benchmarks in this run."], []
    header = ["runtime", "workload", "new process, start → exit (median)", "start → first answer",
              "import", "load", "first inference", "peak RSS", "model file"]
    lines, goals = [], []
    for key in sorted(g, key=lambda k: (_sort_key(k[0]), k[1])):
        for rt in ("bitnet", *PEERS):
            r = g[key].get(rt)
            if r is None:
                continue
            i = r["info"]
            rss = i.get("peak_rss_mb")
            n = i.get("rss_inferences")
            lines.append([LABELS[rt], key[0], fmt_time(r["median"]), fmt_time(i.get("process_first_s")),
                          fmt_time(i.get("import_s")),
                          fmt_time(i.get("load_s")), fmt_time(i.get("first_inference_s")),
                          f"{rss:.0f} MB ({n} inferences)" if rss else "—",
                          f"{fmt_bytes(i.get('model_bytes'))} ({i.get('model_file', '')})"])
            if rt == "bitnet" and key[0] == "default-clip":
                ok_t = r["median"] <= 0.6
                ok_m = rss is not None and rss <= 100
                goals.append(f"- bitnet start-up (new process: import, load the default model, classify "
                             f"one clip, exit): {fmt_time(r['median'])}, goal ≤ 0.6 s: "
                             f"{'met' if ok_t else '**not met**'}.")
                goals.append(f"- bitnet peak RSS of that process after {n} clips: {rss:.0f} MB, goal ≤ 100 MB: "
                             f"{'met' if ok_m else '**not met**'}." if rss else "- bitnet peak RSS: not measured.")
    return _table(header, lines), goals


# ----------------------------------------------------------------------------- charts


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def chart_groups(idx, group: str, path: Path, runtimes, title: str, host: str | None = None) -> bool:
    g = idx.get(group)
    if not g:
        return False
    plt = _plt()
    workloads = sorted({k[0] for k in g if k[0] != "roofline"}, key=_sort_key)
    if not workloads:
        return False
    configs = sorted({(k[1], k[2]) for k in g if k[0] != "roofline"})
    runtimes = [r for r in runtimes if any(r in v for v in g.values())]
    fig, axes = plt.subplots(1, len(workloads), figsize=(max(9.0, 3.6 * len(workloads)), 4.4), squeeze=False)
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    for ax, w in zip(axes[0], workloads):
        cfgs = [c for c in configs if (w, *c) in g]
        present = [rt for rt in runtimes if any(rt in g[(w, *c)] for c in cfgs)]
        width = 0.8 / max(len(present), 2)
        for j, rt in enumerate(present):
            xs, ys = [], []
            for i, c in enumerate(cfgs):
                r = g[(w, *c)].get(rt)
                if r:
                    xs.append(i + (j - (len(present) - 1) / 2) * width)
                    ys.append(r["median"] * 1e3)
            ax.bar(xs, ys, width, color=COLORS.get(rt))
        ax.set_yscale("log")
        vals = [r["median"] * 1e3 for c in cfgs for r in g[(w, *c)].values()]
        ax.set_ylim(min(vals) / 4, max(vals) * 1.6)  # bars start well below the smallest
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_xticks(range(len(cfgs)))
        ax.set_xticklabels([f"b{b}\n{t}T" for b, t in cfgs], fontsize=8)
        ax.set_title(w)
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0][0].set_ylabel("median time per call, ms (log)")
    handles = [Patch(color=COLORS.get(rt), label=f"bitnet ({host} path)" if rt == "bitnet" and host else label(rt))
               for rt in runtimes]
    ncol = min(len(handles), 4)
    legend_rows = -(-len(handles) // ncol)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False, fontsize=9)
    fig.suptitle(title + "\n(b = batch, T = threads; median per call, lower is better)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06 * legend_rows + 0.02, 1, 0.93))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def chart_startup(idx, path: Path) -> bool:
    g = idx.get("startup")
    if not g:
        return False
    plt = _plt()
    items = []
    for key in sorted(g, key=lambda k: (_sort_key(k[0]), k[1])):
        for rt in ("bitnet", *PEERS):
            r = g[key].get(rt)
            if r:
                items.append((f"{LABELS[rt]}\n{key[0]}", rt, r))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 0.55 * len(items) + 1.6))
    ys = range(len(items))
    a1.barh(ys, [r["median"] for _, _, r in items], color=[COLORS[rt] for _, rt, _ in items])
    a1.axvline(0.6, color="k", ls="--", lw=1, label="bitnet goal 0.6 s")
    a1.set_xlabel("new process: import, load, 1 inference, exit (s)")
    a1.set_yticks(list(ys))
    a1.set_yticklabels([lab for lab, _, _ in items], fontsize=8)
    a1.invert_yaxis()
    a1.legend(fontsize=8)
    a2.barh(ys, [r["info"].get("peak_rss_mb") or 0 for _, _, r in items],
            color=[COLORS[rt] for _, rt, _ in items])
    a2.axvline(100, color="k", ls="--", lw=1, label="bitnet goal 100 MB")
    a2.set_xlabel("peak RSS, MB")
    a2.set_yticks(list(ys))
    a2.set_yticklabels([])
    a2.invert_yaxis()
    a2.legend(fontsize=8)
    fig.suptitle("Start-up and memory, fresh process, batch 1, 1 thread (lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ----------------------------------------------------------------------------- report


def machine_section(data: dict) -> list[str]:
    mi = data.get("machine_info") or {}
    ci = data.get("commit_info") or {}
    vers = mi.get("versions") or {}
    out = [
        f"- CPU: {mi.get('cpu_model') or mi.get('cpu', {}).get('brand_raw', '?')}, "
        f"{mi.get('cpu_count', '?')} logical cores ({mi.get('cpu_affinity', '?')} usable by the run)",
        f"- SIMD flags: {' '.join(f for f in mi.get('cpu_flags', []) if 'avx512' in f or f == 'avx2') or '?'}",
        f"- load average at start (1/5/15 min): {mi.get('loadavg_at_start') or '?'}",
        f"- Python {mi.get('python_version', vers.get('python', '?'))} ({mi.get('python_implementation', '')}), "
        + ", ".join(f"{k} {v}" for k, v in vers.items() if k != "python" and v),
        f"- thread settings: {mi.get('thread_settings', '?')}; environment: "
        + (", ".join(f"{k}={v}" for k, v in (mi.get("thread_env") or {}).items() if v) or "no thread variables set"),
        f"- source: commit {mi.get('source_commit') or ci.get('id', '?')}"
        f"{' (dirty working tree)' if not mi.get('source_commit') and ci.get('dirty') else ''}; "
        f"run started {data.get('datetime', '?')}",
    ]
    return out


README_BEGIN = "<!-- generated by python -m benchmarks.report --readme: begin -->"
README_END = "<!-- generated by python -m benchmarks.report --readme: end -->"


def readme_table(idx, roofs, data, host: str) -> list[str]:
    """The README's speed table: batch 1, one thread, every bitnet path of the run beside
    the same run's peers (medians; speed-up = peer / bitnet), plus % of each path's best
    roofline for the layers."""
    bests = {p: best_roofline(roofs, p) for p in roofs}
    lines = []
    for group in ("kernels", "models"):
        g = idx.get(group, {})
        for key in sorted(g, key=lambda k: _sort_key(k[0])):
            w, batch, threads = key
            if batch != 1 or threads != 1 or w == "default-clip":
                continue
            runs = g[key]
            for brt in _bitnet_runtimes(runs):
                b = runs[brt]
                path = b["isa"] or host
                peers = [runs.get(p) for p in ISA_PEERS]
                pct = "—"
                macs = b["info"].get("macs")
                if group == "kernels" and macs:
                    pct, _ = pct_of_roofline(macs / b["median"], bests.get(path, {}), 1)
                name = "bundled digits model" if w == "default" else w
                lines.append([name, path + ("" if brt == "bitnet" else " (forced)"), cell(b),
                              *[cell(p) for p in peers],
                              " / ".join(fmt_ratio(p["median"] / b["median"]) if p else "—" for p in peers[1:]),
                              pct])
    out = _table(["workload", "bitnet path", "bitnet", *[LABELS[p] for p in ISA_PEERS],
                  "speed-up vs ORT float / INT8", "% of roofline"], lines)
    mi = data.get("machine_info") or {}
    out = [f"Batch 1, one thread, medians of one `pytest benchmarks` run on {mi.get('cpu', {}).get('brand_raw', 'this machine')} "
           f"(commit `{str(mi.get('source_commit', '?'))[:10]}`); the peers ran on the host with their own CPU "
           "dispatch, the forced paths are bitnet's kernels compiled for that target on the same "
           "machine. **Bold**: the peer is faster. † noisy median. % of roofline: binary MAC/s over the "
           "fastest roofline microbenchmark of the same path (`benchmarks/results/REPORT.md` has "
           "batch 64, 2 threads, spread across processes, start-up and memory).", "", *out]
    return out


def update_readme(readme: Path, lines: list[str]) -> bool:
    """Replace the text between the README's markers with ``lines``; False if no markers."""
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        return False
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(head + README_BEGIN + "\n" + "\n".join(lines) + "\n" + README_END + tail)
    return True


def build_report(json_path: Path, out_dir: Path, readme: Path | None = None) -> Path:
    data, rows = load_rows(json_path)
    idx = index(rows)
    host = host_isa(data)
    roofs = rooflines(rows)
    forced = sorted({r["runtime"] for r in rows if r["runtime"].startswith("bitnet@")})
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = {
        "models": chart_groups(idx, "models", out_dir / "models.png", ("bitnet", *forced, *PEERS),
                               "Whole models on log-mel features", host),
        "kernels": chart_groups(idx, "kernels", out_dir / "kernels.png", ("bitnet", *forced, *ISA_PEERS),
                                "One 3×3 conv layer", host),
        "frontend": chart_groups(idx, "frontend", out_dir / "frontend.png", ("bitnet", "librosa"),
                                 "Log-mel frontend"),
        "startup": chart_startup(idx, out_dir / "startup.png"),
    }
    try:
        src = json_path.resolve().relative_to(REPO)
    except ValueError:
        src = json_path
    slow, compared = slower_lines(idx, host)
    if not compared:
        slow = ["- **No comparison possible: this run has no bitnet row paired with a peer.**"]
    elif not slow:
        slow = [f"Nowhere in this run: bitnet is faster than the peer in all {compared} "
                "(row, bitnet path, peer) pairs that have a bitnet median (PyTorch float32, PyTorch "
                "binarized, ONNX Runtime float32 and INT8; librosa for the frontend)."]
    slow += unpaired_lines(idx)
    skipped_path = Path(str(json_path) + ".skipped.json")
    skipped = json.loads(skipped_path.read_text()) if skipped_path.is_file() else []
    by_reason = defaultdict(list)
    for s in skipped:
        by_reason[s["reason"]].append(s["test"].split("::")[-1])
    skipped_md = [f"- {len(tests)} skipped ({', '.join(tests[:4])}{', …' if len(tests) > 4 else ''}): {reason}"
                  for reason, tests in by_reason.items()]
    startup_table, goals = section_startup(idx)
    loads = [r["info"]["loadavg_1min"] for r in rows if "loadavg_1min" in r["info"]]
    md = [
        "# bitnet benchmark report",
        "",
        f"Generated by `python -m benchmarks.report` from `{src}` ({len(rows)} benchmarks, one run). "
        "Times are pytest-benchmark medians per call. Every ratio compares rows of this one run: "
        "speed-up = peer median / bitnet median (above 1: bitnet is faster; below 1 in **bold**).",
        "",
        "Peers: PyTorch float32 = the float twin in eager mode under `torch.inference_mode()`; "
        "PyTorch binarized = the trainer's binarized model itself (what a trainer user would deploy "
        "without bitnet); ONNX Runtime float32 = the float twin exported to ONNX "
        "(intra-op threads = N, inter-op = 1); ONNX Runtime INT8 = that ONNX model quantised "
        "statically with `onnxruntime.quantization.quantize_static` (QDQ, per-channel INT8 weights, "
        "INT8 activations, min/max calibration on a few seeded random inputs). Threads: "
        "`torch.set_num_threads`, `bitnet.set_num_threads`. Random weights (speed does not depend "
        "on them).",
        "",
        (f"bitnet's kernels took the **{host}** path in this run's own process (`machine_info.isa`); "
         "rows of other paths come from subprocesses with the CPU target forced (see \"bitnet per "
         "ISA path\")." if host != "host" else
         "This run did not record the ISA path of bitnet's kernels (it predates that record); "
         "its bitnet rows are labelled \"host\"."),
        "",
        "## Where a peer wins (bitnet is slower)",
        "",
        *slow,
        "",
        "## Models (batch 1 and 64, 1 and 2 threads)",
        "",
        *section_models(idx),
        "",
        *(["![models](models.png)", ""] if charts["models"] else []),
        "## Layers L64 / L128 / L256 (one 3×3 same conv; bitnet: packed bits in → packed bits out)",
        "",
        *section_kernels(idx, roofs, host),
        "",
        *(["![kernels](kernels.png)", ""] if charts["kernels"] else []),
        "## bitnet per ISA path (same run, same peers)",
        "",
        *section_isa(idx, roofs, data, host),
        "",
        "## Spread across processes",
        "",
        *section_spread(rows, idx),
        "",
        "## Model size",
        "",
        *section_sizes(idx),
        "",
        "## bitnet thread scaling",
        "",
        *section_threads(idx),
        "",
        "## Frontend (log-mel)",
        "",
        *section_frontend(idx),
        "",
        *(["![frontend](frontend.png)", ""] if charts["frontend"] else []),
        "## Start-up, memory and model size (fresh process, batch 1, 1 thread)",
        "",
        "\"New process, start → exit\" is the wall time of a whole new Python process that imports "
        "the runtime, loads the model file, runs one inference and exits (median of the timed "
        "processes; an untimed warm-up process ran first, so numba's cache is warm); \"start → first "
        "answer\" is the same process's wall time until its first result, seen from the parent. "
        "Import/load/first inference are measured inside the process. "
        "Peak RSS is the peak resident set (`VmHWM`) of a process that ran the stated number of "
        "inferences (not `ru_maxrss`, which on Linux inherits the parent's peak across fork+exec). "
        "`default-clip` classifies a real .wav clip, frontend included; the other rows run on "
        "features.",
        "",
        *startup_table,
        "",
        *goals,
        *([""] if goals else []),
        *(["![startup](startup.png)", ""] if charts["startup"] else []),
        "## Not measured in this run",
        "",
        *(skipped_md or ["Nothing was skipped." if skipped_path.is_file() else
                         f"(no `{skipped_path.name}` beside the JSON, so skips are unknown)"]),
        "",
        "## Machine and versions",
        "",
        *machine_section(data),
        "",
        "## Noise",
        "",
        f"† marks a median whose interquartile range exceeds {NOISY_IQR:.0%} of it. "
        + (f"1-minute load average seen by the benchmarks: {min(loads):.1f}–{max(loads):.1f} "
           f"(the machine is shared; figures are noisy, ratios are only meaningful within this run)."
           if loads else ""),
        "",
        "## Regenerate",
        "",
        "```bash",
        "pytest benchmarks --benchmark-only --benchmark-json=benchmarks/results/latest.json",
        "python -m benchmarks.report --readme",
        "```",
        "",
    ]
    report = out_dir / "REPORT.md"
    report.write_text("\n".join(md))
    if readme is not None and not update_readme(readme, readme_table(idx, roofs, data, host)):
        print(f"report: no generated-table markers in {readme}; left it as it is", file=sys.stderr)
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", help="pytest-benchmark JSON (default: benchmarks/results/latest.json, "
                                   "else the newest .benchmarks/ autosave)")
    ap.add_argument("--out", default=str(HERE / "results"), help="output folder (default: benchmarks/results)")
    ap.add_argument("--readme", nargs="?", const=str(REPO / "README.md"), default=None,
                    help="also regenerate the speed table between the README's markers")
    args = ap.parse_args(argv)
    path = build_report(find_json(args.json), Path(args.out), Path(args.readme) if args.readme else None)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
