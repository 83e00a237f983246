"""Child process of tests/test_isa.py: one ISA target, in the environment that forces it.

    python tests/_isa_child.py OUT.json [TEST_FILE ...]

Runs the given kernel agreement test files (the small tier: pytest's default markers)
in this process, then classifies every clip of ``examples/`` with the default model,
and writes OUT.json: the compile target numba used, pytest's exit status, and per clip
the label and the logits and probabilities as raw float32 bytes (hex), for the parent
to compare bit for bit across targets. Kernels compiled for the tests are reused by the
classification (one compile per target).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def isa_info() -> dict:
    """What numba compiles for here (honours NUMBA_CPU_NAME / NUMBA_CPU_FEATURES)."""
    info = {
        "NUMBA_CPU_NAME": os.environ.get("NUMBA_CPU_NAME"),
        "NUMBA_CPU_FEATURES": os.environ.get("NUMBA_CPU_FEATURES"),
        "BITNET_AOT": os.environ.get("BITNET_AOT", "1"),
    }
    try:
        from numba.core.registry import cpu_target

        cg = cpu_target.target_context.codegen()
        info["cpu_name"] = cg._get_host_cpu_name()          # numba-private; informative only
        feats = cg._get_host_cpu_features()
        info["features"] = sorted(f[1:] for f in feats.split(",") if f.startswith("+"))
    except Exception as e:  # noqa: BLE001 - a report, never a failure
        info["cpu_name"] = f"unknown ({type(e).__name__}: {e})"
    # the path the kernels in use report they were compiled for (bitnet.kernels.isa);
    # the parent asserts that every target took its own path
    from bitnet.kernels import isa

    info["path"] = isa.describe()["path"]
    return info


def _hex(a: np.ndarray) -> str:
    return np.ascontiguousarray(a, dtype=np.float32).tobytes().hex()


def classify() -> dict:
    import bitnet

    model = bitnet.load()
    clips = {}
    for p in sorted((REPO / "examples").glob("*.wav")):
        feats, _ = model.windows(model.read_audio(p))
        logits = model.logits(feats)
        pred = model.predict(p)
        clips[p.name] = {
            "label": pred.label,
            "logits": _hex(logits),
            "probabilities": _hex(pred.window_probabilities),
        }
    return clips


def main(argv: list[str]) -> int:
    out, tests = Path(argv[0]), argv[1:]
    result = {"isa": isa_info(), "pytest": None, "seconds": {}}
    if tests:
        import pytest

        t0 = time.perf_counter()
        result["pytest"] = int(pytest.main(["-q", "-p", "no:cacheprovider", "-x", *tests]))
        result["seconds"]["tests"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    result["clips"] = classify()
    result["seconds"]["classify"] = round(time.perf_counter() - t0, 1)
    out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
