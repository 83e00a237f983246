"""``bitnet.batch(..., ray=...)`` on a real local Ray cluster, with a worker killed mid-run.

A local Ray head (GCS, raylet, object store) on loopback with two CPUs runs two actors.
While results stream back, the test SIGKILLs one actor's process. Ray restarts the actor
and retries its batches; the output must still hold every input exactly once, with the
labels the engine gives in this process. Skipped only where Ray is not installed (CI
installs the ``ray`` extra, so it runs there).
"""

from __future__ import annotations

import csv
import os
import signal
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")

import bitnet  # noqa: E402


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             _temp_dir=str(tmp_path_factory.mktemp("ray")), configure_logging=False, log_to_driver=False)
    yield
    ray.shutdown()


def _actor_pids() -> list[int]:
    """PIDs of the Ray actor processes running bitnet's batch actor (from /proc)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if b"BatchActor" in cmd and int(d.name) != os.getpid():
            pids.append(int(d.name))
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the actor processes through /proc")
def test_killed_worker_loses_and_duplicates_nothing(local_ray, fsdd_dir, tmp_path):
    clips = sorted(fsdd_dir.glob("*_theo_*.wav"))[:30]
    model = bitnet.load()
    want = {str(c): model.predict(c).label for c in clips}
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    # 300 inputs: each clip ten times under its own id, and one broken file
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "path"])
        for rep in range(10):
            for c in clips:
                w.writerow([f"{rep}/{c.name}", str(c)])
        w.writerow(["broken", str(bad)])
    n_inputs = 10 * len(clips) + 1

    killed = []
    after_kill = [0]

    def on_rows(rows):
        if killed:
            after_kill[0] += len(rows)
            return
        for _ in range(100):  # both actors up: kill one of them (SIGKILL, no clean-up)
            pids = _actor_pids()
            if len(pids) >= 2:
                break
            time.sleep(0.1)
        assert pids, "no actor process found"
        os.kill(pids[0], signal.SIGKILL)
        killed.append(pids[0])

    out = tmp_path / "out.parquet"
    s = bitnet.batch(manifest, out, ray=True, workers=2, chunk_size=4, progress=False, on_rows=on_rows)
    assert killed, "the run finished before a worker could be killed"
    assert after_kill[0] > 0, "no rows came back after the kill"
    assert s.backend == "ray" and s.workers == 2
    assert s.inputs == n_inputs and s.written == n_inputs and s.skipped == 0 and s.errors == 1

    rows = pq.read_table(out).to_pylist()
    ids = [r["id"] for r in rows]
    assert len(ids) == n_inputs and len(set(ids)) == n_inputs
    by_id = {r["id"]: r for r in rows}
    assert by_id["broken"]["error"].startswith(str(bad)) and by_id["broken"]["label"] is None
    for rep in range(10):
        for c in clips:
            r = by_id[f"{rep}/{c.name}"]
            assert r["error"] is None and r["path"] == str(c)
            assert r["label"] == want[str(c)]
            # top_k is what the model says; a clip the speech gate rejects is labelled
            # bitnet.NO_SPEECH instead (the same in the in-process prediction, ``want``)
            assert r["windows"] == 1
            assert r["top_k"][0]["label"] == r["label"] or r["label"] == bitnet.NO_SPEECH
    assert not out.with_name(out.name + ".parts").exists()

    # a rerun on the cluster finds everything written and adds nothing
    s2 = bitnet.batch(manifest, out, ray=True, workers=2, progress=False)
    assert (s2.written, s2.skipped) == (0, n_inputs)
    assert len(pq.read_table(out)) == n_inputs


def test_ray_matches_local_pool_and_resumes(local_ray, fsdd_dir, tmp_path):
    clips = [str(c) for c in sorted(fsdd_dir.glob("*_yweweler_*.wav"))[:12]]
    local = tmp_path / "local.jsonl"
    bitnet.batch(clips, local, workers=0, progress=False)
    # a partial output (the first 5 rows, then a torn line), resumed on Ray
    lines = local.read_text().splitlines(keepends=True)
    out = tmp_path / "ray.jsonl"
    out.write_text("".join(lines[:5]) + lines[5][:17])
    s = bitnet.batch(clips, out, ray=True, workers=1, progress=False)
    assert (s.skipped, s.written) == (5, len(clips) - 5)
    import json

    a = {r["id"]: r for r in map(json.loads, local.read_text().splitlines())}
    b = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(r["id"] for r in b) == sorted(a)
    for r in b:
        assert r == a[r["id"]]
