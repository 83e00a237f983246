"""Helpers of the hand-run benchmark scripts that write generated text into the docs."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_between(doc: Path, begin: str, end: str, body: str) -> None:
    """Replace the text between the markers ``begin`` and ``end`` of ``doc`` by ``body``."""
    text = doc.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f"{doc}: the markers {begin!r} and {end!r} are missing")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(head + begin + "\n" + body + "\n" + end + tail)
