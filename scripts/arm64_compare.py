#!/usr/bin/env python3
"""Compare two runs of ``bitnet infer --json --logits``: same labels, logits within float32 rounding.

Usage::

    python3 scripts/arm64_compare.py REFERENCE.jsonl OTHER.jsonl [--rtol 1e-5]

Used by scripts/arm64_emulated.sh (x86 reference, emulated ARM64 other), and usable for
any two machines. Prints one row per clip and a summary line; exits 1 when a clip is
missing on one side, a label or a window count differs, or a logit differs by more than
``rtol * max(1, |logit|)`` (``1e-5`` is ~100 float32 ulps: float32 rounding of
differently ordered sums, far below any change of a binary activation). Standard library
only, so it runs with any Python.
"""

from __future__ import annotations

import argparse
import json
import math
import sys


def _read(path: str) -> dict:
    rows = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"arm64_compare: {path}:{n}: not JSON ({e})")
            if "logits" not in r:
                sys.exit(f"arm64_compare: {path}:{n}: no logits (run bitnet infer with --json --logits)")
            rows[r["source"]] = r
    if not rows:
        sys.exit(f"arm64_compare: {path}: no results")
    return rows


def _softmax_mean(logits: list) -> list:
    probs = []
    for row in logits:
        m = max(row)
        e = [math.exp(v - m) for v in row]
        s = sum(e)
        probs.append([v / s for v in e])
    return [sum(col) / len(probs) for col in zip(*probs)]


def compare(ref: dict, other: dict, rtol: float) -> tuple[list, dict]:
    """Rows ``(source, ref label, other label, windows, max |dlogit|, problem)`` and a summary."""
    rows = []
    summary = {"clips": 0, "labels_equal": 0, "bit_identical": 0, "max_dlogit": 0.0, "max_dprob": 0.0, "failures": 0}
    for src in sorted(set(ref) | set(other)):
        a, b = ref.get(src), other.get(src)
        if a is None or b is None:
            rows.append((src, a and a["label"], b and b["label"], None, None, "missing on one side"))
            summary["failures"] += 1
            continue
        summary["clips"] += 1
        la, lb = a["logits"], b["logits"]
        problem = ""
        if len(la) != len(lb) or any(len(x) != len(y) for x, y in zip(la, lb)):
            rows.append((src, a["label"], b["label"], None, None, "different numbers of windows or classes"))
            summary["failures"] += 1
            continue
        worst, over = 0.0, False
        for x_row, y_row in zip(la, lb):
            for x, y in zip(x_row, y_row):
                d = abs(x - y)
                worst = max(worst, d)
                over |= d > rtol * max(1.0, abs(x))
        dprob = max(abs(p - q) for p, q in zip(_softmax_mean(la), _softmax_mean(lb)))
        summary["max_dlogit"] = max(summary["max_dlogit"], worst)
        summary["max_dprob"] = max(summary["max_dprob"], dprob)
        summary["bit_identical"] += worst == 0.0
        if a["label"] == b["label"]:
            summary["labels_equal"] += 1
        else:
            problem = "LABEL DIFFERS"
        if over:
            problem = (problem + "; " if problem else "") + f"logits differ by more than rtol={rtol:g}"
        summary["failures"] += bool(problem)
        rows.append((src, a["label"], b["label"], len(la), worst, problem))
    return rows, summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reference", help="JSON lines of the reference run (e.g. x86)")
    ap.add_argument("other", help="JSON lines of the run to check (e.g. emulated ARM64)")
    ap.add_argument("--rtol", type=float, default=1e-5, help="allowed |dlogit| / max(1, |logit|) (default 1e-5)")
    ap.add_argument("--names", default="x86,arm64", help="column names of the two runs (default x86,arm64)")
    args = ap.parse_args(argv)
    n_ref, n_other = (args.names.split(",") + ["other"])[:2]
    rows, s = compare(_read(args.reference), _read(args.other), args.rtol)
    width = max(len(r[0]) for r in rows)
    print(f"{'clip':<{width}}  {n_ref:>6}  {n_other:>6}  windows  max|dlogit|")
    for src, la, lb, nw, d, problem in rows:
        dtxt = "-" if d is None else f"{d:.3g}"
        print(f"{src:<{width}}  {la or '-':>6}  {lb or '-':>6}  {nw if nw is not None else '-':>7}  {dtxt:>11}"
              + (f"  {problem}" if problem else ""))
    print(
        f"labels identical on {s['labels_equal']}/{len(rows)} clips; logits bit-identical on "
        f"{s['bit_identical']}/{len(rows)}; max |dlogit| = {s['max_dlogit']:.3g}; "
        f"max |dprob| = {s['max_dprob']:.3g}"
    )
    print("OK: same labels, logits within float32 rounding" if not s["failures"] else f"FAILED on {s['failures']} clip(s)")
    return 1 if s["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
