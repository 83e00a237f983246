"""The zoo's accuracy table keeps every measured run: a run directory on this machine
gives its row, an entry whose run is elsewhere keeps its recorded row, nothing is made up."""

from __future__ import annotations

import json

from evaluation import zoo


def test_collect_reads_runs_and_keeps_recorded_rows(tmp_path):
    name, _, rel, _ = next(e for e in zoo.ENTRIES if e[3] == "run")
    name2, _, rel2, _ = next(e for e in zoo.ENTRIES if e[3] == "folds")
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


def test_a_renamed_row_is_found_by_its_run_directory(tmp_path):
    name, _, rel, _ = next(e for e in zoo.ENTRIES if e[3] == "run")
    old = {"name": "an older title", "accuracy": 0.4, "command": f"python -m trainer train --out runs/{rel} --x"}
    recorded = zoo.recorded_rows([old])
    row = [r for r in zoo.collect(tmp_path, recorded) if r["accuracy"] == 0.4]
    assert len(row) == 1 and row[0]["name"] == name          # kept, under the current title


def test_a_recorded_cross_validation_beats_fewer_folds_on_this_machine(tmp_path):
    name, _, rel, _ = next(e for e in zoo.ENTRIES if e[3] == "folds")
    (tmp_path / rel / "fold1").mkdir(parents=True)
    (tmp_path / rel / "fold1" / "result.json").write_text(json.dumps({"test_accuracy": 0.1, "command": "c"}))
    full = {"name": name, "accuracy": 0.7, "folds": {str(k): 0.7 for k in range(1, 6)}}
    row = [r for r in zoo.collect(tmp_path, {name: full}) if r["name"].startswith(name)]
    assert row == [full]


def test_the_complexity_table_keeps_an_int8_figure_only_for_the_same_file():
    from evaluation import zoo_table

    prev = [{"model": "kw", "precision": "INT8", "file_sha256": "aa", "accuracy": 0.81},
            {"model": "lc", "precision": "INT8", "file_sha256": "bb", "accuracy": 0.40},
            {"model": "kw", "precision": "float32", "file_sha256": "aa", "accuracy": 0.9}]
    rows = [{"model": "kw", "precision": "INT8", "file_sha256": "aa", "accuracy": None},   # twin run absent
            {"model": "lc", "precision": "INT8", "file_sha256": "cc", "accuracy": None},   # file changed
            {"model": "kw", "precision": "float32", "file_sha256": "aa", "accuracy": None},  # not INT8
            {"model": "kx", "precision": "INT8", "file_sha256": "aa", "accuracy": 0.5}]    # measured now
    out = zoo_table.keep_recorded(rows, prev)
    assert out[0]["accuracy"] == 0.81 and out[0]["accuracy_recorded"] is True
    assert out[1]["accuracy"] is None and "accuracy_recorded" not in out[1]
    assert out[2]["accuracy"] is None
    assert out[3]["accuracy"] == 0.5 and "accuracy_recorded" not in out[3]


def test_the_generated_table_is_copied_between_the_markers_only(tmp_path):
    doc = tmp_path / "zoo.md"
    doc.write_text(f"intro\n{zoo.MARK_BEGIN}\nold table\n{zoo.MARK_END}\nafter\n")
    assert zoo.copy_into(doc, "| new |\n")
    assert doc.read_text() == f"intro\n{zoo.MARK_BEGIN}\n| new |\n{zoo.MARK_END}\nafter\n"
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    assert not zoo.copy_into(plain, "| new |\n") and plain.read_text() == "no markers\n"


def test_a_recorded_cross_validation_beats_a_folds_json_of_fewer_folds(tmp_path):
    name, _, rel, _ = next(e for e in zoo.ENTRIES if e[3] == "folds")
    (tmp_path / rel).mkdir(parents=True)
    (tmp_path / rel / "folds.json").write_text(json.dumps(
        {"mean": 0.1, "std": 0.0, "folds": [{"fold": "1", "accuracy": 0.1}], "command": "c"}))
    full = {"name": name, "accuracy": 0.7, "folds": {str(k): 0.7 for k in range(1, 6)}}
    assert [r for r in zoo.collect(tmp_path, {name: full}) if r["name"].startswith(name)] == [full]
    one = [r for r in zoo.collect(tmp_path, {}) if r["name"].startswith(name)]
    assert len(one) == 1 and one[0]["accuracy"] == 0.1          # nothing recorded: this machine's run
