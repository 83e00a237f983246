"""The zoo's accuracy table keeps every measured run: a run directory on this machine
gives its row, an entry whose run is elsewhere keeps its recorded row, nothing is made up."""

from __future__ import annotations

import json

from evaluation import zoo


def test_collect_reads_runs_and_keeps_recorded_rows(tmp_path):
    (name, what, rel, kind), (name2, _, rel2, kind2) = zoo.ENTRIES[0], zoo.ENTRIES[3]
    assert kind == "run" and kind2 == "folds"
    (tmp_path / rel).mkdir()
    (tmp_path / rel / "result.json").write_text(json.dumps(
        {"test_accuracy": 0.5, "command": "python -m trainer train x", "epochs": 3, "dataset": "d"}))
    recorded = {name: {"name": name, "accuracy": 0.9}, name2: {"name": name2, "accuracy": 0.7, "std": 0.1}}
    rows = {r["name"]: r for r in zoo.collect(tmp_path, recorded)}
    assert rows[name]["accuracy"] == 0.5 and rows[name]["epochs"] == 3   # the run wins over the record
    assert rows[name2] == recorded[name2]                                 # absent run: recorded row kept
    assert len(rows) == 2                                                 # nothing else appears
    # a cross-validation cut short says how many folds finished
    for k, acc in ((1, 0.6), (2, 0.8)):
        (tmp_path / rel2 / f"fold{k}").mkdir(parents=True)
        (tmp_path / rel2 / f"fold{k}" / "result.json").write_text(json.dumps(
            {"test_accuracy": acc, "command": "c"}))
    row = [r for r in zoo.collect(tmp_path, {}) if r["name"].startswith(name2)][0]
    assert row["name"].endswith("(2 folds finished)") and abs(row["accuracy"] - 0.7) < 1e-12
