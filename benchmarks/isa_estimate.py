"""Static throughput estimate of the binary block kernels per instruction-set path.

For each path of :data:`bitnet.kernels.isa.PATHS` and each target CPU, the hot loop of
a binary convolution (one pixel × one block of ``L`` output channels × ``G`` window
words, threshold output: what :func:`bitnet.kernels.bconv._row_threshold` runs) is
emitted by the project's own block intrinsics, compiled by LLVM for that CPU
(llvmlite, the LLVM numba uses) and handed to ``llvm-mca``, LLVM's machine-code
analyser, which reports the loop's reciprocal throughput in cycles from the CPU's
scheduling model. Binary MACs per cycle = ``64·L·G`` / cycles per iteration,
including every load. No ARM hardware is needed: this is how the ARM64 figures are
obtained, and they are estimates, not measurements.

Run: ``python -m benchmarks.isa_estimate [--json out.json]`` (needs ``llvm-mca``,
Debian package ``llvm``). Writes ``benchmarks/results/isa_estimate.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

#: (path, triple, cpu, mca cpu, hand-computed limit in binary MACs per cycle, why)
TARGETS = [
    ("avx512", "x86_64-unknown-linux-gnu", "znver4", "znver4", None, ""),
    ("avx512", "x86_64-unknown-linux-gnu", "icelake-server", "icelake-server", None, ""),
    ("avx2", "x86_64-unknown-linux-gnu", "haswell", "haswell", 128.0,
     "3 vector ALU ports, 6 ops per 256 bits (2 vpxor, 2 vpshufb on port 5, 2 vpaddb): 256/2"),
    ("avx2", "x86_64-unknown-linux-gnu", "znver3", "znver3", 170.7,
     "4 vector pipes, 6 ops per 256 bits, vpshufb on 2 pipes: 256/(6/4)"),
    ("generic", "x86_64-unknown-linux-gnu", "x86-64", "x86-64", None, ""),
    ("neon", "aarch64-unknown-linux-gnu", "cortex-a72", "cortex-a72", 85.3,
     "2 ASIMD pipes (F0, F1), 3 ops per 128 bits (eor, cnt, add): 128/(3/2)"),
    # LLVM has no scheduling model of its own for cortex-a76; Neoverse N1 is the same
    # core design (Arm "Ares") for servers, and its model stands in for it
    ("neon", "aarch64-unknown-linux-gnu", "cortex-a76", "neoverse-n1", 85.3,
     "2 ASIMD pipes, 3 ops per 128 bits (eor, cnt, add): 128/(3/2)"),
]


def _probe_ir(path: str, L: int, G: int) -> str:
    """Optimised LLVM IR of a pixel loop of ``block_thresh`` for block width ``L``
    and group size ``G`` (constants), emitted for ``path``."""
    import numba
    from numba import njit

    from bitnet.kernels import isa
    from bitnet.kernels._common import block_thresh

    isa._forced_path = path

    def probe(wt, xr, acc, bound, out, n):
        for xo in range(n):
            out[xo] = block_thresh(wt, 0, acc, False, L, G, xr, xo, bound, 0)

    # lowered to LLVM IR only (``no_compile``): the IR is compiled below for the target
    # CPU, which need not be this one (AArch64 intrinsics cannot run through x86)
    from numba.core import compiler
    from numba.core.registry import cpu_target

    R = 2 * L if isa.PATHS[path]["nibbles"] else L
    args = (np.zeros((1, G, R), np.uint64), np.zeros((G, 4), np.uint64), np.zeros(64, np.int64),
            np.zeros(64, np.int64), np.zeros(4, np.int64), 4)
    flags = compiler.Flags()
    flags.no_compile = True
    flags.no_cpython_wrapper = True
    flags.no_cfunc_wrapper = True
    flags.nrt = False
    flags.error_model = "numpy"
    cres = compiler.compile_extra(cpu_target.typing_context, cpu_target.target_context, probe,
                                  tuple(numba.typeof(a) for a in args), None, flags, {})
    return str(cres.library._final_module)


def _retarget(ir: str, triple: str) -> str:
    """Strip the host's target attributes so LLVM can compile the IR for ``triple``."""
    ir = re.sub(r'^target datalayout = .*$', '', ir, flags=re.M)
    ir = re.sub(r'^target triple = .*$', f'target triple = "{triple}"', ir, flags=re.M)
    ir = re.sub(r'"target-cpu"="[^"]*"', '', ir)
    ir = re.sub(r'"target-features"="[^"]*"', '', ir)
    ir = re.sub(r'"prefer-vector-width"="[^"]*"', '', ir)
    return re.sub(r'\{\s*\}', '{ nounwind }', ir)


def _asm(ir: str, triple: str, cpu: str) -> str:
    import llvmlite.binding as ll

    ll.initialize_all_targets()
    ll.initialize_all_asmprinters()
    mod = ll.parse_assembly(_retarget(ir, triple))
    tm = ll.Target.from_triple(triple).create_target_machine(cpu=cpu, features="", opt=3)
    mod.triple = triple
    mod.data_layout = str(tm.target_data)
    mod.verify()
    pto = ll.create_pipeline_tuning_options(speed_level=3)
    pb = ll.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    return tm.emit_assembly(mod)


def _hot_loop(asm: str) -> list[str]:
    """Instructions of the largest loop (a label and a later branch back to it)."""
    lines = [ln.rstrip() for ln in asm.splitlines()]
    labels = {}
    best = []
    for i, ln in enumerate(lines):
        m = re.match(r"^(\.?L\w+):", ln.strip())
        if m:
            labels[m.group(1)] = i
            continue
        m = re.match(r"^\s*(j\w+|b\.\w+|b|cbnz|cbz|tbnz|tbz)\s+.*?(\.?L\w+)\s*$", ln)
        if m and m.group(2) in labels and labels[m.group(2)] < i:
            body = [x.strip() for x in lines[labels[m.group(2)] + 1:i + 1]]
            body = [x for x in body if x and not x.startswith((".", "#", "//", "@")) and not x.endswith(":")]
            if len(body) > len(best):
                best = body
    return best


def _mca_exe() -> str:
    """The newest llvm-mca installed (newer LLVM has more CPU models, e.g. Zen 4)."""
    found = sorted(Path("/usr/lib").glob("llvm-*/bin/llvm-mca"),
                   key=lambda p: int(re.sub(r"\D", "", p.parent.parent.name) or 0))
    exe = str(found[-1]) if found else shutil.which("llvm-mca")
    if exe is None:
        raise SystemExit("llvm-mca not found: apt-get install llvm (or llvm-19)")
    return exe


def _mca(loop: list[str], triple: str, cpu: str) -> dict:
    exe = _mca_exe()
    arch = "aarch64" if triple.startswith("aarch64") else "x86_64"
    out = subprocess.run([exe, f"-mtriple={arch}", f"-mcpu={cpu}", "-iterations=200"],
                         input="\n".join(loop) + "\n", capture_output=True, text=True)
    text = out.stdout + out.stderr
    got = {}
    for key, pat in (("rthroughput", r"Block RThroughput:\s*([\d.]+)"),
                     ("total_cycles", r"Total Cycles:\s*(\d+)"),
                     ("iterations", r"Iterations:\s*(\d+)"),
                     ("instructions", r"Instructions:\s*(\d+)")):
        m = re.search(pat, text)
        if m:
            got[key] = float(m.group(1))
    if "total_cycles" not in got:
        raise RuntimeError(f"llvm-mca failed for {cpu}: {text[-800:]}")
    got["cycles_per_iter"] = got["total_cycles"] / got["iterations"]
    got["spills"] = sum(1 for x in loop if re.search(r"\(%rsp\)|\[sp", x))
    got["loop_instructions"] = len(loop)
    return got


def estimate(targets=TARGETS):
    from bitnet.kernels import isa

    rows = []
    for path, triple, cpu, mca_cpu, limit, why in targets:
        for L in isa.PATHS[path]["lanes"]:
            G = 9
            ir = _probe_ir(path, L, G)
            loop = _hot_loop(_asm(ir, triple, cpu))
            m = _mca(loop, triple, mca_cpu)
            macs = 64 * L * G
            rows.append(dict(path=path, cpu=cpu, mca_cpu=mca_cpu, mca=Path(_mca_exe()).parent.parent.name, L=L, G=G, binary_macs_per_iter=macs,
                             mac_per_cycle=round(macs / m["cycles_per_iter"], 1), limit=limit,
                             limit_why=why, **m))
    return rows


def markdown(rows) -> str:
    out = ["| path | CPU (llvm-mca model) | block L×G | loop instr. | spills | cycles / iter (llvm-mca) | binary MACs / cycle | hand limit |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lim = f"{r['limit']:.0f}" if r["limit"] else "—"
        model = "" if r["mca_cpu"] == r["cpu"] else f" ({r['mca_cpu']})"
        out.append(f"| {r['path']} | {r['cpu']}{model} | {r['L']}×{r['G']} | {r['loop_instructions']} | {r['spills']} | "
                   f"{r['cycles_per_iter']:.1f} | {r['mac_per_cycle']:.0f} | {lim} |")
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "isa_estimate"))
    a = ap.parse_args(argv)
    rows = estimate()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out + ".json").write_text(json.dumps(rows, indent=1))
    md = ("# Static throughput of the binary block loop, per path and CPU\n\n"
          f"Generated by `python -m benchmarks.isa_estimate` ({Path(_mca_exe()).parent.parent.name} llvm-mca, "
          "the loop compiled by llvmlite's LLVM for each CPU). One iteration = one pixel × L output "
          "channels × G = 9 words, threshold output, every load included; binary MACs / cycle = "
          "64·L·G / cycles. Estimates from LLVM's scheduling models, not measurements; the hand limit "
          "counts vector instructions per 256 (x86) or 128 (ARM) weight bits over the core's vector "
          "pipes (see TARGETS in the script).\n\n" + markdown(rows))
    Path(a.out + ".md").write_text(md)
    sys.stdout.write(md)


if __name__ == "__main__":
    main()
