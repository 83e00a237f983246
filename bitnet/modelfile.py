"""The bitnet model file: a safetensors container with a checksummed JSON header.

Layout (``docs/graph.md``, "Container")
---------------------------------------
A model file is a plain `safetensors <https://github.com/huggingface/safetensors>`_
file, so any safetensors reader can list and read its arrays::

    [8 bytes]  N, the length of the JSON index, unsigned 64-bit little-endian
    [N bytes]  the JSON index: {"__metadata__": {...}, name: {"dtype", "shape",
               "data_offsets": [begin, end]}, ...}, padded with spaces so that the
               data starts on an 8-byte boundary
    [rest]     the tensor data, little-endian, back to back, no holes, nothing after

The index metadata holds exactly two strings:

``"bitnet"``
    the model header (``docs/graph.md``, "Header") serialised as JSON;
``"bitnet.sha256"``
    the lowercase hex SHA-256 of the header string's UTF-8 bytes followed by every
    tensor's raw little-endian bytes, in sorted name order.

:func:`save_model` adds one key to the header, ``"tensors"``: a manifest
``{name: [dtype, shape]}`` of every array in the file. Because the manifest sits inside
the checksummed header, the checksum covers the names, dtypes and shapes as well as the
bytes, and the loader requires the safetensors index to agree with it. Every part of the
file that can change what the model computes is therefore either checksummed or checked
against something checksummed: a file that loads is bit-for-bit the model that was saved.

Tensors are written largest item size first (8-byte dtypes, then 4, 2, 1), so with the
data section 8-byte aligned every array is aligned for its dtype and
:func:`read_model` returns read-only views of a memory map of the file (zero-copy).

Loading validates everything and never executes anything: the index (strict JSON, no
duplicate keys, known dtypes, integer shapes, offsets inside the file, no overlaps, no
holes, no trailing bytes), the metadata, the checksum, then the header (format, version,
keys and their types, the manifest). Every failure is a :class:`~bitnet.ModelFileError`
with a one-line message naming the file. Whether the graph itself is consistent (tensor
shapes that fit the layers) is checked by :class:`bitnet.graph.Graph`; ``bitnet.load``
does both.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import mmap
import os
import struct
from pathlib import Path

import numpy as np

from .errors import ModelFileError

__all__ = ["save_model", "read_model", "FORMAT", "VERSION", "SUFFIX"]

FORMAT = "bitnet-model"
VERSION = 1
SUFFIX = ".bnn"

_META_HEADER = "bitnet"
_META_SHA = "bitnet.sha256"

# safetensors dtype names <-> little-endian NumPy dtypes (no BF16: NumPy has none)
_DTYPES = {
    "BOOL": np.dtype("?"),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F64": np.dtype("<f8"),
}
_NAMES = {dt.newbyteorder("=") if dt.itemsize > 1 else dt: name for name, dt in _DTYPES.items()}

_MAX_INDEX = 100 * 1024 * 1024  # the limit safetensors itself enforces
_MAX_NDIM = 8
_ALIGN = 8

#: Header keys and their JSON types; all required.
_HEADER_KEYS = {
    "format": str,
    "version": int,
    "frontend": dict,
    "input": dict,
    "layers": list,
    "output": str,
    "labels": list,
    "provenance": dict,
    "tensors": dict,
}

#: Optional header keys: ``members`` makes the file an ensemble (bitnet/ensemble.py);
#: ``gate`` false turns the speech gate off by default (sound-event models).
_OPTIONAL_KEYS = {"members": list, "gate": bool}


# --------------------------------------------------------------------------- writing


def _dtype_name(arr: np.ndarray, name: str) -> str:
    dt = arr.dtype
    key = dt.newbyteorder("=") if dt.itemsize > 1 else dt
    try:
        return _NAMES[key]
    except KeyError:
        raise ModelFileError(
            f"tensor {name!r} has dtype {dt}, which a model file cannot hold "
            f"(use one of {', '.join(str(d) for d in _NAMES)})"
        ) from None


def _check_json(obj, where: str) -> None:
    """Reject what strict JSON cannot round-trip: non-str keys, NaN/Inf, odd types."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise ModelFileError(f"header key {k!r} in {where} is not a string")
            _check_json(v, f"{where}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_json(v, f"{where}[{i}]")
    elif isinstance(obj, float):
        if not math.isfinite(obj):
            raise ModelFileError(f"header value {where} is {obj}; model files hold finite numbers only")
    elif obj is None or isinstance(obj, (str, bool, int)):
        pass
    elif isinstance(obj, np.generic):
        raise ModelFileError(
            f"header value {where} is a NumPy {type(obj).__name__}; convert it with .item()"
        )
    else:
        raise ModelFileError(f"header value {where} has type {type(obj).__name__}, which JSON cannot hold")


def save_model(path, header: dict, tensors: dict) -> Path:
    """Write a model file.

    Parameters
    ----------
    path : str or os.PathLike
        Destination, conventionally ending in ``.bnn``. Written to a temporary file in
        the same directory and renamed into place, so a reader never sees half a file.
    header : dict
        The model header of ``docs/graph.md`` (``format``/``version`` may be omitted and
        are filled in). Must hold only JSON types with finite numbers. A ``"tensors"``
        manifest is added (any given one is replaced).
    tensors : dict of str to numpy.ndarray
        The arrays the layers name. Stored little-endian, C order.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ModelFileError
        A header or tensor that a model file cannot hold.

    Examples
    --------
    >>> save_model("tiny.bnn", header, {"fc.weight": w, "fc.bias": b})  # doctest: +SKIP
    """
    path = Path(path)
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: header must be a dict, got {type(header).__name__}")
    if not isinstance(tensors, dict):
        raise ModelFileError(f"{path}: tensors must be a dict, got {type(tensors).__name__}")
    header = dict(header)
    header.setdefault("format", FORMAT)
    header.setdefault("version", VERSION)

    arrays = {}
    manifest = {}
    for name, arr in tensors.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ModelFileError(f"{path}: bad tensor name {name!r}")
        arr = np.asarray(arr)
        if arr.ndim > _MAX_NDIM:
            raise ModelFileError(f"{path}: tensor {name!r} has {arr.ndim} dimensions (at most {_MAX_NDIM})")
        dname = _dtype_name(arr, name)
        arr = np.ascontiguousarray(arr, dtype=_DTYPES[dname])
        arrays[name] = arr
        manifest[name] = [dname, list(arr.shape)]
    header["tensors"] = {k: manifest[k] for k in sorted(manifest)}
    _check_json(header, "header")
    _check_header(header, str(path), manifest_only=False)

    header_str = json.dumps(header, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    digest = hashlib.sha256(header_str.encode("utf-8"))
    for name in sorted(arrays):
        digest.update(arrays[name].tobytes())

    # largest item size first keeps every array aligned to its dtype
    order = sorted(arrays, key=lambda n: (-arrays[n].dtype.itemsize, n))
    index = {"__metadata__": {_META_HEADER: header_str, _META_SHA: digest.hexdigest()}}
    offset = 0
    for name in order:
        nbytes = arrays[name].nbytes
        index[name] = {
            "dtype": manifest[name][0],
            "shape": manifest[name][1],
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    index_bytes = json.dumps(index, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    index_bytes += b" " * (-(8 + len(index_bytes)) % _ALIGN)

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(index_bytes)))
            f.write(index_bytes)
            for name in order:
                f.write(arrays[name].tobytes())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ModelFileError(f"{path}: cannot write model file: {e.strerror or e}") from None
    return path


# --------------------------------------------------------------------------- reading


def _strict_pairs(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key {k!r}")
        d[k] = v
    return d


def _finite_float(s: str) -> float:
    v = float(s)
    if not math.isfinite(v):
        raise ValueError(f"number {s} out of range")
    return v


def _reject_constant(s: str):
    raise ValueError(f"{s} is not allowed")


def _loads(text: str, what: str, where: str):
    try:
        return json.loads(
            text,
            object_pairs_hook=_strict_pairs,
            parse_float=_finite_float,
            parse_constant=_reject_constant,
        )
    except RecursionError:
        raise ModelFileError(f"{where}: {what} is nested too deeply (corrupt file)") from None
    except ValueError as e:  # JSONDecodeError is a ValueError
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelFileError(f"{where}: {what} is not valid JSON ({msg})") from None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_header(h: dict, where: str, manifest_only: bool = False) -> None:
    """Check the header's format, version, keys and their types (not the graph)."""
    fmt = h.get("format")
    if fmt != FORMAT:
        raise ModelFileError(f"{where}: not a bitnet model (format {fmt!r}, expected {FORMAT!r})")
    ver = h.get("version")
    if not _is_int(ver):
        raise ModelFileError(f"{where}: header 'version' must be an integer, got {ver!r}")
    if ver != VERSION:
        raise ModelFileError(
            f"{where}: unknown model file version {ver} (this bitnet reads version {VERSION}; "
            "a newer bitnet may read it)"
        )
    for key, typ in _HEADER_KEYS.items():
        if key not in h:
            raise ModelFileError(f"{where}: header lacks the key {key!r}")
        val = h[key]
        if typ is int:
            ok = _is_int(val)
        else:
            ok = isinstance(val, typ)
        if not ok:
            raise ModelFileError(
                f"{where}: header {key!r} must be a JSON {typ.__name__.replace('dict', 'object').replace('list', 'array')}, "
                f"got {type(val).__name__}"
            )
    for key, typ in _OPTIONAL_KEYS.items():
        if key in h and not isinstance(h[key], typ):
            want = "array" if typ is list else "boolean"
            raise ModelFileError(f"{where}: header {key!r} must be a JSON {want}, got {type(h[key]).__name__}")
    unknown = sorted(set(h) - set(_HEADER_KEYS) - set(_OPTIONAL_KEYS))
    if unknown:
        raise ModelFileError(f"{where}: header has unknown keys {unknown}")
    shape = h["input"].get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 3
        or not all(_is_int(s) and s > 0 for s in shape)
        or shape[2] != 1
    ):
        raise ModelFileError(f"{where}: header input.shape must be [n_mels, frames, 1], got {shape!r}")
    labels = h["labels"]
    if not labels or not all(isinstance(x, str) and x for x in labels):
        raise ModelFileError(f"{where}: header 'labels' must be a non-empty list of non-empty strings")
    if len(set(labels)) != len(labels):
        raise ModelFileError(f"{where}: header 'labels' has duplicates")
    graphs = [h["layers"]]
    for k, mem in enumerate(h.get("members", [])):
        if not isinstance(mem, dict) or not isinstance(mem.get("layers"), list):
            raise ModelFileError(f"{where}: ensemble member {k} must be an object with a 'layers' array")
        graphs.append(mem["layers"])
    for i, layer in ((i, layer) for g in graphs for i, layer in enumerate(g)):
        if not isinstance(layer, dict):
            raise ModelFileError(f"{where}: layer {i} is not a JSON object")
        name = layer.get("name", f"#{i}")
        refs = layer.get("tensors", {})
        if not isinstance(refs, dict):
            raise ModelFileError(f"{where}: layer {name!r}: 'tensors' must be an object")
        for role, tname in refs.items():
            if not isinstance(tname, str) or tname not in h["tensors"]:
                raise ModelFileError(
                    f"{where}: layer {name!r} needs tensor {tname!r} ({role}), which the file does not hold"
                )
    man = h["tensors"]
    for tname, entry in man.items():
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or not isinstance(entry[0], str)
            or entry[0] not in _DTYPES
            or not isinstance(entry[1], list)
            or not all(_is_int(s) and s >= 0 for s in entry[1])
        ):
            raise ModelFileError(f"{where}: header manifest entry for tensor {tname!r} is malformed: {entry!r}")


def _parse_index(buf, size: int, where: str):
    """Parse and check the safetensors index; return (metadata, {name: (dtype, shape, start)})."""
    if size < 8:
        raise ModelFileError(f"{where}: truncated or not a model file ({size} bytes)")
    (n,) = struct.unpack_from("<Q", buf, 0)
    if n < 2 or n > _MAX_INDEX or 8 + n > size:
        if 8 + n > size and n <= _MAX_INDEX:
            raise ModelFileError(f"{where}: truncated model file (index of {n} bytes, file of {size})")
        raise ModelFileError(f"{where}: not a bitnet model file (bad index length {n})")
    raw = bytes(buf[8 : 8 + n])
    if raw[:1] != b"{":
        raise ModelFileError(f"{where}: not a bitnet model file (no safetensors index)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelFileError(f"{where}: model file index is not UTF-8 (corrupt file)") from None
    index = _loads(text, "the safetensors index", where)
    if not isinstance(index, dict):
        raise ModelFileError(f"{where}: the safetensors index is not a JSON object")
    meta = index.pop("__metadata__", None)
    if not isinstance(meta, dict):
        raise ModelFileError(f"{where}: not a bitnet model (the safetensors file has no bitnet metadata)")
    if set(meta) != {_META_HEADER, _META_SHA} or not all(isinstance(v, str) for v in meta.values()):
        keys = sorted(map(str, meta))
        if _META_HEADER not in meta:
            raise ModelFileError(f"{where}: not a bitnet model (metadata keys {keys})")
        raise ModelFileError(
            f"{where}: model file metadata must be exactly the strings {_META_HEADER!r} and {_META_SHA!r}, got {keys}"
        )

    data_start = 8 + n
    data_len = size - data_start
    entries = {}
    spans = []
    for name, e in index.items():
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise ModelFileError(f"{where}: malformed index entry for tensor {name!r}")
        dname, shape, offs = e["dtype"], e["shape"], e["data_offsets"]
        if not isinstance(dname, str) or dname not in _DTYPES:
            raise ModelFileError(f"{where}: tensor {name!r} has unsupported dtype {dname!r}")
        if not isinstance(shape, list) or len(shape) > _MAX_NDIM or not all(_is_int(s) and s >= 0 for s in shape):
            raise ModelFileError(f"{where}: tensor {name!r} has a malformed shape {shape!r}")
        if not isinstance(offs, list) or len(offs) != 2 or not all(_is_int(o) and o >= 0 for o in offs):
            raise ModelFileError(f"{where}: tensor {name!r} has malformed data offsets {offs!r}")
        begin, end = offs
        nbytes = math.prod(shape) * _DTYPES[dname].itemsize
        if end - begin != nbytes:
            raise ModelFileError(
                f"{where}: tensor {name!r} spans {end - begin} bytes but {dname} {shape} needs {nbytes}"
            )
        if end > data_len:
            raise ModelFileError(f"{where}: truncated model file (tensor {name!r} ends past the end of the file)")
        entries[name] = (_DTYPES[dname], tuple(shape), data_start + begin, dname)
        spans.append((begin, end, name))
    spans.sort()
    pos = 0
    for begin, end, name in spans:
        if begin < pos:
            raise ModelFileError(f"{where}: tensor {name!r} overlaps another tensor (corrupt file)")
        if begin > pos:
            raise ModelFileError(f"{where}: unused bytes before tensor {name!r} (corrupt file)")
        pos = end
    if pos != data_len:
        raise ModelFileError(f"{where}: {data_len - pos} unexpected bytes after the last tensor (corrupt file)")
    return meta, entries


def read_model(path):
    """Read and validate a model file.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.bnn`` file.

    Returns
    -------
    header : dict
        The model header (``docs/graph.md``), including the ``"tensors"`` manifest.
    tensors : dict of str to numpy.ndarray
        Read-only arrays, views of a memory map of the file where aligned (zero-copy),
        in native byte order.

    Raises
    ------
    ModelFileError
        Missing, unreadable, truncated, altered or corrupt files, unknown versions,
        malformed headers. The message names the file and the problem.
    """
    where = str(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise ModelFileError(f"{where}: no such model file") from None
    except IsADirectoryError:
        raise ModelFileError(f"{where}: is a directory, not a model file") from None
    except OSError as e:
        raise ModelFileError(f"{where}: cannot open model file: {e.strerror or e}") from None
    with f:
        try:
            size = os.fstat(f.fileno()).st_size
            if size < 8:
                raise ModelFileError(f"{where}: truncated or not a model file ({size} bytes)")
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ModelFileError:
            raise
        except (OSError, ValueError) as e:
            raise ModelFileError(f"{where}: cannot read model file: {e}") from None
    meta, entries = _parse_index(buf, size, where)
    view = memoryview(buf)

    header_str = meta[_META_HEADER]
    want = meta[_META_SHA]
    if len(want) != 64 or any(c not in "0123456789abcdef" for c in want):
        raise ModelFileError(f"{where}: malformed checksum in model file (altered or corrupt)")
    digest = hashlib.sha256(header_str.encode("utf-8", "surrogatepass"))
    for name in sorted(entries):
        dt, shape, start, _ = entries[name]
        digest.update(view[start : start + math.prod(shape) * dt.itemsize])
    if not hmac.compare_digest(digest.hexdigest(), want):
        raise ModelFileError(f"{where}: checksum mismatch: the model file is altered or corrupt")

    header = _loads(header_str, "the model header", where)
    if not isinstance(header, dict):
        raise ModelFileError(f"{where}: the model header is not a JSON object")
    _check_header(header, where)
    manifest = header["tensors"]
    if set(manifest) != set(entries):
        missing = sorted(set(manifest) - set(entries))
        extra = sorted(set(entries) - set(manifest))
        raise ModelFileError(
            f"{where}: the file's tensors do not match its header (missing {missing}, unexpected {extra})"
        )
    tensors = {}
    for name, (dt, shape, start, dname) in entries.items():
        if manifest[name] != [dname, list(shape)]:
            raise ModelFileError(
                f"{where}: tensor {name!r} is {dname} {list(shape)} in the file but "
                f"{manifest[name][0]} {manifest[name][1]} in the header"
            )
        count = math.prod(shape)
        if start % max(dt.itemsize, 1) == 0:
            arr = np.frombuffer(buf, dtype=dt, count=count, offset=start)
        else:  # written by another tool without alignment: copy
            arr = np.frombuffer(bytes(view[start : start + count * dt.itemsize]), dtype=dt)
        if dt.itemsize > 1 and dt.byteorder not in ("=", "|") and not np.little_endian:
            arr = arr.astype(dt.newbyteorder("="))  # big-endian host: convert, at a copy
        arr = arr.reshape(shape)
        arr.flags.writeable = False
        tensors[name] = arr
    view.release()
    return header, tensors
