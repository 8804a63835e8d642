"""Heatmaps of forgetting and learning (matplotlib, PNG and SVG).

Every builder returns a `Heatmap(figure, matrix)`: the matplotlib Figure and
the DataFrame of exactly the values it drew (rows top to bottom, columns left
to right), so a test can check the picture against the table it came from.

- `task_heatmap`: tasks (or categories) × checkpoints, one figure per cell
  (F_true, BT_true, accuracy change, ...), values printed in the cells;
- `pairwise_heatmap`: checkpoint × checkpoint (row = before, column = after) for one task;
- `transition_heatmap`: the 2×2 transition matrix of every task, one small panel each: counts and
  row rates printed, only the off-diagonal cells coloured (1→0 red, outlined; 0→1 blue) by their row rate,
  so a big wrong→wrong count never dominates;
- `raster_heatmap`: items × checkpoints correctness of one task, ordered by first-learned checkpoint.

Colours: signed figures (accuracy change, BT_true − F_true) use a diverging
map centred on zero with symmetric limits; rates use a sequential map from 0
(accuracy: fixed 0..1). Either scale spans at least MIN_SCALE (0.05): an
all-zero panel is drawn white on a 0..0.05 scale, not on a 0..1e-9 one that
would paint rounding noise. Missing values are light grey.

Readability with many rows: the font shrinks from 10 pt (≤ 20 rows) to 7 pt
(≥ 50 rows), each row is 1.8 × the font tall, so the figure grows with the
rows and labels never overlap. Past MAX_HEIGHT (or MAX_WIDTH) inches the
cells shrink instead; then only every k-th row label is shown (never
overlapping), and cell values are printed only while a cell is at least
1.5 × the font tall and wide enough for the value's text.

Reproducible files: figures are built without pyplot (no global state), at a
fixed size and dpi, with the bundled DejaVu Sans font, SVG text as paths, a
fixed `svg.hashsalt` and no date or software metadata: the same input gives
byte-identical PNG and SVG files.
"""

from __future__ import annotations

import io
import math
import textwrap
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Sequence

import numpy as np
import pandas as pd

from ..records.checkpoint_order import short_names

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
#: Smallest colour range of a rate (or ± range of a signed figure).
MIN_SCALE = 0.05
#: Row rate that saturates a transition cell's colour (a 50 % forgetting rate is already dark).
TRANSITION_SCALE = 0.5
MAX_HEIGHT = 40.0  # inches
MAX_WIDTH = 30.0
MAX_LABEL_CHARS = 40
_STYLE = {"font.family": "DejaVu Sans", "svg.hashsalt": "forgetscope", "svg.fonttype": "path",
          "axes.linewidth": 0.6}
_METADATA = {".png": {"Software": None}, ".svg": {"Date": None, "Creator": None, "Format": None, "Type": None}}
_MISSING = "#e6e6e6"


class Heatmap(NamedTuple):
    """A figure and the matrix it plotted."""

    figure: "Figure"
    matrix: pd.DataFrame


@dataclass(frozen=True)
class FigureSpec:
    """How one figure of a transition summary is coloured and printed."""

    label: str
    cmap: str
    signed: bool = False
    limits: tuple[float, float] | None = None  # fixed colour range (else from the data)
    fmt: str = ".3f"


#: Figures a task heatmap can show: summary columns and two derived ones.
FIGURES: dict[str, FigureSpec] = {
    "forgetting_true": FigureSpec("F true (forgetting beyond chance)", "Reds"),
    "backward_transfer_true": FigureSpec("BT true (learning beyond chance)", "Blues"),
    "forgetting": FigureSpec("F (share of items 1→0)", "Reds"),
    "backward_transfer": FigureSpec("BT (share of items 0→1)", "Blues"),
    "acc_change": FigureSpec("accuracy change (after − before)", "RdBu", signed=True, fmt="+.3f"),
    "net_transfer_true": FigureSpec("BT true − F true", "RdBu", signed=True, fmt="+.3f"),
    "acc_after": FigureSpec("accuracy (after)", "viridis", limits=(0.0, 1.0)),
}


def figure_values(table: pd.DataFrame, value: str) -> pd.Series:
    """One figure per row of a transition summary, derived figures included."""
    if value not in FIGURES:
        raise ValueError(f"unknown figure {value!r}; choose one of {', '.join(FIGURES)}")
    if value == "acc_change":
        return table["acc_after"] - table["acc_before"]
    if value == "net_transfer_true":
        return table["backward_transfer_true"] - table["forgetting_true"]
    return table[value].astype(float)


# --------------------------------------------------------------------------- builders
def task_heatmap(table: pd.DataFrame, value: str = "forgetting_true", *, rows: Sequence[str] = ("task",),
                 column: str | None = "after", title: str | None = None) -> Heatmap:
    """Tasks (or ["task", "category"]) × checkpoints, coloured by `value`, values in the cells.

    `table` is a pairwise summary: `CheckpointSequence.consecutive()` or
    `.from_first()` (columns "after" and "after_index"), or a two-checkpoint
    summary such as `Comparison.tasks` (then `column=None`: one column).
    Rows keep the table's order of first appearance.
    """
    values = figure_values(table, value)  # raises for unknown names
    spec = FIGURES[value]
    rows = list(rows)
    labels = [" / ".join(map(str, r)) for r in zip(*(table[c] for c in rows))]
    frame = pd.DataFrame({"row": labels, "value": values.to_numpy()})
    if column is None:
        frame["column"] = spec.label.split(" (")[0]
        column_order = [frame["column"].iloc[0]] if len(frame) else []
    else:
        frame["column"] = table[column].astype(str).to_numpy()
        order = table.sort_values("after_index", kind="stable") if "after_index" in table.columns else table
        column_order = list(pd.unique(order[column].astype(str)))
    matrix = frame.pivot_table(index="row", columns="column", values="value", aggfunc="first", sort=False)
    matrix = matrix.reindex(index=list(pd.unique(frame["row"])), columns=column_order)
    matrix.index.name, matrix.columns.name = " / ".join(rows), column
    with figure_style():
        columns = short_names(matrix.columns) if column in ("after", "before") else list(matrix.columns)
        figure = _grid_figure(matrix.to_numpy(dtype=float), list(matrix.index), columns, spec,
                              title or spec.label, xlabel="after" if column == "after" else "")
    return Heatmap(figure, matrix)


def pairwise_heatmap(matrix: pd.DataFrame, value: str = "forgetting_true", *, title: str | None = None) -> Heatmap:
    """Checkpoint × checkpoint matrix (row = before, column = after), e.g. `CheckpointSequence.pairwise`."""
    spec = FIGURES[value] if value in FIGURES else FigureSpec(value, "Reds")
    with figure_style():
        figure = _grid_figure(matrix.to_numpy(dtype=float), short_names(matrix.index),
                              short_names(matrix.columns), spec, title or spec.label,
                              xlabel="after", ylabel="before")
    return Heatmap(figure, matrix)


def transition_colours(counts) -> np.ndarray:
    """(2, 2, 4) RGBA colours of one transition panel (rows = before wrong/right, columns = after).

    The diagonal (0→0, 1→1) is a flat light grey whatever its count; 1→0 is red and 0→1 blue, each by
    its row rate (n_10 / (n_10 + n_11): the share of items right before that were forgotten; n_01 /
    (n_00 + n_01)) on a fixed 0..TRANSITION_SCALE scale, white at 0.
    """
    import matplotlib
    from matplotlib.colors import Normalize, to_rgba

    counts = np.asarray(counts, dtype=float).reshape(2, 2)
    rates = transition_rates(counts)
    norm = Normalize(0.0, TRANSITION_SCALE, clip=True)
    colours = np.empty((2, 2, 4))
    colours[0, 0] = colours[1, 1] = to_rgba("#f2f2f2")
    colours[1, 0] = matplotlib.colormaps["Reds"](norm(rates[1, 0]) * 0.85) if rates[1, 0] > 0 else to_rgba("white")
    colours[0, 1] = matplotlib.colormaps["Blues"](norm(rates[0, 1]) * 0.85) if rates[0, 1] > 0 else to_rgba("white")
    return colours


def transition_rates(counts) -> np.ndarray:
    """Row-normalised 2×2 transition rates (each before-row sums to 1; 0 for an empty row)."""
    counts = np.asarray(counts, dtype=float).reshape(2, 2)
    totals = counts.sum(1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def transition_heatmap(table: pd.DataFrame, *, rows: Sequence[str] = ("task",), title: str | None = None,
                       max_columns: int = 6) -> Heatmap:
    """The 2×2 transition matrix of every row of a summary (rows = before wrong/right,
    columns = after wrong/right): counts and row rates printed, the 1→0 cell outlined in red and
    coloured by the forgetting rate among items right before, 0→1 by the learning rate among items
    wrong before, the diagonal grey (see transition_colours).

    The returned matrix has one row per (label, before) and columns 0 and 1 (after).
    """
    from matplotlib.patches import Rectangle

    labels = [" / ".join(map(str, r)) for r in zip(*(table[c] for c in rows))]
    counts = table[["n_00", "n_01", "n_10", "n_11"]].to_numpy(dtype=float).reshape(-1, 2, 2)
    index = pd.MultiIndex.from_product([labels, [0, 1]], names=[" / ".join(rows), "before"])
    matrix = pd.DataFrame(counts.reshape(-1, 2), index=index, columns=pd.Index([0, 1], name="after"))
    n_panels = len(labels)
    n_cols = max(1, min(max_columns, n_panels))
    n_rows = max(1, math.ceil(n_panels / n_cols))
    panel, gap_x, gap_y, top, left, bottom = 1.7, 0.9, 0.8, 0.8, 0.9, 0.6
    width = inches(left + n_cols * panel + (n_cols - 1) * gap_x + 0.4)
    height = inches(top + n_rows * panel + (n_rows - 1) * gap_y + bottom)
    with figure_style():
        figure = new_figure(width, height)
        figure.text(0.5, 1 - 0.35 / height, title or "transitions per task (counts; % of the before-row; "
                    "1→0 outlined)", ha="center", va="center", fontsize=11)
        for p, label in enumerate(labels):
            r, c = divmod(p, n_cols)
            x0 = left + c * (panel + gap_x)
            y0 = height - top - (r + 1) * panel - r * gap_y
            ax = figure.add_axes((x0 / width, y0 / height, panel / width, panel / height))
            ax.imshow(transition_colours(counts[p]), interpolation="nearest", aspect="auto")
            rates = transition_rates(counts[p])
            for (i, j), count in np.ndenumerate(counts[p]):
                weight = "bold" if (i, j) == (1, 0) and count else "normal"
                dark = (i, j) == (1, 0) and rates[i, j] > 0.3
                ax.text(j, i, f"{count:g}\n{rates[i, j]:.0%}", ha="center", va="center", fontsize=9,
                        fontweight=weight, color="white" if dark else "black")
            ax.add_patch(Rectangle((-0.5, 0.5), 1, 1, fill=False, edgecolor="#b2182b", linewidth=2.2,
                                   label="1→0"))
            ax.set_xticks([0, 1], ["wrong", "right"], fontsize=8)
            ax.set_yticks([0, 1], ["wrong", "right"], fontsize=8, rotation=90, va="center")
            ax.set_title(short_label(label, 26), fontsize=9, pad=3)
            if c == 0:
                ax.set_ylabel("before", fontsize=8)
            ax.set_xlabel("after", fontsize=8, labelpad=1)
    return Heatmap(figure, matrix)


def raster_heatmap(raster: pd.DataFrame, *, title: str | None = None) -> Heatmap:
    """Items × checkpoints correctness (0/1), e.g. `CheckpointSequence.raster(task)`: items in
    the given order (first learned first), right = dark blue, wrong = light."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    values = raster.to_numpy(dtype=float)
    n_items, n_ckpt = values.shape
    font = 8.0
    col_w = max(0.45, 1.8 * font / 72)
    row_h = min(max(3.0 / max(n_items, 1), 0.004), 1.8 * font / 72)
    grid_h = max(n_items * row_h, 1.5)
    col_labels = [short_label(c) for c in short_names(raster.columns)]
    bottom = 0.5 + _text_width(col_labels, font) if _rotate(col_labels, col_w, font) else 0.8
    show_items = grid_h / max(n_items, 1) >= 1.3 * font / 72
    left = 0.7 + (_text_width([short_label(str(i)) for i in raster.index], font) if show_items else 0.3)
    grid_w = n_ckpt * col_w
    width, height = inches(left + grid_w + 1.3), inches(bottom + grid_h + 0.7)
    with figure_style():
        figure = new_figure(width, height)
        ax = figure.add_axes((left / width, bottom / height, grid_w / width, grid_h / height))
        cmap = ListedColormap(["#f4e1d2", "#08519c"])
        image = ax.imshow(values, cmap=cmap, norm=BoundaryNorm([-0.5, 0.5, 1.5], 2), interpolation="nearest",
                          aspect="auto")
        _column_ticks(ax, col_labels, col_w, font)
        if show_items:
            ax.set_yticks(range(n_items), [short_label(str(i)) for i in raster.index], fontsize=font)
        else:
            ax.set_yticks([])
        ax.set_ylabel(f"{n_items} items, by first-learned checkpoint", fontsize=font)
        figure.text(0.5, 1 - 0.35 / height, title or "correctness per item", ha="center", va="center",
                    fontsize=11)
        cax = figure.add_axes(((left + grid_w + 0.2) / width, bottom / height, 0.18 / width,
                               min(grid_h, 1.2) / height))
        bar = figure.colorbar(image, cax=cax, ticks=[0, 1])
        bar.ax.set_yticklabels(["wrong", "right"], fontsize=font)
    return Heatmap(figure, raster)


# --------------------------------------------------------------------------- saving
def save_figure(figure: "Figure", path: str | Path) -> Path:
    """Write a figure as PNG or SVG (by suffix), reproducibly (see the module docstring)."""
    path = Path(path)
    data = figure_bytes(figure, path.suffix.lower().lstrip("."))
    from ..records.store import atomic_write_bytes

    atomic_write_bytes(path, data)
    return path


def figure_bytes(figure: "Figure", fmt: str = "png", scale: float = 1.0) -> bytes:
    """The figure encoded as PNG or SVG, without dates or version stamps; `scale` 2 gives a PNG with
    twice the pixels of its nominal size (sharp on high-density screens)."""
    suffix = f".{fmt}"
    if suffix not in _METADATA:
        raise ValueError(f"cannot write a figure as {fmt!r}: use a .png or .svg file name")
    buffer = io.BytesIO()
    with figure_style():
        figure.savefig(buffer, format=fmt, dpi=DPI * scale, metadata=_METADATA[suffix])
    return buffer.getvalue()


# ------------------------------------------- layout (shared with report.item_plots, so figures draw alike)
@contextmanager
def figure_style():
    import matplotlib

    with matplotlib.rc_context(_STYLE):
        yield


def new_figure(width: float, height: float) -> "Figure":
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, facecolor="white")
    FigureCanvasAgg(figure)
    return figure


def inches(size: float) -> float:
    """Round a size to whole pixels, so the image is exactly figsize × DPI."""
    return round(size * DPI) / DPI


def short_label(label: str, limit: int = MAX_LABEL_CHARS) -> str:
    """Cut a long label in the middle: both a task's prefix and a path's last part stay readable."""
    label = str(label)
    if len(label) <= limit:
        return label
    head = (limit - 1) // 2
    return label[:head] + "…" + label[-(limit - 1 - head):]


def _text_width(labels: Sequence[str], font: float) -> float:
    """Approximate width in inches of the longest label (DejaVu Sans: ~0.6 em per character)."""
    return max((len(s) for s in labels), default=0) * 0.6 * font / 72


def _rotate(labels: Sequence[str], col_w: float, font: float) -> bool:
    return _text_width(labels, font) > col_w * 0.9


def _column_ticks(ax, labels: Sequence[str], col_w: float, font: float) -> None:
    rotate = _rotate(labels, col_w, font)
    ax.set_xticks(range(len(labels)), labels, fontsize=font, rotation=90 if rotate else 0)
    ax.tick_params(axis="both", length=2, pad=2)


def grid_font(n_rows: int) -> float:
    """Label and value font (points): 10 up to 20 rows, shrinking to 7 at 50 rows and beyond."""
    return float(np.clip(10.0 - 0.1 * (n_rows - 20), 7.0, 10.0))


def _grid_figure(values: np.ndarray, row_labels: list, col_labels: list, spec: FigureSpec, title: str, *,
                 xlabel: str = "", ylabel: str = "") -> "Figure":
    """One annotated heatmap with readable labels whatever the number of rows (see the module docstring)."""
    from matplotlib.colors import Normalize

    n_rows, n_cols = values.shape
    font = grid_font(max(n_rows, n_cols))
    rows = [short_label(r) for r in row_labels]
    cols = [short_label(c) for c in col_labels]
    sample = format(-0.123 if spec.signed else 0.123, spec.fmt)
    row_h = 1.8 * font / 72
    col_w = max(len(sample) * 0.6 * font / 72 + 0.15, 1.8 * font / 72)
    rotate = _rotate(cols, col_w, font)
    left = 0.35 + _text_width(rows, font) + (0.25 if ylabel else 0)
    bottom = 0.35 + (_text_width(cols, font) if rotate else font / 72) + (0.3 if xlabel else 0)
    top, right = 0.6, 1.4
    grid_w = min(n_cols * col_w, MAX_WIDTH - left - right)
    # the title must fit: widen a narrow figure (up to 9 in), then wrap what is still too long
    title_char = 0.6 * 11 / 72
    right += max(0.0, min(len(title) * title_char + 0.4, 9.0) - (left + grid_w + right))
    title_lines = textwrap.wrap(title, max(20, int((left + grid_w + right - 0.4) / title_char))) or [""]
    top += (len(title_lines) - 1) * 1.3 * 11 / 72
    grid_h = min(n_rows * row_h, MAX_HEIGHT - top - bottom)
    width, height = inches(left + grid_w + right), inches(bottom + grid_h + top)
    cell_h, cell_w = grid_h / max(n_rows, 1), grid_w / max(n_cols, 1)
    label_step = max(1, math.ceil(1.3 * font / 72 / cell_h))
    annotate = cell_h * 72 >= 1.5 * font and cell_w >= len(sample) * 0.6 * font / 72

    finite = values[np.isfinite(values)]
    if spec.limits:
        low, high = spec.limits
    elif spec.signed:
        high = max(float(np.abs(finite).max()) if finite.size else 0.0, MIN_SCALE)
        low = -high
    else:
        low, high = 0.0, max(float(finite.max()) if finite.size else 0.0, MIN_SCALE)
    norm = Normalize(low, high)
    import matplotlib

    cmap = matplotlib.colormaps[spec.cmap].with_extremes(bad=_MISSING)

    figure = new_figure(width, height)
    ax = figure.add_axes((left / width, bottom / height, grid_w / width, grid_h / height))
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, interpolation="nearest", aspect="auto")
    ax.set_yticks(range(0, n_rows, label_step), rows[::label_step], fontsize=font)
    _column_ticks(ax, cols, cell_w, font)
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=font)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=font)
    if annotate:
        for (i, j), value in np.ndenumerate(values):
            if not np.isfinite(value):
                continue
            r, g, b, _ = cmap(norm(value))
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
            ax.text(j, i, format(value, spec.fmt), ha="center", va="center", fontsize=font,
                    color="white" if dark else "black")
    figure.text(0.5, 1 - 0.2 / height, "\n".join(title_lines), ha="center", va="top", fontsize=11)
    bar_h = min(grid_h, 4.0)  # next to the top rows, where the eye starts
    cax = figure.add_axes(((left + grid_w + 0.25) / width, (bottom + grid_h - bar_h) / height, 0.18 / width,
                           bar_h / height))
    bar = figure.colorbar(image, cax=cax)
    bar.ax.tick_params(labelsize=font)
    return figure

