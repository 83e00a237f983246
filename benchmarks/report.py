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
a number above 1 means bitnet is faster. Wherever bitnet is slower than a float peer the
report says so in a line of its own.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_JSON = HERE / "results" / "latest.json"

PEERS = ("torch-float", "torch-bnn", "ort-float")
FLOAT_PEERS = ("torch-float", "ort-float")
LABELS = {
    "bitnet": "bitnet",
    "torch-float": "PyTorch float32",
    "torch-bnn": "PyTorch binarized",
    "ort-float": "ONNX Runtime float32",
    "librosa": "librosa",
    "roofline": "binary roofline",
}
COLORS = {"bitnet": "#1b9e77", "torch-float": "#d95f02", "torch-bnn": "#e7298a",
          "ort-float": "#7570b3", "librosa": "#666666"}
WORKLOAD_ORDER = ["L64", "L128", "L256", "LC-BNN", "KWS-BNN-M", "default", "default-clip"]
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


def load_rows(path: Path) -> tuple[dict, list[dict]]:
    text = path.read_text()
    if not text.strip():
        sys.exit(f"report: {path} is empty (runs with --benchmark-disable, or where every benchmark "
                 "was skipped, time nothing and write no data)")
    data = json.loads(text)
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
        }
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
    """{group: {(workload, batch, threads): {runtime: row}}}."""
    idx: dict = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        idx[r["group"]][(r["workload"], r["batch"], r["threads"])][r["runtime"]] = r
    return idx


def cell(row) -> str:
    if row is None:
        return "—"
    noisy = row["iqr"] > NOISY_IQR * row["median"]
    return fmt_time(row["median"]) + (" †" if noisy else "")


def slower_lines(idx) -> tuple[list[str], int]:
    """One sentence per (row, float peer) where bitnet's median is above the peer's,
    and the number of (row, float peer) pairs compared."""
    out, compared = [], 0
    for group in ("kernels", "models", "frontend"):
        for key in sorted(idx.get(group, {}), key=lambda k: (_sort_key(k[0]), k[1], k[2])):
            runs = idx[group][key]
            b = runs.get("bitnet")
            if b is None:
                continue
            peers = PEERS if group != "frontend" else ("librosa",)
            for p in peers:
                compared += p in runs
                if p in runs and runs[p]["median"] < b["median"]:
                    w, batch, threads = key
                    out.append(
                        f"- **bitnet is slower than {LABELS[p]} on {w}, batch {batch}, "
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


def roofline_by_threads(idx) -> dict[int, float]:
    """Binary MAC/s of the roofline microbenchmark, per thread count."""
    out = {}
    for group in idx.values():
        for (w, batch, threads), runs in group.items():
            r = runs.get("roofline")
            if r and r["info"].get("macs"):
                out[threads] = r["info"]["macs"] / r["median"]
    return out


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


def section_kernels(idx) -> list[str]:
    g = idx.get("kernels")
    if not g:
        return ["No `kernels` benchmarks in this run."]
    roof = roofline_by_threads(idx)
    layer_keys = [k for k in g if "roofline" not in g[k] or len(g[k]) > 1]
    layer_keys = [k for k in layer_keys if k[0] != "roofline"]
    runtimes = [rt for rt in ("bitnet", "torch-float", "ort-float") if any(rt in g[k] for k in layer_keys)]
    peers = [p for p in ("torch-float", "ort-float") if p in runtimes]
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
        pct = "—"
        if rate and key[2] in roof:
            frac = rate / roof[key[2]]
            pct = f"{100 * frac:.0f}%" + (" ‡" if frac > 1 else "")
            over = over or frac > 1
        lines.append([key[0], str(key[1]), str(key[2]), *[cell(runs.get(r)) for r in runtimes], *ratios,
                      f"{rate / 1e9:.0f}" if rate else "—", pct])
    out = _table(header, lines)
    if roof:
        out += ["", "Binary roofline (xor+popcount+add microbenchmark, same run): " + ", ".join(
            f"{t} thread{'s' if t > 1 else ''}: {v / 1e12:.3g} T binary MAC/s" for t, v in sorted(roof.items())) + "."]
        if over:
            out += ["", "‡ Above 100%: the roofline microbenchmark at that thread count ran slower than the "
                        "layer itself (one roofline call is a few microseconds of work, so thread hand-off "
                        "and a busy machine dominate it); that percentage is not meaningful."]
    else:
        out += ["", "No roofline microbenchmark in this run, so no % of roofline."]
    return out


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


def chart_groups(idx, group: str, path: Path, runtimes, title: str) -> bool:
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
    handles = [Patch(color=COLORS.get(rt), label=LABELS[rt]) for rt in runtimes]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.suptitle(title + "\n(b = batch, T = threads; median per call, lower is better)", fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.93))
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


def build_report(json_path: Path, out_dir: Path) -> Path:
    data, rows = load_rows(json_path)
    idx = index(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = {
        "models": chart_groups(idx, "models", out_dir / "models.png", ("bitnet", *PEERS),
                               "Whole models on log-mel features"),
        "kernels": chart_groups(idx, "kernels", out_dir / "kernels.png", ("bitnet", "torch-float", "ort-float"),
                                "One 3×3 conv layer"),
        "frontend": chart_groups(idx, "frontend", out_dir / "frontend.png", ("bitnet", "librosa"),
                                 "Log-mel frontend"),
        "startup": chart_startup(idx, out_dir / "startup.png"),
    }
    try:
        src = json_path.resolve().relative_to(REPO)
    except ValueError:
        src = json_path
    slow, compared = slower_lines(idx)
    if not compared:
        slow = ["- **No comparison possible: this run has no bitnet row paired with a peer.**"]
    elif not slow:
        slow = [f"Nowhere in this run: bitnet is faster than the peer in all {compared} "
                "(row, peer) pairs that have a bitnet median (PyTorch float32, PyTorch binarized, "
                "ONNX Runtime float32; librosa for the frontend)."]
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
        "(intra-op threads = N, inter-op = 1). Threads: `torch.set_num_threads`, "
        "`bitnet.set_num_threads`. Random weights (speed does not depend on them).",
        "",
        "## Where bitnet is slower than a peer",
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
        *section_kernels(idx),
        "",
        *(["![kernels](kernels.png)", ""] if charts["kernels"] else []),
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
        "python -m benchmarks.report",
        "```",
        "",
    ]
    report = out_dir / "REPORT.md"
    report.write_text("\n".join(md))
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", help="pytest-benchmark JSON (default: benchmarks/results/latest.json, "
                                   "else the newest .benchmarks/ autosave)")
    ap.add_argument("--out", default=str(HERE / "results"), help="output folder (default: benchmarks/results)")
    args = ap.parse_args(argv)
    path = build_report(find_json(args.json), Path(args.out))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
