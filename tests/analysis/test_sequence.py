"""Checkpoint sequences against trajectories written out by hand."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from forgetscope.analysis import ItemMismatchError, compare_records
from forgetscope.analysis.sequence import RunManifest, SequenceError, checkpoint_sequence, is_manifest

CHECKPOINTS = ["c0", "c1", "c2", "c3"]
#: task -> (k, item -> correctness at c0..c3)
TRAJECTORIES = {
    "quiz": (2, {"a": "1010", "b": "0000", "c": "0111", "d": "1111", "e": "1100"}),
    "gen": (0, {"x": "1001", "y": "0110", "z": "1000"}),
}


def records(trajectories=TRAJECTORIES, checkpoints=CHECKPOINTS, repeats=(0,), hash_of=None) -> pd.DataFrame:
    """One table holding every checkpoint; `hash_of(checkpoint, item)` may change an item's hash."""
    rows = []
    for t, name in enumerate(checkpoints):
        for task, (k, items) in trajectories.items():
            for item_id, path in items.items():
                for repeat in repeats:
                    correct = path[t] == "1" if repeat == 0 else path[-1 - t] == "1"
                    item_hash = hash_of(name, item_id) if hash_of else f"h-{item_id}"
                    rows.append({"checkpoint": name, "task": task, "item_id": item_id, "item_hash": item_hash,
                                 "category": "odd" if item_id in "ace" else "", "n_choices": k, "repeat": repeat,
                                 "correct": correct, "correct_norm": correct, "correct_per_token": correct})
    return pd.DataFrame(rows)


def by_item(seq) -> pd.DataFrame:
    return seq.items.set_index("item_id")


def test_item_trajectories_events_and_flags():
    seq = checkpoint_sequence(records(), n_bootstrap=0)
    assert seq.checkpoints == CHECKPOINTS
    items = by_item(seq)
    expected = {  # trajectory, forgetting events, learning events, first learned, never, unforgettable
        "a": ("1010", 2, 1, "c0", False, False),
        "b": ("0000", 0, 0, None, True, False),
        "c": ("0111", 0, 1, "c1", False, True),
        "d": ("1111", 0, 0, "c0", False, True),
        "e": ("1100", 1, 0, "c0", False, False),
        "x": ("1001", 1, 1, "c0", False, False),
        "y": ("0110", 1, 1, "c1", False, False),
        "z": ("1000", 1, 0, "c0", False, False),
    }
    for item_id, (path, forgot, learned, first, never, unforgettable) in expected.items():
        row = items.loc[item_id]
        assert row["trajectory"] == path
        assert row["forgetting_events"] == forgot and row["learning_events"] == learned
        assert (row["first_learned"] == first) if first else pd.isna(row["first_learned"])
        assert row["never_learned"] == never
        assert row["unforgettable"] == unforgettable
        assert row["first_learned_index"] == (CHECKPOINTS.index(first) if first else -1)
    assert seq.correct.shape == (8, 4)


def test_consecutive_and_from_first_counts_by_hand():
    seq = checkpoint_sequence(records(), n_bootstrap=0)
    quiz = seq.consecutive().query("task == 'quiz'")
    # c0→c1: a 1→0, c 0→1, e stays; c1→c2: a 0→1, e 1→0; c2→c3: a 1→0
    assert quiz[["before", "after", "after_index"]].values.tolist() == [["c0", "c1", 1], ["c1", "c2", 2],
                                                                       ["c2", "c3", 3]]
    assert quiz["n_10"].tolist() == [1, 1, 1] and quiz["n_01"].tolist() == [1, 1, 0]
    first = seq.from_first().query("task == 'gen'")
    # gen from c0 (x=1, y=0, z=1): c1 x0 y1 z0, c2 x0 y1 z0, c3 x1 y0 z0
    assert first["before"].unique().tolist() == ["c0"]
    assert first["n_10"].tolist() == [2, 2, 1] and first["n_01"].tolist() == [1, 1, 0]
    assert first["forgetting"].tolist() == pytest.approx([2 / 3, 2 / 3, 1 / 3])
    assert first["forgetting_chance"].tolist() == [0.0, 0.0, 0.0]  # generative: no chance term


def test_pair_tables_equal_compare_on_the_same_pair():
    """Chance adjustment, CIs and categories come from compare_records' own code."""
    data = records()
    seq = checkpoint_sequence(data, n_bootstrap=200, seed=3)
    for before, after in (("c0", "c1"), ("c1", "c2"), ("c0", "c3")):
        direct = compare_records(data[data.checkpoint == before], data[data.checkpoint == after],
                                 n_bootstrap=200, seed=3)
        mine = seq.pair_summary(before, after)
        # compare adds figures from per-item scores (analysis.item_figures) that sequences leave out
        pd.testing.assert_frame_equal(mine.reset_index(drop=True), direct.tasks[mine.columns].reset_index(drop=True))
        cats = seq.pair_summary(before, after, ["task", "category"])
        pd.testing.assert_frame_equal(cats, direct.categories[cats.columns])
    # quiz c0→c3, k=2: acc 0.6 → 0.4, F_chance = 0.4·0.6/1 = 0.24, F = 2/5 (a, e), F_true = 0.16
    row = seq.from_first().query("task == 'quiz' and after == 'c3'").iloc[0]
    assert row["forgetting"] == pytest.approx(0.4)
    assert row["forgetting_chance"] == pytest.approx(0.24)
    assert row["forgetting_true"] == pytest.approx(0.16)


def test_task_summary_and_pairwise_matrix():
    seq = checkpoint_sequence(records(), n_bootstrap=0)
    summary = seq.task_summary().set_index("task")
    assert summary.loc["quiz"].tolist() == pytest.approx([5, 0.6, 0.4, 1, 2, 2, 3, 2])
    assert summary.loc["gen"].tolist() == pytest.approx([3, 2 / 3, 1 / 3, 0, 0, 3, 3, 2])
    matrix = seq.pairwise("gen", "forgetting")
    assert list(matrix.index) == CHECKPOINTS and list(matrix.columns) == CHECKPOINTS
    assert np.isnan(matrix.values[np.tril_indices(4)]).all()
    # gen: c1→c3: x 0→1, y 1→0, z 0→0 → F = 1/3; c0→c2: x, z forgotten → 2/3
    assert matrix.loc["c1", "c3"] == pytest.approx(1 / 3)
    assert matrix.loc["c0", "c2"] == pytest.approx(2 / 3)
    assert matrix.loc["c2", "c3"] == pytest.approx(1 / 3)


def test_raster_orders_items_by_first_learned():
    seq = checkpoint_sequence(records(), n_bootstrap=0)
    raster = seq.raster("quiz")
    # first learned c0: d (0 events), e (1), a (2); then c (c1); never: b
    assert list(raster.index) == ["d", "e", "a", "c", "b"]
    assert raster.loc["a"].tolist() == [1, 0, 1, 0]
    assert list(raster.columns) == CHECKPOINTS


def test_order_and_input_forms():
    data = records()
    reversed_seq = checkpoint_sequence(data, order=CHECKPOINTS[::-1], n_bootstrap=0)
    assert by_item(reversed_seq).loc["c", "trajectory"] == "1110"
    frames = [data[data.checkpoint == c] for c in CHECKPOINTS]
    listed = checkpoint_sequence(frames, n_bootstrap=0)
    assert listed.checkpoints == CHECKPOINTS
    renamed = checkpoint_sequence(frames, order=["s1", "s2", "s3", "s4"], n_bootstrap=0)
    assert by_item(renamed).loc["y", "first_learned"] == "s2"
    with pytest.raises(SequenceError, match="'nope'"):
        checkpoint_sequence(data, order=["c0", "nope"])
    with pytest.raises(SequenceError, match="twice"):
        checkpoint_sequence(data, order=["c0", "c1", "c0"])
    with pytest.raises(SequenceError, match="at least two"):
        checkpoint_sequence(data, order=["c0"])


def test_changed_item_is_an_error_unless_identical_only():
    def hash_of(checkpoint, item_id):
        return "edited" if (checkpoint == "c2" and item_id == "c") else f"h-{item_id}"

    data = records(hash_of=hash_of)
    with pytest.raises(ItemMismatchError, match="'c'"):
        checkpoint_sequence(data)
    seq = checkpoint_sequence(data, identical_only=True, n_bootstrap=0)
    assert "c" not in set(seq.items["item_id"]) and len(seq.items) == 7
    assert seq.dropped[["checkpoint", "task", "n_changed"]].values.tolist() == [["c2", "quiz", 1]]
    assert seq.consecutive().query("task == 'quiz'")["n"].tolist() == [4, 4, 4]


def test_repeats_are_followed_one_row_each():
    seq = checkpoint_sequence(records(repeats=(0, 1)), n_bootstrap=0)
    assert len(seq.items) == 16
    a = seq.items.query("item_id == 'a'").set_index("repeat")["trajectory"]
    assert a.tolist() == ["1010", "0101"]  # repeat 1 runs the path backwards
    assert seq.consecutive()["n_repeats"].unique().tolist() == [2]
    assert seq.consecutive().groupby("task")["n"].unique().map(list).to_dict() == {"gen": [3], "quiz": [5]}


def test_manifest_is_read_from_file_or_directory(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    manifest = {"format": "forgetscope-run-manifest", "version": 1, "run": "r", "config_hash": "abc",
                "checkpoints": [
                    {"name": "pretrain/step-100", "path": "checkpoints/pretrain-step000100", "stage": "pretrain",
                     "step": 100, "final": False, "tokens_seen": {"general": 5}, "val_loss": {"general": 3.2}},
                    {"name": "sft/step-10", "path": "checkpoints/sft-step000010", "stage": "sft", "step": 10,
                     "final": True}]}
    (run / "manifest.json").write_text(json.dumps(manifest))
    for arg in (run, run / "manifest.json"):
        assert is_manifest(arg)
        read = RunManifest.read(arg)
        assert read.names == ["pretrain/step-100", "sft/step-10"]
        assert read.checkpoints[0].path == (run / "checkpoints/pretrain-step000100").resolve()
        assert read.checkpoints[0].val_loss == {"general": 3.2} and read.checkpoints[1].final
    (run / "manifest.json").write_text(json.dumps({**manifest, "format": "other"}))
    with pytest.raises(SequenceError, match="not a run manifest"):
        RunManifest.read(run)
    assert not is_manifest(tmp_path)


def test_learned_then_forgotten_lists_trajectories_first_vs_last_misses():
    seq = checkpoint_sequence(records(), order=CHECKPOINTS, n_bootstrap=0)
    table = seq.learned_then_forgotten()
    # quiz a 1010: learned at c2, forgotten at c3; gen y 0110: learned at c1, forgotten at c3 (first and last
    # agree for y: a first-vs-last comparison sees nothing); x 1001, e 1100, c 0111: not learned-then-forgotten
    assert table[["task", "item_id", "trajectory", "learned_at", "forgotten_at"]].values.tolist() == [
        ["gen", "y", "0110", "c1", "c3"], ["quiz", "a", "1010", "c2", "c3"]]
    # the first forgetting after the first learning: 0101 → learned c1, forgotten c2
    twice = checkpoint_sequence(records({"t": (2, {"p": "0101", "q": "0011"})}), order=CHECKPOINTS, n_bootstrap=0)
    assert twice.learned_then_forgotten()[["item_id", "learned_index", "forgotten_index"]].values.tolist() == [["p", 1, 2]]
    two = checkpoint_sequence(records(checkpoints=["c0", "c1"]), order=["c0", "c1"], n_bootstrap=0)
    assert two.learned_then_forgotten().empty  # needs three checkpoints
