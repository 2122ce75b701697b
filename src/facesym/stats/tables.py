"""The test family as tables: one row per test, the omnibus, and headline counts."""

from __future__ import annotations

import pandas as pd
import xarray as xr

from facesym.stats.family import DEFAULT_EQUIVALENCE_MARGIN, FAMILY_DIMS
from facesym.stats.verdict import contrast_direction
from facesym.vocab import COMPARISON, COMPARISONS

OMNIBUS_PREFIX = "omnibus_"
HEADLINE_COLUMNS = ("comparison", "lower", "higher", "tested", "mean_diff", "floor")
#: columns of :func:`omnibus_table`, in order
OMNIBUS_COLUMNS = ("classifier", "comparison", "mean_diff", "ci_low", "ci_high", "p_perm",
                   "p_maxT", "n_emotions", "significantly_lower", "significantly_higher",
                   "direction")


def omnibus_table(tests: xr.Dataset) -> pd.DataFrame:
    """Per classifier × comparison: the omnibus mean difference (non-neutral emotions above
    the floor) with its cluster-bootstrap CI and max-T p-value, whether the classifier's output
    is significantly lower or higher (max-T at α, either sign), and the direction the verdict
    rules read (:func:`facesym.stats.verdict.contrast_direction`: significant and the CI on one
    side of 0, or the CI inside ±equivalence margin).

    >>> from facesym.stats import effect_tests, synthetic_cube
    >>> cube = synthetic_cube({"left": 0.3, "right": 0.0, "control": 0.0}, seed=1)
    >>> table = omnibus_table(effect_tests({"clf": cube}, n_flips=1000, n_resamples=1000))
    >>> table.set_index("comparison")["direction"].to_dict()["left_vs_control"]
    'lower'
    >>> table.set_index("comparison")["direction"].to_dict()["right_vs_control"]
    'no effect'
    """
    alpha = tests.attrs["alpha"]
    margin = tests.attrs.get("equivalence_margin", DEFAULT_EQUIVALENCE_MARGIN)
    names = [v for v in tests.data_vars if str(v).startswith(OMNIBUS_PREFIX)]
    table = tests[names].to_dataframe().reset_index()
    table = table.rename(columns=lambda c: c.removeprefix(OMNIBUS_PREFIX))
    for column in ("ci_low", "ci_high"):  # cubes from before the omnibus had a CI
        if column not in table:
            table[column] = float("nan")
    if "n_emotions" not in table:
        table["n_emotions"] = -1
    significant = table["p_maxT"] < alpha
    table["significantly_lower"] = significant & (table["mean_diff"] < 0)
    table["significantly_higher"] = significant & (table["mean_diff"] > 0)
    table["direction"] = [contrast_direction(r.mean_diff, r.ci_low, r.ci_high, r.p_maxT,
                                             alpha, margin) for r in table.itertuples()]
    table = table[list(OMNIBUS_COLUMNS)]
    table.attrs.update(_reading_attrs(tests))
    return table


def _reading_attrs(tests: xr.Dataset) -> dict:
    """What the Markdown needs to know about how the tests were run."""
    return {k: tests.attrs[k] for k in ("alpha", "floor", "equivalence_margin")
            if k in tests.attrs}


def summary_table(tests: xr.Dataset) -> pd.DataFrame:
    """One row per classifier × emotion × comparison, sorted, for CSV/Markdown.

    >>> from facesym.stats import effect_tests, synthetic_cube
    >>> cube = synthetic_cube({"left": 0.3, "right": 0.0, "control": 0.0}, seed=1)
    >>> table = summary_table(effect_tests({"clf": cube}, n_flips=1000, n_resamples=1000))
    >>> len(table), list(table.columns[:4])
    (18, ['classifier', 'emotion', 'comparison', 'n'])
    """
    per_test = [v for v in tests.data_vars if not str(v).startswith(OMNIBUS_PREFIX)]
    table = tests[per_test].to_dataframe().reset_index()
    table["n"] = table["n"].astype(int)
    table = table.sort_values(list(FAMILY_DIMS)).reset_index(drop=True)
    table.attrs.update(_reading_attrs(tests))
    return table


def headline_counts(table: pd.DataFrame, by: str = "significant") -> pd.DataFrame:
    """Per comparison: how many tested classifier × emotion cells are significantly lower or
    higher (the sign of the mean difference) by the boolean column ``by`` (``significant``:
    the correction on Wilcoxon; ``significant_maxT``: max-T on t), how many were tested,
    their mean difference and how many of them are at floor. A comparison without any tested
    cell has no row.

    >>> from facesym.stats import effect_tests, synthetic_cube
    >>> cube = synthetic_cube({"left": 0.3, "right": 0.0, "control": 0.0}, seed=1)
    >>> tests = effect_tests({"clf": cube}, n_flips=1000, n_resamples=1000)
    >>> counts = headline_counts(summary_table(tests), by="significant_maxT")
    >>> counts.set_index("comparison").loc["left", ["lower", "higher", "tested"]].tolist()
    [2, 0, 2]
    """
    tested = table.dropna(subset=["p"])
    rows = []
    for comparison, cells in tested.groupby(COMPARISON, sort=False):
        significant = cells[by].astype(bool)
        floor = cells["floor"].astype(bool) if "floor" in cells else significant & False
        rows.append({"comparison": comparison,
                     "lower": int((significant & (cells["mean_diff"] < 0)).sum()),
                     "higher": int((significant & (cells["mean_diff"] > 0)).sum()),
                     "tested": len(cells), "mean_diff": float(cells["mean_diff"].mean()),
                     "floor": int(floor.sum())})
    order = {c: i for i, c in enumerate(COMPARISONS)}
    return (pd.DataFrame(rows, columns=list(HEADLINE_COLUMNS))
            .sort_values(COMPARISON, key=lambda c: c.map(order)))
