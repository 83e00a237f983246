"""Fuzzing the model file: damage never crashes the loader and never changes the model.

The property, for any damaged file: ``read_model`` (and ``bitnet.load``) either raises
:class:`bitnet.ModelFileError`, or returns exactly the saved header and tensors (same
names, dtypes, shapes and bytes) — a damaged file never loads as a different model.

Why this holds (and what the tests below probe): the SHA-256 covers the header string
and every tensor's bytes in sorted name order; the header includes a manifest of every
tensor's dtype and shape, which the loader requires the safetensors index to match; the
index must cover the data section exactly (no holes, overlaps or trailing bytes). So the
only parts of the file outside the checksum are the index's JSON syntax (whitespace,
escapes, key order), its offsets (which must tile the data, and a swap changes the bytes
that are hashed) and the checksum itself. A change to any of them either leaves the
decoded model identical or makes a check fail.

"Forged" edits recompute the checksum (what a careless tool or an attacker would do):
those files may legitimately be different models, so there the property is only "a
ModelFileError or a model that loads", never another exception.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitnet import ModelFileError
from bitnet.modelfile import read_model, save_model

from test_modelfile import join_file, reseal, small_model, split_file

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    header, tensors = small_model(seed=3)
    path = tmp_path_factory.mktemp("fuzz") / "orig.bnn"
    save_model(path, header, tensors)
    h, t = read_model(path)
    return path.read_bytes(), h, {k: np.array(v) for k, v in t.items()}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzzwork") / "damaged.bnn"


def _same_model(h, t, h0, t0) -> bool:
    if h != h0 or set(t) != set(t0):
        return False
    return all(t[k].dtype == t0[k].dtype and t[k].shape == t0[k].shape and t[k].tobytes() == t0[k].tobytes() for k in t0)


def check_damaged(data: bytes, original, scratch, graph: bool = False):
    """The fuzz property: ModelFileError, or the identical model."""
    _, h0, t0 = original
    scratch.write_bytes(data)
    try:
        h, t = read_model(scratch)
    except ModelFileError as e:
        assert "\n" not in str(e) and str(scratch) in str(e)
        return "error"
    assert _same_model(h, t, h0, t0), "a damaged file loaded as a different model"
    return "same"


def check_forged(data: bytes, scratch):
    """For files whose checksum was recomputed: ModelFileError or a model, nothing else."""
    scratch.write_bytes(data)
    try:
        read_model(scratch)
    except ModelFileError as e:
        assert "\n" not in str(e)
        return "error"
    try:
        import bitnet.graph  # noqa: F401  (full load needs the graph module)
    except ImportError:
        return "loaded"
    import bitnet

    try:
        bitnet.load(scratch)
    except ModelFileError as e:
        assert "\n" not in str(e)
        return "error"
    return "loaded"


# ----------------------------------------------------------------- strategies


@st.composite
def flips(draw, n):
    k = draw(st.integers(1, 4))
    return [(draw(st.integers(0, n - 1)), draw(st.integers(1, 255))) for _ in range(k)]


def apply_flips(data: bytes, fl) -> bytes:
    b = bytearray(data)
    for pos, mask in fl:
        b[pos] ^= mask
    return bytes(b)


def index_end(data: bytes) -> int:
    return 8 + int.from_bytes(data[:8], "little")


# ----------------------------------------------------------------- damage: must error or be identical


def _truncation(original, scratch, cut):
    data = original[0]
    assert check_damaged(data[: cut % len(data)], original, scratch) == "error"


def _flip_anywhere(original, scratch, fl):
    check_damaged(apply_flips(original[0], fl), original, scratch)


def _flip_in_index(original, scratch, data_flips):
    data = original[0]
    n = index_end(data)
    fl = [(8 + p % (n - 8), m) for p, m in data_flips]
    check_damaged(apply_flips(data, fl), original, scratch)


def _insert_delete(original, scratch, pos, chunk, delete):
    data = original[0]
    pos %= len(data)
    out = data[:pos] + data[pos + delete :] if delete else data[:pos] + chunk + data[pos:]
    if out != data:
        check_damaged(out, original, scratch)


@given(cut=st.integers(0, 10**6))
@FAST
def test_truncation(original, scratch, cut):
    _truncation(original, scratch, cut)


@given(fl=st.data())
@FAST
def test_byte_flips_anywhere(original, scratch, fl):
    _flip_anywhere(original, scratch, fl.draw(flips(len(original[0]))))


@given(fl=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=3))
@FAST
def test_byte_flips_in_index(original, scratch, fl):
    _flip_in_index(original, scratch, fl)


@given(pos=st.integers(0, 10**6), chunk=st.binary(min_size=1, max_size=16), delete=st.integers(0, 16))
@FAST
def test_insertions_and_deletions(original, scratch, pos, chunk, delete):
    _insert_delete(original, scratch, pos, chunk, delete)


# header/index edits without resealing: the checksum or the manifest must catch them

_HEADER_PATHS = [
    ("version",), ("format",), ("output",), ("labels", 0), ("input", "shape", 0),
    ("frontend", "sample_rate"), ("frontend", "n_mels"), ("frontend", "fmax"),
    ("layers", 0, "attrs", "offset"), ("layers", 0, "attrs", "scale"), ("layers", 1, "attrs", "kernel", 0),
    ("layers", 1, "attrs", "output"), ("layers", 3, "op"), ("layers", 3, "inputs", 0),
    ("layers", 1, "tensors", "thresh"), ("tensors", "fc.bias", 1, 0), ("tensors", "conv1.thresh", 0),
    ("provenance", "status"),
]  # fmt: skip

_VALUES = st.one_of(
    st.integers(-(2**40), 2**40), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=6),
    st.none(), st.booleans(), st.lists(st.integers(0, 9), max_size=3),
    st.sampled_from(["U64", "I32", "F32", "threshold", "affine", "int", "bconv", "dense", "fc", "input"]),
)  # fmt: skip


def _set(obj, path, value):
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def _edited_header(original, path, value):
    index, payload = split_file(original[0])
    header = json.loads(index["__metadata__"]["bitnet"])
    _set(header, path, value)
    return index, payload, header


@given(path=st.sampled_from(_HEADER_PATHS), value=_VALUES)
@FAST
def test_header_edits_unsealed(original, scratch, path, value):
    index, payload, header = _edited_header(original, path, value)
    index["__metadata__"]["bitnet"] = json.dumps(header, separators=(",", ":"))
    check_damaged(join_file(index, payload), original, scratch)


_TENSOR_FIELDS = st.sampled_from(["dtype", "shape", "offset0", "offset1", "swap"])


@st.composite
def index_edit(draw, index):
    names = sorted(k for k in index if k != "__metadata__")
    name = draw(st.sampled_from(names))
    field = draw(_TENSOR_FIELDS)
    e = index[name]
    if field == "dtype":
        e["dtype"] = draw(st.sampled_from(["U64", "I64", "F64", "U32", "I32", "F32", "U16", "F16", "U8", "BOOL", "BF16", "X"]))
    elif field == "shape":
        e["shape"] = draw(st.lists(st.integers(0, 80), max_size=4))
    elif field == "offset0":
        e["data_offsets"][0] += draw(st.integers(-64, 64))
    elif field == "offset1":
        e["data_offsets"][1] += draw(st.integers(-64, 64))
    else:
        other = draw(st.sampled_from(names))
        e["data_offsets"], index[other]["data_offsets"] = index[other]["data_offsets"], e["data_offsets"]
    return index


@given(data=st.data(), seal=st.booleans())
@FAST
def test_index_edits(original, scratch, data, seal):
    """dtype/shape/offset edits in the safetensors index, with or without a resealed checksum."""
    index, payload = split_file(original[0])
    index = data.draw(index_edit(index))
    if seal:  # e.g. two same-size tensors swapped and resealed: a different, valid model
        check_forged(reseal(index, payload), scratch)
    else:
        check_damaged(join_file(index, payload), original, scratch)


@given(path=st.sampled_from(_HEADER_PATHS), value=_VALUES)
@FAST
def test_header_edits_forged(original, scratch, path, value):
    """Edits with a recomputed checksum: a clear ModelFileError or a loadable model, never a crash."""
    index, payload, header = _edited_header(original, path, value)
    check_forged(reseal(index, payload, header), scratch)


@given(name=st.sampled_from(["conv0.thresh", "conv1.thresh", "fc.bias", "conv2.scale"]), pos=st.integers(0, 10**4),
       mask=st.integers(1, 255))  # fmt: skip
@FAST
def test_tensor_value_edits_unsealed(original, scratch, name, pos, mask):
    """Changing a threshold or bias value without resealing is caught."""
    data = original[0]
    index, payload = split_file(data)
    b, e = index[name]["data_offsets"]
    p = index_end(data) + b + pos % (e - b)
    assert check_damaged(apply_flips(data, [(p, mask)]), original, scratch) == "error"


# ----------------------------------------------------------------- the slow tier: many more examples


@pytest.mark.slow
@given(fl=st.data())
@SLOW
def test_byte_flips_anywhere_slow(original, scratch, fl):
    _flip_anywhere(original, scratch, fl.draw(flips(len(original[0]))))


@pytest.mark.slow
@given(fl=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=3))
@SLOW
def test_byte_flips_in_index_slow(original, scratch, fl):
    _flip_in_index(original, scratch, fl)


@pytest.mark.slow
@given(pos=st.integers(0, 10**6), chunk=st.binary(min_size=1, max_size=16), delete=st.integers(0, 16))
@SLOW
def test_insertions_and_deletions_slow(original, scratch, pos, chunk, delete):
    _insert_delete(original, scratch, pos, chunk, delete)


@pytest.mark.slow
@given(path=st.sampled_from(_HEADER_PATHS), value=_VALUES)
@SLOW
def test_header_edits_forged_slow(original, scratch, path, value):
    index, payload, header = _edited_header(original, path, value)
    check_forged(reseal(index, payload, header), scratch)


def _single_flips(original, scratch, positions):
    data = original[0]
    outcomes = {"error": 0, "same": 0}
    for pos in positions:
        outcomes[check_damaged(apply_flips(data, [(pos, 1)]), original, scratch)] += 1
    return outcomes


def test_single_byte_flips_strided(original, scratch):
    """Every 13th byte of the file, flipped in its lowest bit (the slow tier does all)."""
    out = _single_flips(original, scratch, range(0, len(original[0]), 13))
    assert out["error"] > 0.9 * sum(out.values())


@pytest.mark.slow
def test_every_single_byte_flip(original, scratch):
    """Exhaustive: every byte of the file, flipped in its lowest bit (the whole file, each position)."""
    data = original[0]
    outcomes = {"error": 0, "same": 0}
    for pos in range(len(data)):
        outcomes[check_damaged(apply_flips(data, [(pos, 1)]), original, scratch)] += 1
    assert outcomes["error"] > 0.9 * len(data)
