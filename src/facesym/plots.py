"""Figures people would rather look at than read."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402

from facesym.stats import intended_probability  # noqa: E402
from facesym.vocab import (  # noqa: E402
    CLASSIFIER,
    COMPARISON,
    COMPARISONS,
    CONTROL,
    EMOTION,
    FACE,
    LEFT,
    NEUTRAL,
    PREDICTED,
    RIGHT,
    SIDE,
    STRENGTH,
)


def save_png(fig: plt.Figure, out: str | Path, provenance: str | None = None,
             dpi: int = 120) -> None:
    """Save a figure as PNG with its provenance in the file's Description text chunk."""
    meta = {"Software": "facesym"}
    if provenance:
        meta["Description"] = provenance
    fig.savefig(out, dpi=dpi, metadata=meta)


SIDE_STYLE = {LEFT: ("tab:red", "-"), RIGHT: ("tab:blue", "-"), CONTROL: ("0.3", "--")}


def dose_response_figure(cubes: Mapping[str, xr.Dataset], out: str | Path,
                         exclude: tuple[str, ...] = (NEUTRAL,),
                         provenance: str | None = None) -> None:
    """Mean intended-class probability vs strength, per classifier, one line per side.

    Averaged over faces of every emotion except ``exclude``; bands are ±1.96 SE over faces.
    """
    names = list(cubes)
    ncol = min(4, len(names))
    nrow = int(np.ceil(len(names) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.2 * nrow), squeeze=False,
                             sharey=True)
    for ax, name in zip(axes.flat, names, strict=False):
        cube = cubes[name]
        p = intended_probability(cube["prob"].load(), cube[EMOTION].load())
        keep = ~np.isin([str(e) for e in cube[EMOTION].values], exclude)
        p = p.isel({FACE: np.flatnonzero(keep)})
        strengths = p[STRENGTH].values
        for side in p[SIDE].values:
            colour, line = SIDE_STYLE.get(str(side), ("k", ":"))
            values = p.sel({SIDE: side}).transpose(FACE, STRENGTH).values
            if not len(values):  # no expressive face (e.g. a study of neutral faces only)
                continue
            mean = values.mean(0)
            se = (values.std(0, ddof=1) / np.sqrt(values.shape[0]) if values.shape[0] > 1
                  else 0 * mean)
            ax.plot(strengths, mean, line, color=colour, marker="o", ms=3, label=str(side))
            ax.fill_between(strengths, mean - 1.96 * se, mean + 1.96 * se, color=colour, alpha=0.15)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("intervention strength a")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("mean p(intended class)")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    if axes.flat[0].get_legend_handles_labels()[0]:
        axes.flat[0].legend(title="affected side", fontsize=8)
    fig.suptitle("Dose-response: intended-class probability vs symmetry intervention", fontsize=11)
    fig.tight_layout()
    save_png(fig, out, provenance)
    plt.close(fig)


def confusion_figure(confusion: xr.DataArray, out: str | Path,
                     provenance: str | None = None) -> None:
    """One row-normalised confusion matrix per classifier (a = 0 renders)."""
    names = [str(n) for n in confusion[CLASSIFIER].values]
    ncol = min(4, len(names))
    nrow = int(np.ceil(len(names) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 3.3 * nrow), squeeze=False)
    emotions = [str(e) for e in confusion[EMOTION].values]
    predicted = [str(p) for p in confusion[PREDICTED].values]
    for ax, name in zip(axes.flat, names, strict=False):
        matrix = confusion.sel({CLASSIFIER: name}).transpose(EMOTION, PREDICTED).values
        ax.imshow(matrix, vmin=0, vmax=1, cmap="Blues")
        for (row, col), share in np.ndenumerate(matrix):
            if share > 0:
                ax.text(col, row, f"{share:.2f}".lstrip("0"), ha="center", va="center",
                        fontsize=6, color="white" if share > 0.6 else "black")
        ax.set_xticks(range(len(predicted)), [p[:4] for p in predicted], rotation=90,
                      fontsize=8)
        ax.set_yticks(range(len(emotions)), [e[:4] for e in emotions], fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("predicted", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("rendered emotion", fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle("Manipulation check: predictions on untouched (a = 0) renders", fontsize=11)
    fig.tight_layout()
    save_png(fig, out, provenance)
    plt.close(fig)


def effects_figure(table: pd.DataFrame, out: str | Path, provenance: str | None = None) -> None:
    """Forest plot: mean difference with its BCa CI per classifier × emotion, one panel per
    comparison (laterality, left − right, included); filled markers are significant by the
    primary method (max-T on t; the family correction on Wilcoxon for tables without it),
    grey ones are floor cells (mean intended-class probability at a = 0 below the floor)."""
    comparisons = [c for c in COMPARISONS if c in set(table[COMPARISON])]
    tested = table.dropna(subset=["p"])
    primary = "significant_maxT" if "significant_maxT" in tested else "significant"
    floor = tested["floor"].astype(bool) if "floor" in tested else tested["p"].isna()
    rows = tested[[CLASSIFIER, EMOTION]].drop_duplicates().sort_values([CLASSIFIER, EMOTION])
    keys = list(zip(rows[CLASSIFIER], rows[EMOTION], strict=True))
    row_of = {key: i for i, key in enumerate(keys)}
    fig, axes = plt.subplots(1, max(1, len(comparisons)),
                             figsize=(2.6 * max(1, len(comparisons)) + 1.6,
                                      0.17 * len(keys) + 1.4),
                             sharey=True, squeeze=False)
    for ax, comparison in zip(axes[0], comparisons, strict=False):
        here = tested[COMPARISON] == comparison
        for cell, at_floor in zip(tested[here].itertuples(), floor[here], strict=True):
            y = row_of[(cell.classifier, cell.emotion)]
            colour = "0.6" if at_floor else "tab:red" if cell.mean_diff < 0 else "tab:blue"
            ax.plot([cell.ci_low, cell.ci_high], [y, y], color=colour, lw=1)
            ax.plot(cell.mean_diff, y, "o", ms=3.5, color=colour,
                    mfc=colour if getattr(cell, primary) else "white")
        ax.axvline(0, color="0.4", lw=0.8)
        ax.set_title(comparison.replace("_vs_", " vs "), fontsize=9)
        ax.set_xlabel("mean Δp(intended)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=7)
    labels = [f"{c} · {e}" for c, e in keys]
    axes[0, 0].set_yticks(range(len(keys)), labels, fontsize=6.5)
    axes[0, 0].invert_yaxis()
    method = "max-T" if primary == "significant_maxT" else "after correction"
    fig.suptitle(f"Effects at a = max (filled: significant, {method}; grey: floor cell; "
                 "bars: 95 % BCa CI of the mean)", fontsize=10)
    fig.tight_layout()
    save_png(fig, out, provenance)
