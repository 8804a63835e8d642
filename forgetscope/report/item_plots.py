"""Figures of per-item scores: how flips grow with the KL divergence, and how well the forgetting-risk
score ranks what was forgotten (matplotlib, drawn reproducibly like `heatmaps`).

- `kl_flip_figure`: per task, the share of flipped items among those whose KL(before ‖ after) is at
  or above each decile of KL (the comparison's `flip_share_by_kl_decile`); a rising line means the
  items whose answer distribution moved most are the ones that flipped.
- `risk_figure`: left, the forgotten share per equal-count bin of the risk score −margin (items right
  before, lowest risk first); right, the ROC curve of that score with its AUROC and interval.

Every builder returns a `Heatmap(figure, matrix)` (the values drawn), as the heatmaps do.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..analysis.distances import KL_DECILES
from .heatmaps import Heatmap, figure_style, inches, new_figure, short_label

_COLOURS = ["#b2182b", "#2166ac", "#1b7837", "#762a83", "#e08214", "#4d4d4d", "#35978f", "#c51b7d"]


def kl_flip_figure(rows: Sequence[Mapping], *, label: str = "task", title: str | None = None,
                   max_lines: int = 8) -> Heatmap:
    """Lines of flip share against KL percentile, one per row (a comparison's task or overall rows
    with `flip_share_by_kl_decile`); rows without KL (no per-choice scores) are left out."""
    shown = [r for r in rows if r.get("flip_share_by_kl_decile") is not None
             and any(v is not None for v in r["flip_share_by_kl_decile"])][:max_lines]
    matrix = pd.DataFrame([[np.nan if v is None else float(v) for v in r["flip_share_by_kl_decile"]] for r in shown],
                          index=pd.Index([str(r[label]) for r in shown], name=label),
                          columns=pd.Index([int(p) for p in KL_DECILES], name="kl_percentile"))
    width, height = inches(6.4), inches(3.6)
    with figure_style():
        figure = new_figure(width, height)
        ax = figure.add_axes((0.11, 0.16, 0.6, 0.7))
        for i, (name, values) in enumerate(matrix.iterrows()):
            whole = str(name).startswith("overall")  # all tasks together: black and dashed, drawn on top
            ax.plot(matrix.columns, values.to_numpy(), marker="o", markersize=3.5, linewidth=1.6,
                    color="black" if whole else _COLOURS[i % len(_COLOURS)], linestyle="--" if whole else "-",
                    zorder=3 if whole else 2, label=short_label(name, 28))
        ax.set_xlabel("items with KL(before ‖ after) ≥ this percentile", fontsize=9)
        ax.set_ylabel("share of them that flipped", fontsize=9)
        ax.set_xticks(list(matrix.columns), [f"{p}" for p in matrix.columns], fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3, linewidth=0.5)
        if len(matrix):
            ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        figure.text(0.5, 0.95, title or "flips among the items whose scores moved most", ha="center", va="center",
                    fontsize=11)
    return Heatmap(figure, matrix)


def risk_figure(bins: pd.DataFrame, fpr: np.ndarray, tpr: np.ndarray, *, auroc: float,
                ci: tuple[float, float] | None = None, title: str | None = None) -> Heatmap:
    """Forgotten share per risk bin (analysis.risk.forgetting_by_risk_bin) beside the ROC curve
    (analysis.risk.roc_curve) with its AUROC; the matrix is the bins table."""
    width, height = inches(8.4), inches(3.6)
    with figure_style():
        figure = new_figure(width, height)
        left = figure.add_axes((0.08, 0.17, 0.38, 0.68))
        if len(bins):
            left.bar(np.arange(len(bins)), bins["forgotten_share"], color="#d6604d", width=0.8)
            left.set_xticks(np.arange(len(bins)), [str(b + 1) for b in bins["bin"]], fontsize=8)
        base = float(bins["n_forgotten"].sum() / bins["n"].sum()) if len(bins) and bins["n"].sum() else np.nan
        if np.isfinite(base):
            left.axhline(base, color="#4d4d4d", linewidth=1, linestyle="--", label=f"all items: {base:.0%}")
            left.legend(fontsize=8, frameon=False, loc="upper left")
        left.set_xlabel("risk −margin bin (1 = most confident)", fontsize=9)
        left.set_ylabel("share forgotten (1→0)", fontsize=9)
        left.tick_params(axis="y", labelsize=8)
        left.set_ylim(0, 1.02)
        right = figure.add_axes((0.58, 0.17, 0.3, 0.68))
        right.plot([0, 1], [0, 1], color="#bbbbbb", linewidth=1, linestyle=":")
        band = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci and all(np.isfinite(ci)) else ""
        right.plot(fpr, tpr, color="#2166ac", linewidth=1.8, label=f"AUROC {auroc:.2f}{band}")
        right.set_xlim(0, 1)
        right.set_ylim(0, 1.01)
        right.set_aspect("equal")
        right.set_xlabel("false positive rate (kept items flagged)", fontsize=9)
        right.set_ylabel("true positive rate", fontsize=9)
        right.tick_params(labelsize=8)
        right.legend(fontsize=8, frameon=False, loc="lower right")
        figure.text(0.5, 0.95, title or "forgetting risk (−margin before) against what was forgotten",
                    ha="center", va="center", fontsize=11)
    return Heatmap(figure, bins)
