"""``bitnet.batch`` / ``bitnet batch`` on local processes: inputs, rows, errors, resuming."""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import bitnet
from bitnet import ParameterError
from bitnet._batch_io import COLUMNS, list_inputs
from bitnet.model import DEFAULT_MODEL

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def _jsonl(path):
    return [json.loads(x) for x in Path(path).read_text().splitlines()]


@pytest.fixture(scope="module")
def reference():
    model = bitnet.load()
    return {str(p): model.predict(p) for p in sorted(EXAMPLES.glob("*.wav"))}


@pytest.fixture
def tree(tmp_path):
    """examples/ copied into nested folders (in tmp), with a text file that is skipped."""
    root = tmp_path / "archive"
    for i, p in enumerate(sorted(EXAMPLES.glob("*.wav"))):
        d = root / f"day{i % 2}" / "mic"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, d / p.name)
    (root / "day0" / "notes.txt").write_text("not audio")
    return root


def test_listing_directory_glob_and_manifests(tree, tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow as pa
    import pyarrow.parquet as pq

    walked = list_inputs(tree)
    assert len(walked) == 10 and all(i == p and p.endswith(".wav") for i, p in walked)
    assert [p for _, p in walked] == sorted(p for _, p in walked)  # day0 before day1, sorted within
    globbed = list_inputs(str(tree / "**" / "3_*.wav"))
    assert [Path(p).name for _, p in globbed] == ["3_yweweler_3.wav"]

    # CSV with a header, ids and a path relative to the manifest; the same id twice is one input
    m = tree / "m.csv"
    m.write_text("id,path,extra\na,day0/mic/0_george_0.wav,x\nb,day1/mic/1_nicolas_1.wav,y\na,elsewhere.wav,z\n")
    assert list_inputs(m) == [("a", str(tree / "day0/mic/0_george_0.wav")), ("b", str(tree / "day1/mic/1_nicolas_1.wav"))]
    # CSV without a header: paths in the first column, ids are the paths
    m2 = tmp_path / "plain.csv"
    m2.write_text(f"{walked[0][1]}\n{walked[1][1]}\n")
    assert list_inputs(m2) == walked[:2]
    # Parquet manifest
    m3 = tmp_path / "m.parquet"
    pq.write_table(pa.table({"path": [walked[2][1]], "id": ["k"]}), m3)
    assert list_inputs([m3, m2]) == [("k", walked[2][1])] + walked[:2]

    with pytest.raises(ParameterError, match="no such file"):
        list_inputs(tmp_path / "nope")
    with pytest.raises(ParameterError, match="matches no files"):
        list_inputs(str(tmp_path / "*.flac"))
    with pytest.raises(ParameterError, match="no audio files"):
        (tmp_path / "empty").mkdir()
        list_inputs(tmp_path / "empty")


@pytest.mark.parametrize("workers", [0, 2])
def test_rows_match_predict(workers, tmp_path, reference):
    out = tmp_path / "out.jsonl"
    s = bitnet.batch(EXAMPLES, out, workers=workers, top_k=3, progress=False)
    assert (s.inputs, s.written, s.skipped, s.errors) == (10, 10, 0, 0)
    assert s.backend == ("loop" if workers == 0 else "processes")
    digest = hashlib.sha256(DEFAULT_MODEL.read_bytes()).hexdigest()
    rows = _jsonl(out)
    assert [r["path"] for r in rows] == list(reference)  # input order (one chunk per worker here)
    for r in rows:
        assert list(r) == list(COLUMNS)
        p = reference[r["path"]]
        assert r["id"] == r["path"] and r["error"] is None and r["model_hash"] == digest
        assert r["label"] == p.label and r["probability"] == pytest.approx(p.probability, abs=1e-6)
        assert [t["label"] for t in r["top_k"]] == [lab for lab, _ in p.top_k(3)]
        assert r["windows"] == p.window_probabilities.shape[0]


def test_bad_files_are_rows_with_errors(tmp_path, reference):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"\x00" * 100)
    missing = tmp_path / "missing.wav"
    good = next(iter(reference))
    m = tmp_path / "m.csv"
    m.write_text(f"path\n{bad}\n{good}\n{missing}\n")
    out = tmp_path / "out.jsonl"
    s = bitnet.batch(m, out, workers=0, progress=False)
    assert (s.written, s.errors) == (3, 2)
    rows = {r["path"]: r for r in _jsonl(out)}
    assert rows[good]["error"] is None and rows[good]["label"] == reference[good].label
    for p in (bad, missing):
        r = rows[str(p)]
        assert r["label"] is None and r["top_k"] == [] and r["windows"] == 0
        assert r["error"].startswith(f"{p}: ") and "\n" not in r["error"]


def test_jsonl_resume_skips_written_rows_and_drops_a_torn_line(tmp_path, reference):
    out = tmp_path / "out.jsonl"
    bitnet.batch(EXAMPLES, out, workers=0, progress=False)
    full = out.read_text().splitlines(keepends=True)
    out.write_text("".join(full[:4]) + full[4][:30])  # died while writing row 5
    s = bitnet.batch(EXAMPLES, out, workers=2, progress=False)
    assert (s.skipped, s.written) == (4, 6)
    rows = _jsonl(out)
    assert sorted(r["id"] for r in rows) == sorted(reference)
    s = bitnet.batch(EXAMPLES, out, progress=False)
    assert (s.skipped, s.written) == (10, 0) and len(_jsonl(out)) == 10
    s = bitnet.batch(EXAMPLES, out, workers=0, resume=False, progress=False)
    assert (s.skipped, s.written) == (0, 10) and len(_jsonl(out)) == 10

    other = tmp_path / "other.jsonl"
    other.write_text("hello\n")
    with pytest.raises(ParameterError, match="not a bitnet result row"):
        bitnet.batch(EXAMPLES, other, progress=False)


def test_parquet_parts_resume_and_merge(tmp_path, reference):
    pq = pytest.importorskip("pyarrow.parquet")
    from bitnet._batch_io import rows_to_table
    from bitnet.batch import Classifier

    out = tmp_path / "out.parquet"
    first = list(reference)[:3]
    bitnet.batch(first, out, workers=0, progress=False)
    # a run that died after writing one part: the part is kept, the rerun adds the rest
    parts = tmp_path / "out.parquet.parts"
    parts.mkdir()
    more = list(reference)[3:5]
    rows = Classifier().rows([(p, p) for p in more])
    pq.write_table(rows_to_table(rows), parts / "part-000000.parquet")
    (parts / "part-000001.tmp").write_bytes(b"half a part")  # never renamed: ignored
    s = bitnet.batch(EXAMPLES, out, workers=2, progress=False)
    assert (s.inputs, s.skipped, s.written) == (10, 5, 5)
    table = pq.read_table(out)
    assert sorted(table.column("id").to_pylist()) == sorted(reference)
    assert not parts.exists()
    by = {r["id"]: r for r in table.to_pylist()}
    assert all(by[p]["label"] == reference[p].label for p in reference)


def test_local_pool_survives_a_killed_worker(tmp_path, fsdd_dir):
    clips = [str(c) for c in sorted(fsdd_dir.glob("*_lucas_*.wav"))[:120]]
    killed = []

    def on_rows(rows):
        if not killed:
            kids = multiprocessing.active_children()
            assert kids
            os.kill(kids[0].pid, signal.SIGKILL)
            killed.append(kids[0].pid)

    out = tmp_path / "out.jsonl"
    s = bitnet.batch(clips, out, workers=2, chunk_size=4, progress=False, on_rows=on_rows)
    assert killed and s.written == len(clips)
    ids = [r["id"] for r in _jsonl(out)]
    assert sorted(ids) == sorted(clips)


def test_local_pool_loses_no_chunk_when_submit_finds_the_pool_broken(tmp_path, monkeypatch):
    """A worker that dies between two submissions makes ``submit`` raise: the chunk being
    submitted must be redone by the fresh pool, not dropped."""
    import concurrent.futures as cf
    from concurrent.futures.process import BrokenProcessPool

    calls = []

    class Flaky(cf.ProcessPoolExecutor):
        def submit(self, *a, **k):
            calls.append(1)
            if len(calls) == 3:  # the first pool breaks at its third submission
                raise BrokenProcessPool("a worker died")
            return super().submit(*a, **k)

    monkeypatch.setattr(cf, "ProcessPoolExecutor", Flaky)
    out = tmp_path / "out.jsonl"
    s = bitnet.batch(EXAMPLES, out, workers=1, chunk_size=2, progress=False)
    assert len(calls) > 5 and s.written == 10
    assert sorted(r["id"] for r in _jsonl(out)) == sorted(str(p) for p in EXAMPLES.glob("*.wav"))


def test_fsspec_urls(tmp_path, reference):
    pytest.importorskip("fsspec")
    url = "file://" + str(EXAMPLES)
    out = tmp_path / "out.jsonl"
    s = bitnet.batch(url, out, workers=0, progress=False)
    assert s.written == 10 and s.errors == 0
    for r in _jsonl(out):
        assert r["path"].startswith("file:///")
        assert r["label"] == reference[r["path"][len("file://"):]].label


def test_bad_arguments(tmp_path):
    with pytest.raises(ParameterError, match="output format"):
        bitnet.batch(EXAMPLES, tmp_path / "out.csv", progress=False)
    with pytest.raises(ParameterError, match="top_k"):
        bitnet.batch(EXAMPLES, tmp_path / "out.jsonl", top_k=0, progress=False)
    with pytest.raises(bitnet.ModelFileError):
        bitnet.batch(EXAMPLES, tmp_path / "out.jsonl", model=tmp_path / "none.bnn", progress=False)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "bitnet", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_cli(tmp_path):
    out = tmp_path / "r.jsonl"
    r = _cli("batch", "examples", "-o", str(out), "--json", "-j", "0")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["written"] == 10 and len(_jsonl(out)) == 10
    (tmp_path / "x.wav").write_text("text")
    r = _cli("batch", "examples", str(tmp_path / "x.wav"), "-o", str(out), "-j", "0")
    assert r.returncode == 1 and "1 of 11 inputs failed" in r.stderr and "Traceback" not in r.stderr
    assert "1 clips classified" in r.stdout and "10 already done" in r.stdout
    r = _cli("batch", "examples", "-o", str(tmp_path / "r.txt"))
    assert r.returncode == 1 and "cannot tell the output format" in r.stderr and "Traceback" not in r.stderr
    r = _cli("batch", "examples")
    assert r.returncode == 2


def test_import_stays_light_and_batch_is_callable():
    code = (
        "import sys, bitnet\n"
        "assert not any(m in sys.modules for m in ('ray', 'pyarrow', 'torch', 'fsspec')), 'heavy import'\n"
        "import bitnet.batch\n"
        "from bitnet.batch import Classifier\n"
        "assert callable(bitnet.batch) and bitnet.batch.Classifier is Classifier\n"
        "print(bitnet.batch('examples/0_george_0.wav', sys.argv[1], workers=0, progress=False).written)\n"
    )
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"bitnet-import-{os.getpid()}.jsonl"
    try:
        r = subprocess.run([sys.executable, "-c", code, str(out)], cwd=REPO, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "1"
    finally:
        out.unlink(missing_ok=True)
