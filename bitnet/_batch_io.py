"""Inputs and outputs of :func:`bitnet.batch`: listing an archive, and result files
that can be resumed.

Inputs
------
A source is a directory (walked recursively for audio files, sorted), a glob pattern
(``clips/**/*.wav``), a CSV or Parquet manifest, or one audio file; local paths or
fsspec URLs (``s3://bucket/clips/``, ``gs://…``, ``file://…``; fsspec and its
filesystem package must be installed). A manifest has a ``path`` column (or, in a CSV
without a header, paths in the first column) and optionally an ``id`` column. Every
input has an *id*, the key of its result row: the manifest's ``id`` where there is one,
else the path. The same id listed twice is one input (one row).

Outputs
-------
One row per input (:data:`COLUMNS`). ``.parquet`` (pyarrow) or ``.jsonl`` / ``.json``
(JSON Lines). Both are written so that a run can stop at any moment (a crash, a killed
job, Ctrl-C) and a rerun with the same output continues where it stopped, never writing
a row twice:

* JSON Lines are appended and flushed line by line; a torn last line (the process died
  while writing it) is cut off on resume and its input classified again.
* Parquet cannot be appended to, so rows go to numbered part files in
  ``OUTPUT.parts/`` (each written to a temporary name and renamed, so a part is there
  whole or not at all); when every input has a row, the parts and any earlier output are
  merged into ``OUTPUT`` (again through a rename) and the parts are removed.

Rows are keyed by id everywhere; a row whose id is already written is dropped, so a
retried task that delivers its rows twice still leaves one row per input.
"""

from __future__ import annotations

import csv
import glob as globmod
import json
import os
from pathlib import Path

from .errors import ParameterError

__all__ = ["COLUMNS", "list_inputs", "open_output", "is_url"]

#: Result columns, in order.
COLUMNS = ("id", "path", "label", "probability", "top_k", "windows", "model_hash", "error")

#: Extensions picked up when walking a directory or a URL prefix (explicit files are always tried).
AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .flac .ogg .oga .opus .mp3 .aif .aiff .aifc .au .snd .caf .w64 .rf64".split()
)
MANIFEST_EXTENSIONS = (".csv", ".parquet", ".pq")


def is_url(s: str) -> bool:
    """True for ``scheme://…`` strings (fsspec URLs), False for local paths."""
    return "://" in s


def _need(module: str, why: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        extra = "ray" if module.startswith("pyarrow") else module
        raise ParameterError(f"{why} needs {module.split('.')[0]}: pip install 'bitnet-audio[{extra}]'") from None


def _is_audio(name: str) -> bool:
    base = name.rstrip("/").rsplit("/", 1)[-1]
    return not base.startswith(".") and os.path.splitext(base)[1].lower() in AUDIO_EXTENSIONS


# --------------------------------------------------------------------------- inputs


def _manifest_rows(src: str) -> list[tuple[str, str]]:
    """``[(id, path)]`` from a CSV or Parquet manifest (local or URL)."""
    low = src.lower()
    where = src
    if low.endswith(".csv"):
        if "://" in src:
            fsspec = _need("fsspec", f"{where}: a manifest URL")
            with fsspec.open(src, "rt", newline="") as fh:
                rows = [r for r in csv.reader(fh) if r and not r[0].startswith("#")]
        else:
            try:
                with open(src, newline="") as fh:
                    rows = [r for r in csv.reader(fh) if r and not r[0].startswith("#")]
            except OSError as e:
                raise ParameterError(f"{where}: cannot read manifest: {e.strerror or e}") from None
        if not rows:
            return []
        head = [c.strip().lower() for c in rows[0]]
        if "path" in head:
            ip, iid = head.index("path"), head.index("id") if "id" in head else None
            rows = rows[1:]
        else:
            ip, iid = 0, None
        paths = [r[ip].strip() for r in rows]
        ids = [r[iid].strip() for r in rows] if iid is not None else paths
    else:
        pq = _need("pyarrow.parquet", f"{where}: a Parquet manifest")
        try:
            table = pq.read_table(src, columns=None)
        except Exception as e:  # pyarrow raises several types for unreadable files
            raise ParameterError(f"{where}: cannot read Parquet manifest: {' '.join(str(e).split())}") from None
        if "path" not in table.column_names:
            raise ParameterError(f"{where}: a Parquet manifest needs a 'path' column, has {table.column_names}")
        paths = [str(p) for p in table.column("path").to_pylist()]
        ids = [str(i) for i in table.column("id").to_pylist()] if "id" in table.column_names else paths
    base = os.path.dirname(src)
    out = []
    for i, p in zip(ids, paths):
        # relative paths in a local manifest are relative to the manifest
        if p and "://" not in p and not os.path.isabs(p) and "://" not in src:
            full = os.path.normpath(os.path.join(base, p))
            out.append((i if i != p else full, full))
        else:
            out.append((i, p))
    return out


def _url_listing(src: str) -> list[str]:
    fsspec = _need("fsspec", f"{src}: a URL")
    fs, root = fsspec.core.url_to_fs(src)
    proto = src.split("://", 1)[0]
    if globmod.has_magic(root):
        found = fs.glob(root)
    elif fs.isdir(root):
        found = [p for p in fs.find(root) if _is_audio(p)]
    else:
        found = [root]
    return sorted(f"{proto}://{p.lstrip('/')}" if proto != "file" else f"file:///{p.lstrip('/')}" for p in found)


def list_inputs(sources) -> list[tuple[str, str]]:
    """Expand sources into ``[(id, path_or_url)]``, in a stable order, ids unique.

    Parameters
    ----------
    sources : str, os.PathLike, or a list of these
        Directories, glob patterns, CSV/Parquet manifests, audio files; local or fsspec URLs.

    Returns
    -------
    list of (str, str)
        One ``(id, path)`` per input; the first occurrence of an id wins.

    Raises
    ------
    ParameterError
        A source that does not exist, a glob that matches nothing, an unreadable manifest.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    out: dict[str, str] = {}
    for raw in sources:
        src = os.fspath(raw)
        if src.lower().endswith(MANIFEST_EXTENSIONS):
            if "://" not in src and not os.path.isfile(src):
                raise ParameterError(f"{src}: no such manifest")
            items = _manifest_rows(src)
        elif "://" in src:
            items = [(p, p) for p in _url_listing(src)]
        elif globmod.has_magic(src):
            found = sorted(p for p in globmod.glob(src, recursive=True) if os.path.isfile(p))
            if not found:
                raise ParameterError(f"{src}: the pattern matches no files")
            items = [(p, p) for p in found]
        elif os.path.isdir(src):
            found = []
            for dirpath, dirnames, filenames in os.walk(src):
                dirnames.sort()
                found.extend(os.path.join(dirpath, f) for f in sorted(filenames) if _is_audio(f))
            if not found:
                raise ParameterError(f"{src}: no audio files in this directory")
            items = [(p, p) for p in found]
        elif os.path.exists(src):
            items = [(src, src)]
        else:
            raise ParameterError(f"{src}: no such file or directory")
        for i, p in items:
            out.setdefault(i, p)
    return list(out.items())


# --------------------------------------------------------------------------- outputs


def output_format(path: str, fmt: str | None) -> str:
    """``"parquet"`` or ``"jsonl"`` from an explicit choice or the output's extension."""
    if fmt is None:
        low = str(path).lower()
        if low.endswith((".parquet", ".pq")):
            fmt = "parquet"
        elif low.endswith((".jsonl", ".json", ".ndjson")):
            fmt = "jsonl"
        else:
            raise ParameterError(f"{path}: cannot tell the output format; name it .parquet or .jsonl, or pass format=")
    if fmt not in ("parquet", "jsonl"):
        raise ParameterError(f"output format must be 'parquet' or 'jsonl', got {fmt!r}")
    return fmt


def arrow_schema():
    """The pyarrow schema of a result table."""
    pa = _need("pyarrow", "Parquet output")
    return pa.schema([
        ("id", pa.string()),
        ("path", pa.string()),
        ("label", pa.string()),
        ("probability", pa.float64()),
        ("top_k", pa.list_(pa.struct([("label", pa.string()), ("probability", pa.float64())]))),
        ("windows", pa.int32()),
        ("model_hash", pa.string()),
        ("error", pa.string()),
    ])


def rows_to_table(rows: list[dict]):
    """A pyarrow table of result rows, in :func:`arrow_schema`."""
    pa = _need("pyarrow", "Parquet output")
    schema = arrow_schema()
    return pa.Table.from_pylist([{c: r.get(c) for c in COLUMNS} for r in rows], schema=schema)


class _JsonlOutput:
    def __init__(self, path: Path):
        self.path = path
        self.done: set[str] = set()
        self.errors = 0
        if path.exists():
            self._scan()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "a", encoding="utf-8")

    def _scan(self) -> None:
        good = 0
        with open(self.path, "rb") as fh:
            for line in fh:
                if not line.endswith(b"\n"):
                    break  # torn last line: written while the process died
                try:
                    row = json.loads(line)
                    rid = row["id"]
                except (ValueError, KeyError, TypeError):
                    raise ParameterError(
                        f"{self.path}: line {len(self.done) + 1} is not a bitnet result row; "
                        "refusing to append to it (choose another output)"
                    ) from None
                good += len(line)
                self.done.add(rid)
                self.errors += row.get("error") is not None
        if good != self.path.stat().st_size:
            with open(self.path, "r+b") as fh:
                fh.truncate(good)

    def write(self, rows: list[dict]) -> None:
        for r in rows:
            self.fh.write(json.dumps({c: r.get(c) for c in COLUMNS}, ensure_ascii=False) + "\n")
        self.fh.flush()

    def close(self, complete: bool) -> None:
        self.fh.close()


class _ParquetOutput:
    def __init__(self, path: Path, rows_per_part: int = 10_000):
        self.pq = _need("pyarrow.parquet", "Parquet output")
        self.path = path
        self.parts = path.with_name(path.name + ".parts")
        self.rows_per_part = rows_per_part
        self.pending: list[dict] = []
        self.done: set[str] = set()
        self.errors = 0
        for f in self._files():
            try:
                t = self.pq.read_table(f, columns=["id", "error"])
            except Exception as e:  # not Parquet, or not a bitnet result table
                raise ParameterError(
                    f"{f}: not a bitnet result file ({' '.join(str(e).split())[:200]}); "
                    "refusing to add to it (choose another output)"
                ) from None
            self.done.update(t.column("id").to_pylist())
            self.errors += len(t) - t.column("error").null_count
        self.seq = len(list(self.parts.glob("part-*.parquet"))) if self.parts.is_dir() else 0

    def _files(self) -> list[Path]:
        files = [self.path] if self.path.exists() else []
        if self.parts.is_dir():
            files += sorted(self.parts.glob("part-*.parquet"))
        return files

    def _flush(self) -> None:
        if not self.pending:
            return
        self.parts.mkdir(parents=True, exist_ok=True)
        while (self.parts / f"part-{self.seq:06d}.parquet").exists():
            self.seq += 1
        final = self.parts / f"part-{self.seq:06d}.parquet"
        tmp = final.with_suffix(".tmp")
        self.pq.write_table(rows_to_table(self.pending), tmp)
        os.replace(tmp, final)  # a part is there whole or not at all
        self.seq += 1
        self.pending = []

    def write(self, rows: list[dict]) -> None:
        self.pending.extend(rows)
        if len(self.pending) >= self.rows_per_part:
            self._flush()

    def close(self, complete: bool) -> None:
        self._flush()
        if not complete:
            return  # leave the parts for the rerun to pick up
        import pyarrow as pa

        files = self._files()
        if files == [self.path]:
            return
        tables = [self.pq.read_table(f, schema=arrow_schema()) for f in files]
        table = pa.concat_tables(tables) if tables else rows_to_table([])
        # keep the first row of each id: earlier output before new parts
        ids = table.column("id").to_pylist()
        seen, keep = set(), []
        for i, rid in enumerate(ids):
            if rid not in seen:
                seen.add(rid)
                keep.append(i)
        if len(keep) != len(ids):
            table = table.take(pa.array(keep))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.pq.write_table(table, tmp)
        os.replace(tmp, self.path)
        for f in self.parts.glob("part-*"):
            f.unlink()
        self.parts.rmdir()


def open_output(path, fmt: str | None = None, *, resume: bool = True):
    """Open a result file for appending rows; ``.done`` holds the ids already written.

    ``resume=False`` starts afresh (an existing output and its parts are removed).
    """
    path = Path(path)
    fmt = output_format(str(path), fmt)
    if not resume:
        parts = path.with_name(path.name + ".parts")
        if parts.is_dir():
            for f in parts.iterdir():
                f.unlink()
            parts.rmdir()
        if path.exists():
            path.unlink()
    return _ParquetOutput(path) if fmt == "parquet" else _JsonlOutput(path)
