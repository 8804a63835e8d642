"""Heatmaps drawn from known tables: the plotted matrix is the table, the image has its size,
and the same input gives the same bytes."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from forgetscope.analysis.sequence import checkpoint_sequence
from forgetscope.records.checkpoint_order import short_names
from forgetscope.report import heatmaps
from forgetscope.report.heatmaps import (
    DPI, figure_bytes, pairwise_heatmap, raster_heatmap, save_figure, task_heatmap, transition_heatmap,
)


def summary_table(n_tasks: int, checkpoints=("s1", "s2", "s3")) -> pd.DataFrame:
    """A consecutive-pairs table with known values: F_true = task/100 + step/10."""
    rows = []
    for t in range(n_tasks):
        for step, name in enumerate(checkpoints, start=1):
            rows.append({"task": f"task_{t:02d}_with_a_longish_name", "before": "x", "after": name,
                         "after_index": step, "forgetting_true": t / 100 + step / 10,
                         "backward_transfer_true": 0.05 * step, "acc_before": 0.5, "acc_after": 0.5 + (step - 2) / 10,
                         "n_00": t, "n_01": step, "n_10": 2 * step, "n_11": 10})
    return pd.DataFrame(rows)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels from the PNG header."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def plotted(figure, axes: int = 0) -> np.ma.MaskedArray:
    return figure.axes[axes].images[0].get_array()


def test_task_heatmap_plots_the_table():
    table = summary_table(3)
    drawn = task_heatmap(table, "forgetting_true")
    expected = np.array([[t / 100 + s / 10 for s in (1, 2, 3)] for t in range(3)])
    np.testing.assert_allclose(drawn.matrix.to_numpy(), expected)
    np.testing.assert_allclose(plotted(drawn.figure), expected)
    assert list(drawn.matrix.columns) == ["s1", "s2", "s3"]
    assert list(drawn.matrix.index) == [f"task_{t:02d}_with_a_longish_name" for t in range(3)]
    texts = [t.get_text() for t in drawn.figure.axes[0].texts]
    assert texts == [f"{v:.3f}" for v in expected.ravel()]  # values printed in the cells, row by row
    image = drawn.figure.axes[0].images[0]
    assert image.get_cmap().name.startswith("Reds") and image.norm.vmin == 0.0
    assert image.norm.vmax == pytest.approx(expected.max())
    width, height = drawn.figure.get_size_inches() * DPI
    assert png_size(figure_bytes(drawn.figure, "png")) == (round(width), round(height))


def test_signed_figures_use_a_diverging_map_centred_on_zero():
    table = summary_table(2)
    drawn = task_heatmap(table, "acc_change")
    np.testing.assert_allclose(drawn.matrix.to_numpy(), [[-0.1, 0.0, 0.1]] * 2, atol=1e-12)
    image = drawn.figure.axes[0].images[0]
    assert image.get_cmap().name.startswith("RdBu")
    assert image.norm.vmin == pytest.approx(-image.norm.vmax) and image.norm.vmax == pytest.approx(0.1)
    assert [t.get_text() for t in drawn.figure.axes[0].texts][:3] == ["-0.100", "+0.000", "+0.100"]
    with pytest.raises(ValueError, match="unknown figure"):
        task_heatmap(table, "nonsense")


def test_sixty_tasks_stay_readable_and_the_figure_grows():
    small, large = task_heatmap(summary_table(10), "forgetting_true"), task_heatmap(summary_table(60), "forgetting_true")
    assert large.matrix.shape == (60, 3)
    assert large.figure.get_size_inches()[1] > small.figure.get_size_inches()[1] * 3
    data = figure_bytes(large.figure, "png")
    assert png_size(data)[1] == round(large.figure.get_size_inches()[1] * DPI)
    ax = large.figure.axes[0]
    labels = ax.get_yticklabels()
    assert len(labels) == 60 and all(label.get_fontsize() >= 7 for label in labels)
    renderer = large.figure.canvas.get_renderer()
    boxes = sorted((label.get_window_extent(renderer) for label in labels), key=lambda b: b.y0)
    assert all(lower.y1 <= upper.y0 + 0.5 for lower, upper in zip(boxes, boxes[1:])), "row labels overlap"
    assert len(ax.texts) == 180  # cells are still big enough for their values
    left_edge = ax.get_window_extent(renderer).x0
    assert min(b.x0 for b in boxes) >= 0 and max(b.x1 for b in boxes) <= left_edge + 1


def test_values_are_omitted_only_when_cells_get_too_small():
    drawn = task_heatmap(summary_table(400, checkpoints=("s1",)), "forgetting_true")
    assert drawn.figure.get_size_inches()[1] <= heatmaps.MAX_HEIGHT
    assert len(drawn.figure.axes[0].texts) == 0  # 400 rows in 40 inches: no room for values
    labels = [t for t in drawn.figure.axes[0].get_yticklabels()]
    assert 0 < len(labels) < 400  # every k-th row labelled


def test_pairwise_heatmap_masks_the_lower_triangle():
    matrix = pd.DataFrame([[np.nan, 0.2, 0.4], [np.nan, np.nan, 0.1], [np.nan] * 3],
                          index=["/r/c0", "/r/c1", "/r/c2"], columns=["/r/c0", "/r/c1", "/r/c2"])
    drawn = pairwise_heatmap(matrix, "forgetting_true")
    image = plotted(drawn.figure)
    assert image.mask.tolist() == np.isnan(matrix.to_numpy()).tolist()
    np.testing.assert_allclose(image.data[~image.mask], [0.2, 0.4, 0.1])
    assert [t.get_text() for t in drawn.figure.axes[0].get_xticklabels()] == ["c0", "c1", "c2"]


def test_transition_heatmap_one_panel_per_task():
    table = summary_table(5).query("after == 's2'")
    drawn = transition_heatmap(table)
    assert len(drawn.figure.axes) == 5
    for p, row in enumerate(table.itertuples()):
        counts = [[row.n_00, row.n_01], [row.n_10, row.n_11]]
        assert drawn.matrix.loc[row.task].to_numpy().tolist() == counts
        np.testing.assert_allclose(plotted(drawn.figure, p), heatmaps.transition_colours(counts))
        texts = [t.get_text() for t in drawn.figure.axes[p].texts]
        # counts and the before-row rate: 1→0 is n_10 of n_10 + n_11 right-before items
        assert f"{row.n_10:g}\n{row.n_10 / (row.n_10 + row.n_11):.0%}" in texts


def test_transition_matrix_highlights_forgetting_not_the_biggest_cell():
    from matplotlib.colors import to_rgba

    # 900 items wrong → wrong dominate the counts; 10 of the 100 right items were forgotten
    counts = [[900, 0], [10, 90]]
    colours = heatmaps.transition_colours(counts)
    assert tuple(colours[0, 0]) == tuple(colours[1, 1]) == to_rgba("#f2f2f2")  # diagonal: flat, whatever its count
    assert tuple(colours[0, 1]) == to_rgba("white")  # nothing learned
    red, green, blue, _ = colours[1, 0]
    assert red > green + 0.1 and red > blue + 0.1  # forgetting stands out in red
    # coloured by the row rate (10 %), not by the share of all items (1 %): more forgetting, darker
    darker = heatmaps.transition_colours([[900, 0], [40, 60]])[1, 0]
    assert sum(darker[:3]) < sum(colours[1, 0][:3])
    assert heatmaps.transition_rates(counts)[1, 0] == pytest.approx(0.1)
    drawn = transition_heatmap(pd.DataFrame([{"task": "t", "n_00": 900, "n_01": 0, "n_10": 10, "n_11": 90}]))
    outline = [patch for patch in drawn.figure.axes[0].patches if patch.get_label() == "1→0"]
    assert len(outline) == 1 and outline[0].get_xy() == (-0.5, 0.5)  # the (before right, after wrong) cell
    assert to_rgba(outline[0].get_edgecolor())[0] > 0.6


def test_an_all_zero_panel_keeps_a_fixed_colour_scale():
    table = summary_table(3).assign(forgetting_true=0.0)
    image = task_heatmap(table, "forgetting_true").figure.axes[0].images[0]
    assert (image.norm.vmin, image.norm.vmax) == (0.0, heatmaps.MIN_SCALE)  # not 0..1e-9
    signed = task_heatmap(table.assign(acc_after=0.5), "acc_change").figure.axes[0].images[0]
    assert (signed.norm.vmin, signed.norm.vmax) == (-heatmaps.MIN_SCALE, heatmaps.MIN_SCALE)
    big = task_heatmap(summary_table(3), "forgetting_true").figure.axes[0].images[0]
    assert big.norm.vmax == pytest.approx(0.02 + 0.3)  # above the floor: the data's maximum


def test_png_at_twice_the_pixels():
    figure = task_heatmap(summary_table(2), "forgetting_true").figure
    width, height = png_size(figure_bytes(figure, "png"))
    assert png_size(figure_bytes(figure, "png", scale=2)) == (2 * width, 2 * height)


def test_raster_from_a_sequence(hand_records):
    seq = checkpoint_sequence(hand_records, n_bootstrap=0)
    drawn = raster_heatmap(seq.raster("alpha"))
    # first learned at c0: a0 (1 event) and a1 (1 event), records order; a2 at c1; a3 never
    assert list(drawn.matrix.index) == ["a0", "a1", "a2", "a3"]
    np.testing.assert_array_equal(plotted(drawn.figure), [[1, 1, 0], [1, 0, 0], [0, 1, 1], [0, 0, 0]])
    assert [t.get_text() for t in drawn.figure.axes[0].get_xticklabels()] == ["c0", "c1", "c2"]


def test_same_input_same_bytes(tmp_path):
    paths = {}
    for attempt in (1, 2):
        drawn = task_heatmap(summary_table(4), "acc_change")
        for suffix in ("png", "svg"):
            paths[attempt, suffix] = save_figure(drawn.figure, tmp_path / f"{attempt}.{suffix}")
    for suffix in ("png", "svg"):
        assert paths[1, suffix].read_bytes() == paths[2, suffix].read_bytes()
    svg = paths[1, "svg"].read_text()
    assert "<dc:date>" not in svg and "Matplotlib v" not in svg
    assert b"Matplotlib" not in paths[1, "png"].read_bytes()
    with pytest.raises(ValueError, match=".png or .svg"):
        save_figure(drawn.figure, tmp_path / "x.jpg")


def test_short_names():
    assert short_names(["/a/x/A-pre", "/a/x/B-fine"]) == ["A-pre", "B-fine"]
    assert short_names(["pretrain/step-100", "sft/step-100"]) == ["pretrain/step-100", "sft/step-100"]
    assert short_names(["m", "n"]) == ["m", "n"]
    # a bare step number hides the stage: manifests' "stage/step-N" names stay whole
    assert short_names(["pretrain/step-350", "posttrain/step-280", "finetune/step-120"]) == [
        "pretrain/step-350", "posttrain/step-280", "finetune/step-120"]
    assert short_names(["/r/run/checkpoint-10", "/r/run/checkpoint-20"]) == ["run/checkpoint-10", "run/checkpoint-20"]
