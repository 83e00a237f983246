"""Before and after: graph medians of an older checkout and of this one, alternating.

    python -m benchmarks.before_after OLD_CHECKOUT OUT.md [--rounds 3] [--label "..."]

Runs ``benchmarks/graph_medians.py`` (the reference workloads, the transformer and the
bundled model; batch 1, one thread) in fresh processes, old and new in turn, ``--rounds``
times, the old code imported from ``OLD_CHECKOUT`` (``PYTHONPATH``), and writes the
median of the per-process medians and the ratio old / new per workload (above 1: faster
now) with every raw line. Same machine, same minutes: the ratios are the figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "graph_medians.py"


def _run(root: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, str(SCRIPT)], cwd=root, env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _rev(root: Path) -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                          text=True).stdout.strip() or "?"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.before_after", description=__doc__.split("\n\n")[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--label", default="")
    a = ap.parse_args(argv)
    old, new, raw = [], [], []
    for _ in range(a.rounds):
        old.append(_run(a.old.resolve()))
        new.append(_run(REPO))
        raw += [f"old {json.dumps(old[-1])}", f"new {json.dumps(new[-1])}"]
    names = [k for k in new[0] if k in old[0]]
    lines = [f"# Before and after{': ' + a.label if a.label else ''}", "",
             f"Old: commit {_rev(a.old)}, new: commit {_rev(REPO)} (and its working tree); {a.rounds} rounds, old "
             "and new alternating, each a fresh process (`python -m benchmarks.before_after`: "
             "`benchmarks/graph_medians.py`, graph medians over 1.5 s, batch 1, one thread). Median of "
             "the per-process medians, µs; ratio = old / new (above 1: faster now).", "",
             "| workload | old | new | old / new |", "|---|---|---|---|"]
    for k in names:
        o, n = statistics.median(r[k] for r in old), statistics.median(r[k] for r in new)
        lines.append(f"| {k} | {o:.1f} | {n:.1f} | {o / n:.2f}× |")
    lines += ["", "Raw per-process medians:", "", "```", *raw, "```"]
    a.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
