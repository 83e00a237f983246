"""The model file container: round trips, zero-copy, interoperability, every error."""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest

from bitnet import ModelFileError
from bitnet.testing.digits import UNTRAINED, digits_graph, pack_signs
from bitnet.modelfile import read_model, save_model


# ----------------------------------------------------------------- helpers (used by the fuzz tests too)


def split_file(data: bytes):
    """Return (index dict, data section bytes) of a safetensors file."""
    (n,) = struct.unpack_from("<Q", data, 0)
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def join_file(index: dict, payload: bytes, pad: bool = True) -> bytes:
    raw = json.dumps(index, separators=(",", ":")).encode()
    if pad:
        raw += b" " * (-(8 + len(raw)) % 8)
    return struct.pack("<Q", len(raw)) + raw + payload


def reseal(index: dict, payload: bytes, header: dict | None = None) -> bytes:
    """Rewrite the header (if given) and recompute the checksum the way a forger would."""
    meta = index["__metadata__"]
    if header is not None:
        meta["bitnet"] = json.dumps(header, separators=(",", ":"))
    h = hashlib.sha256(meta["bitnet"].encode())
    for name in sorted(k for k in index if k != "__metadata__"):
        b, e = index[name]["data_offsets"]
        h.update(payload[b:e])
    meta["bitnet.sha256"] = h.hexdigest()
    return join_file(index, payload)


def small_model(seed=0):
    return digits_graph(seed=seed, channels=(4, 8, 8))


@pytest.fixture
def model_file(tmp_path):
    header, tensors = small_model()
    path = tmp_path / "m.bnn"
    save_model(path, header, tensors)
    return path, header, tensors


# ----------------------------------------------------------------- round trips


def test_round_trip(model_file):
    path, header, tensors = model_file
    h, t = read_model(path)
    assert h["format"] == "bitnet-model" and h["version"] == 1
    assert h["layers"] == header["layers"] and h["labels"] == header["labels"]
    assert h["frontend"] == header["frontend"] and h["provenance"]["status"] == UNTRAINED
    assert set(t) == set(tensors)
    for k, v in tensors.items():
        assert t[k].dtype == v.dtype and t[k].shape == v.shape
        np.testing.assert_array_equal(t[k], v)
    assert h["tensors"] == {k: [_sname(v.dtype), list(v.shape)] for k, v in sorted(tensors.items())}


def _sname(dt):
    return {"uint64": "U64", "int32": "I32", "float32": "F32"}[str(dt)]


@pytest.mark.parametrize(
    "dtype", ["bool", "uint8", "int8", "uint16", "int16", "float16", "uint32", "int32", "float32", "uint64", "int64", "float64"]
)
def test_all_dtypes_round_trip_and_align(tmp_path, rng, dtype):
    header, tensors = small_model()
    extra = rng.integers(0, 2, size=(3, 5)).astype(dtype)
    tensors = dict(tensors, **{"z.extra": extra, "a.odd": np.arange(3, dtype=np.uint8)})
    path = save_model(tmp_path / "x.bnn", header, tensors)
    _, t = read_model(path)
    np.testing.assert_array_equal(t["z.extra"], extra)
    for name, arr in t.items():
        assert arr.ctypes.data % arr.dtype.itemsize == 0, name
        assert not arr.flags.writeable


def test_zero_copy_views_of_the_file(model_file):
    path, _, _ = model_file
    _, t = read_model(path)
    w = t["conv1.weight"]
    assert not w.flags.owndata  # a view of the memory map, not a copy
    assert w.flags.c_contiguous and w.flags.aligned


def test_big_endian_input_is_stored_little_endian(tmp_path):
    header, tensors = small_model()
    tensors["fc.bias"] = tensors["fc.bias"].astype(">f4") + 1
    path = save_model(tmp_path / "be.bnn", header, tensors)
    _, t = read_model(path)
    np.testing.assert_array_equal(t["fc.bias"], np.ones(10, np.float32))


def test_readable_by_safetensors(model_file):
    from safetensors import safe_open

    path, _, tensors = model_file
    with safe_open(str(path), framework="numpy") as f:
        assert set(f.keys()) == set(tensors)
        assert set(f.metadata()) == {"bitnet", "bitnet.sha256"}
        for k in tensors:
            np.testing.assert_array_equal(f.get_tensor(k), tensors[k])


def test_reads_safetensors_written_file(model_file, tmp_path):
    """A file rewritten by the safetensors library (its own order/alignment) still loads."""
    from safetensors.numpy import save_file

    path, header, tensors = model_file
    data = path.read_bytes()
    index, _ = split_file(data)
    other = tmp_path / "st.bnn"
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(other), metadata=index["__metadata__"])
    h, t = read_model(other)
    for k in tensors:
        np.testing.assert_array_equal(t[k], tensors[k])


def test_atomic_write_leaves_no_temp(tmp_path):
    header, tensors = small_model()
    save_model(tmp_path / "a.bnn", header, tensors)
    assert [p.name for p in tmp_path.iterdir()] == ["a.bnn"]


def test_pack_signs_convention():
    # sign(0) = +1 (clear bit), set bit = -1, channel c in word c // 64 bit c % 64, pad bits 0
    w = np.array([-1.0, 1.0, 0.0, -2.0] + [1.0] * 62 + [-1.0])
    assert pack_signs(w).tolist() == [0b1001, 0b100]


# ----------------------------------------------------------------- save errors


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda h, t: h["frontend"].update(fmax=float("nan")), "finite"),
        (lambda h, t: h["frontend"].update(n_mels=np.int64(40)), "item"),
        (lambda h, t: t.update(bad=np.zeros(2, np.complex64)), "dtype"),
        (lambda h, t: t.update({"": np.zeros(2)}), "tensor name"),
        (lambda h, t: h.pop("labels"), "labels"),
        (lambda h, t: h.update(labels=["a", "a"]), "duplicates"),
        (lambda h, t: h["layers"][1]["tensors"].update(weight="nope"), "nope"),
        (lambda h, t: h.update(version=2), "version"),
        (lambda h, t: h.update(extra=1), "unknown keys"),
    ],
)
def test_save_rejects(tmp_path, mutate, match):
    header, tensors = small_model()
    mutate(header, tensors)
    with pytest.raises(ModelFileError, match=match):
        save_model(tmp_path / "bad.bnn", header, tensors)
    assert not (tmp_path / "bad.bnn").exists()


# ----------------------------------------------------------------- read errors


def _expect(path, *fragments):
    with pytest.raises(ModelFileError) as e:
        read_model(path)
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


def test_missing_and_directory(tmp_path):
    _expect(tmp_path / "nope.bnn", "no such model file")
    _expect(tmp_path, "directory")


def test_empty_and_tiny(tmp_path):
    p = tmp_path / "e.bnn"
    p.write_bytes(b"")
    _expect(p, "truncated")
    p.write_bytes(b"\x01\x02")
    _expect(p, "truncated")


def test_wrong_magic_wav(tmp_path):
    p = tmp_path / "clip.bnn"
    p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(100))
    _expect(p, "not a bitnet model")


def test_plain_safetensors_is_not_a_model(tmp_path):
    from safetensors.numpy import save_file

    p = tmp_path / "plain.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(p))
    _expect(p, "not a bitnet model")


def test_truncated(model_file):
    path, _, _ = model_file
    data = path.read_bytes()
    for cut in (len(data) - 1, len(data) - 100, 40):
        path.write_bytes(data[:cut])
        _expect(path, "truncated")


def test_trailing_garbage(model_file):
    path, _, _ = model_file
    path.write_bytes(path.read_bytes() + b"\0" * 8)
    _expect(path, "unexpected bytes")


def test_flipped_weight_bit_is_caught(model_file):
    path, _, _ = model_file
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    _expect(path, "altered or corrupt")


def test_edited_header_is_caught(model_file):
    path, _, _ = model_file
    index, payload = split_file(path.read_bytes())
    header = json.loads(index["__metadata__"]["bitnet"])
    header["layers"][0]["attrs"]["offset"] = -70.0
    index["__metadata__"]["bitnet"] = json.dumps(header)
    path.write_bytes(join_file(index, payload))
    _expect(path, "checksum mismatch", "altered or corrupt")


def test_unknown_version(model_file):
    path, _, _ = model_file
    index, payload = split_file(path.read_bytes())
    header = json.loads(index["__metadata__"]["bitnet"])
    header["version"] = 2
    path.write_bytes(reseal(index, payload, header))
    _expect(path, "unknown model file version 2")


def test_wrong_format(model_file):
    path, _, _ = model_file
    index, payload = split_file(path.read_bytes())
    header = json.loads(index["__metadata__"]["bitnet"])
    header["format"] = "onnx"
    path.write_bytes(reseal(index, payload, header))
    _expect(path, "not a bitnet model")


def test_dtype_or_shape_changed_in_index(model_file):
    """Same bytes, reinterpreted: the checksummed manifest catches it."""
    path, _, _ = model_file
    data = path.read_bytes()
    index, payload = split_file(data)
    index["fc.bias"]["dtype"] = "I32"
    path.write_bytes(reseal(index, payload))
    _expect(path, "fc.bias", "in the header")
    index, payload = split_file(data)
    index["fc.weight"]["shape"] = [64, 4]
    path.write_bytes(reseal(index, payload))
    _expect(path, "fc.weight")


def test_overlap_and_hole(model_file):
    path, _, _ = model_file
    data = path.read_bytes()
    index, payload = split_file(data)
    names = sorted((v["data_offsets"][0], k) for k, v in index.items() if k != "__metadata__")
    first = names[0][1]
    b, e = index[first]["data_offsets"]
    index[first]["data_offsets"] = [b + 8, e + 8]
    path.write_bytes(join_file(index, payload))
    _expect(path)
    index, payload = split_file(data)
    index[names[-1][1]]["data_offsets"][0] -= 4
    path.write_bytes(join_file(index, payload))
    _expect(path)


def test_duplicate_keys_in_index(model_file):
    path, _, _ = model_file
    data = path.read_bytes()
    (n,) = struct.unpack_from("<Q", data)
    raw = data[8 : 8 + n].rstrip(b" ")
    entry = b'"fc.bias":' + json.dumps(split_file(data)[0]["fc.bias"]).encode()
    raw = raw[:-1] + b"," + entry + b"}"
    raw += b" " * (-(8 + len(raw)) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])
    _expect(path, "duplicate key")


def test_extra_metadata_and_missing_checksum(model_file):
    path, _, _ = model_file
    data = path.read_bytes()
    index, payload = split_file(data)
    index["__metadata__"]["other"] = "x"
    path.write_bytes(join_file(index, payload))
    _expect(path, "metadata")
    index, payload = split_file(data)
    del index["__metadata__"]["bitnet.sha256"]
    path.write_bytes(join_file(index, payload))
    _expect(path, "metadata")


def test_huge_index_length(model_file):
    path, _, _ = model_file
    data = bytearray(path.read_bytes())
    data[:8] = struct.pack("<Q", 2**62)
    path.write_bytes(bytes(data))
    _expect(path, "not a bitnet model")


def test_unused_tensor_rejected(model_file):
    path, _, _ = model_file
    header, tensors = small_model()
    tensors["stray"] = np.zeros(3, np.float32)
    save_model(path, header, tensors)
    h, t = read_model(path)  # the container is fine; the graph check (bitnet.load) rejects strays
    assert "stray" in t
