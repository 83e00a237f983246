"""Small helpers the evaluation scripts share for the files they regenerate."""

from __future__ import annotations

import hashlib
from pathlib import Path


def replace_between(doc: Path, begin: str, end: str, text: str) -> bool:
    """Replace what lies between the markers ``begin`` and ``end`` of ``doc`` with
    ``"\\n" + text`` (nothing happens when the file or either marker is missing); True
    when ``doc`` was rewritten."""
    doc = Path(doc)
    if not doc.exists():
        return False
    old = doc.read_text()
    if begin not in old or end not in old:
        return False
    a, b = old.index(begin) + len(begin), old.index(end)
    doc.write_text(old[:a] + "\n" + text + old[b:])
    return True


def file_sha256(path) -> str:
    """Hex SHA-256 of a file's bytes (which model file a recorded figure belongs to)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
